"""Word vectors for embedding layers: trained with gensim, or read from a file.

Three steps, each usable alone:

* :func:`train_vectors` trains Word2Vec or FastText with gensim on tokenised
  sentences (one worker and a seed, so the same corpus gives the same vectors);
* :func:`load_vectors` reads a GloVe text file (no header), a word2vec text file
  (``count dim`` header) or a word2vec binary file (``.bin``);
* :func:`embedding_matrix` lays the vectors out in a tokenizer's id order,
  ready for ``nn.Embedding.weight.data.copy_``.

:func:`save_vectors` writes word2vec text format, so the vectors a run trained
can be inspected or reused by any tool that reads that format. Vectors trained on a corpus are kept in
the prepared-data cache (:func:`cached_vectors`, switched off by ``train.cache=false`` through :func:`enabled`),
so a second run on the same texts and settings skips gensim.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import logging
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from zoo.errors import ConfigError, DataError
from zoo.sdk.atomic import atomic_path

log = logging.getLogger(__name__)


@dataclass
class Vectors:
    """Words and their vectors: ``matrix[i]`` is the vector of ``words[i]``."""

    words: list[str]
    matrix: torch.Tensor  # (N, dim) float32
    source: str = ""  # where they came from, for messages and model cards

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    def index(self) -> dict[str, int]:
        return {w: i for i, w in enumerate(self.words)}


def train_vectors(
    sentences: Iterable[Sequence[str]],
    dim: int,
    *,
    kind: str = "word2vec",
    window: int = 5,
    min_count: int = 1,
    epochs: int = 10,
    seed: int = 0,
    sg: bool = True,
) -> Vectors:
    """Train ``kind`` ("word2vec" or "fasttext") vectors of size ``dim`` with gensim (or read the vectors an
    earlier call with the same sentences and settings kept; gensim is then not even imported)."""
    _gensim_version()  # installed, or a ConfigError saying so
    corpus = [list(s) for s in sentences if len(s) > 0]
    if not corpus:
        raise DataError("no non-empty sentences to train word vectors on")
    if kind not in _KINDS:
        raise ConfigError(f"vectors kind must be one of {sorted(_KINDS)}, got {kind!r}")

    settings = {"kind": kind, "dim": dim, "window": window, "min_count": min_count, "epochs": epochs, "seed": seed,
                "sg": bool(sg)}
    return cached_vectors(corpus, settings, lambda: _train(corpus, settings))


_KINDS = {"word2vec": "Word2Vec", "fasttext": "FastText"}  # kind -> the gensim.models class


def _gensim_version() -> str:
    """gensim's version, read from its installed metadata (importing gensim takes a second or more)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gensim")
    except PackageNotFoundError:  # pragma: no cover - gensim is a dependency
        raise ConfigError("training word vectors needs gensim: pip install gensim") from None


def _train(corpus: list[list[str]], settings: dict) -> Vectors:
    """Train gensim on ``corpus`` (one worker: the same corpus gives the same vectors)."""
    import gensim.models

    kind, dim = settings["kind"], settings["dim"]
    model = getattr(gensim.models, _KINDS[kind])(
        sentences=corpus, vector_size=dim, window=settings["window"], min_count=settings["min_count"],
        epochs=settings["epochs"], seed=settings["seed"], workers=1, sg=int(settings["sg"]),
    )
    kv = model.wv
    words = list(kv.index_to_key)
    matrix = torch.tensor(kv.vectors[: len(words)], dtype=torch.float32)
    log.info("trained %s vectors: %d words x %d", kind, len(words), dim)
    return Vectors(words, matrix, source=f"gensim {kind} ({len(corpus)} sentences)")


def load_vectors(path: str | Path, *, limit: int | None = None) -> Vectors:
    """Read GloVe text, word2vec text or word2vec binary (``.bin``) vectors.

    Raises :class:`zoo.DataError` naming the file and line for a malformed row.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such vectors file; give a GloVe or word2vec file")
    if path.suffix == ".bin":
        try:
            from gensim.models import KeyedVectors

            kv = KeyedVectors.load_word2vec_format(str(path), binary=True, limit=limit)
        except Exception as e:  # gensim raises plain ValueError/EOFError on a broken file
            raise DataError(f"{path}: not a word2vec binary file ({e})") from e
        return Vectors(list(kv.index_to_key), torch.tensor(kv.vectors, dtype=torch.float32), str(path))

    words: list[str] = []
    rows: list[list[float]] = []
    dim: int | None = None
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8").rstrip("\n").rstrip("\r")
            except UnicodeDecodeError as e:
                raise DataError(f"{path}:{lineno}: not UTF-8 (byte {e.start} of the line)") from None
            if not line.strip():
                continue
            parts = line.rstrip(" ").split(" ")
            if lineno == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                dim = int(parts[1])  # word2vec text header: count dim
                continue
            if dim is None:
                dim = len(parts) - 1
            if len(parts) != dim + 1:
                raise DataError(
                    f"{path}:{lineno}: expected a word and {dim} numbers, found {len(parts) - 1} numbers"
                )
            try:
                rows.append([float(x) for x in parts[1:]])
            except ValueError:
                raise DataError(f"{path}:{lineno}: a vector component is not a number") from None
            words.append(parts[0])
            if limit is not None and len(words) >= limit:
                break
    if not words or dim is None or dim < 1:
        raise DataError(f"{path}: no vectors found; expected GloVe or word2vec text format")
    return Vectors(words, torch.tensor(rows, dtype=torch.float32), str(path))


def save_vectors(vectors: Vectors, path: str | Path) -> None:
    """Write word2vec text format (``count dim`` header, then ``word v1 v2 ...``), atomically."""
    with atomic_path(Path(path)) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(f"{len(vectors.words)} {vectors.dim}\n")
        for word, row in zip(vectors.words, vectors.matrix.tolist()):
            f.write(word + " " + " ".join(f"{x:.6g}" for x in row) + "\n")


def embedding_matrix(
    tokens: Sequence[str],
    vectors: Vectors,
    dim: int,
    *,
    project: bool = False,
    lowercase_fallback: bool = True,
    pad_index: int | None = 0,
    seed: int = 0,
) -> tuple[torch.Tensor, int]:
    """An (len(tokens), dim) matrix: row i is the vector of ``tokens[i]``.

    Tokens without a vector get random rows with the vectors' own scale (so they
    neither dominate nor vanish); the pad row is zero. Returns the matrix and how
    many tokens were found. When ``vectors.dim != dim`` this is a
    :class:`zoo.ConfigError` unless ``project`` is set: then the vectors are
    mapped to ``dim`` by PCA (fewer dimensions) or padded with small random
    components (more).
    """
    matrix = vectors.matrix
    if vectors.dim != dim:
        if not project:
            raise ConfigError(
                f"{vectors.source or 'vectors'}: vectors have {vectors.dim} dimensions but the embedding has "
                f"{dim}; set the embedding size to {vectors.dim} or turn on projection"
            )
        matrix = _project(matrix, dim, seed)
    std = float(matrix.std()) if matrix.numel() > 1 else 1.0
    gen = torch.Generator().manual_seed(seed)
    out = torch.randn(len(tokens), dim, generator=gen) * std
    index = vectors.index()
    found = 0
    for i, tok in enumerate(tokens):
        j = index.get(tok)
        if j is None and lowercase_fallback:
            j = index.get(tok.lower())
        if j is not None:
            out[i] = matrix[j]
            found += 1
    if pad_index is not None and 0 <= pad_index < len(tokens):
        out[pad_index] = 0.0
    log.info("embedding: %d of %d tokens have a pretrained vector", found, len(tokens))
    return out, found


def _project(matrix: torch.Tensor, dim: int, seed: int) -> torch.Tensor:
    n, d = matrix.shape
    if dim < d:
        centred = matrix - matrix.mean(0, keepdim=True)
        torch.manual_seed(seed)
        _, _, v = torch.pca_lowrank(centred, q=dim, center=False, niter=4)
        return centred @ v[:, :dim]
    gen = torch.Generator().manual_seed(seed)
    extra = torch.randn(n, dim - d, generator=gen) * (float(matrix.std()) / math.sqrt(10))
    return torch.cat([matrix, extra], dim=1)


__all__ = ["Vectors", "train_vectors", "load_vectors", "save_vectors", "embedding_matrix"]


# --- trained vectors kept in the prepared-data cache ----------------------------------------------
# Word vectors trained with gensim, kept in the prepared-data cache: a second run on the same training
# texts with the same settings reads them instead of training them again (minutes on IMDB).
#
# The key is a hash of the tokenised sentences, every training setting, and the versions of zoo and
# gensim; training is deterministic (one worker, a seed), so the vectors read back are the ones a run
# would train. :func:`enabled` turns the cache off for one call (``train.cache=false``).

_enabled: contextvars.ContextVar[bool] = contextvars.ContextVar("zoo_prepared_vectors", default=True)


@contextlib.contextmanager
def enabled(on: bool) -> Iterator[None]:
    """Within the block, :func:`cached_vectors` uses the cache only when ``on``."""
    token = _enabled.set(on)
    try:
        yield
    finally:
        _enabled.reset(token)


def _corpus_hash(corpus: Sequence[Sequence[str]]) -> str:
    h = hashlib.sha256()
    for sentence in corpus:
        h.update("\x1f".join(sentence).encode("utf-8", "surrogatepass"))
        h.update(b"\x1e")
    return h.hexdigest()


def cached_vectors(corpus: Sequence[Sequence[str]], settings: dict[str, Any], train: Callable[[], Any]) -> Any:
    """``train()`` (a :class:`zoo.sdk.embeddings.Vectors`), or the vectors an earlier call with the same corpus
    and ``settings`` stored."""
    if not _enabled.get():
        return train()
    import numpy as np
    import torch

    from zoo._version import __version__ as _zoo_version
    from zoo.sdk.fingerprint import fingerprint
    from zoo.sdk.prepared import PreparedCache

    key = fingerprint({"vectors": settings, "corpus": _corpus_hash(corpus), "gensim": _gensim_version(),
                       "zoo": _zoo_version})
    made: list[Any] = []

    def prepare(out: Any) -> None:
        made.append(train())
        out.put("matrix", made[0].matrix.numpy().astype(np.float32))
        out.meta.update(words=made[0].words, source=made[0].source)

    entry = PreparedCache().get_or_create(key, prepare, {"entry": f"{settings.get('kind', '')} vectors",
                                                         "split": "train", "dataset": ""})
    if made:
        return made[0]
    matrix = torch.from_numpy(np.array(entry.array("matrix"), dtype=np.float32))
    return Vectors(list(entry.meta["words"]), matrix, source=entry.meta["source"] + ", from the prepared-data cache")
