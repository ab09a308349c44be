"""Word vectors trained with gensim, kept in the prepared-data cache: a second run on the same training
texts with the same settings reads them instead of training them again (minutes on IMDB).

The key is a hash of the tokenised sentences, every training setting, and the versions of zoo and
gensim; training is deterministic (one worker, a seed), so the vectors read back are the ones a run
would train. :func:`enabled` turns the cache off for one call (``train.cache=false``).
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

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
    """``train()`` (a :class:`zoo.embeddings.Vectors`), or the vectors an earlier call with the same corpus
    and ``settings`` stored."""
    if not _enabled.get():
        return train()
    import gensim
    import numpy as np
    import torch

    from ..card import zoo_version
    from ..embeddings import Vectors
    from .fingerprint import fingerprint
    from .store import PreparedCache

    key = fingerprint({"vectors": settings, "corpus": _corpus_hash(corpus), "gensim": gensim.__version__,
                       "zoo": zoo_version()})
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
