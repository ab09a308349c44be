"""Tokenizers between zoo and ``transformers`` folders (``tokenizer.json`` plus ``tokenizer_config.json``).

Out: zoo's byte-level BPE is already a ``tokenizers`` pipeline and is written as is;
the char tokenizer becomes a ``WordLevel`` model over single characters (one piece
per code point, unknown characters to ``<unk>``, pieces joined back without
spaces), which gives the same ids. Both are configured with
``split_special_tokens``, so that, as in zoo, text such as ``"<eos>"`` is read as
characters and never as a special id.

In: a byte-level BPE (``tokenizer.json``, or GPT-2's ``vocab.json`` + ``merges.txt``)
keeps the folder's ids, its end-of-text token standing for zoo's four specials;
only a folder without one gets zoo's specials in front, every id moved up by 4
(:func:`read_bpe`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from zoo.errors import ZooError
from zoo.runtime.untrusted import loads
from zoo.interop.folder import inside

SPECIALS = ("<pad>", "<unk>", "<bos>", "<eos>")  # ids 0-3 in every zoo text tokenizer
BPE, CHAR = "tokenizers:bpe", "tokenizers:char"


def _byte_level(node: Any) -> bool:
    """Whether a pre-tokenizer / decoder node of a tokenizer.json is (or holds) ByteLevel."""
    if not isinstance(node, dict):
        return False
    if node.get("type") == "ByteLevel":
        return True
    return any(_byte_level(n) for key in ("pretokenizers", "decoders") for n in node.get(key, []) or [])


def char_tokenizer_json(itos: list[str]) -> str:
    """A ``tokenizers`` pipeline that encodes text to the same ids as zoo's char tokenizer with ``itos``."""
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
    )

    bad = [t for t in itos[len(SPECIALS):] if len(t) != 1]
    if list(itos[: len(SPECIALS)]) != list(SPECIALS) or bad:
        raise ValueError(f"the char tokenizer's vocabulary is not specials plus single characters ({bad[:3]})")
    tok = Tokenizer(models.WordLevel({t: i for i, t in enumerate(itos)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")  # one piece per code point
    tok.decoder = decoders.Fuse()  # pieces joined without spaces
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in SPECIALS])
    return tok.to_str()


def export_files(name: str, state: dict[str, Any], block_size: int) -> dict[str, str]:
    """``tokenizer.json``, ``tokenizer_config.json`` and ``special_tokens_map.json`` of a zoo text tokenizer."""
    if name == BPE:
        tokenizer_json = state["tokenizer_json"]
    elif name == CHAR:
        tokenizer_json = char_tokenizer_json(list(state["itos"]))
    else:
        raise ValueError(f"tokenizer {name} has no transformers counterpart (exported: {BPE}, {CHAR})")
    special = {"pad_token": "<pad>", "unk_token": "<unk>", "bos_token": "<bos>", "eos_token": "<eos>"}
    config = {"tokenizer_class": "PreTrainedTokenizerFast", **special, "model_max_length": block_size,
              "split_special_tokens": True, "clean_up_tokenization_spaces": False, "add_bos_token": False,
              "add_eos_token": False, "add_prefix_space": False}
    return {"tokenizer.json": tokenizer_json, "tokenizer_config.json": json.dumps(config, indent=2) + "\n",
            "special_tokens_map.json": json.dumps(special, indent=2) + "\n"}


def source_json(src: Path) -> tuple[dict[str, Any] | None, str]:
    """(tokenizer.json as a dict, where it came from) of a folder; ``None`` and the reason when it has none."""
    path = src / "tokenizer.json"
    if path.is_file():
        try:
            return loads(inside(src, path.name).read_text(encoding="utf-8")), str(path)
        except ZooError as exc:
            return None, str(exc)
        except (OSError, ValueError) as exc:
            return None, f"{path}: cannot read it as JSON ({exc})"
    vocab, merges = src / "vocab.json", src / "merges.txt"
    if not (vocab.is_file() and merges.is_file()):
        return None, f"{src} has no tokenizer.json, nor vocab.json + merges.txt"
    try:
        vocab, merges = inside(src, vocab.name), inside(src, merges.name)
    except ZooError as exc:
        return None, str(exc)
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    try:
        tok = Tokenizer(models.BPE.from_file(str(vocab), str(merges)))
    except Exception as exc:  # the library raises plain Exception on a bad file
        return None, f"{vocab} / {merges}: not a BPE vocabulary ({exc})"
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return json.loads(tok.to_str()), f"{vocab} + {merges.name}"


def bpe_problems(data: dict[str, Any] | None, where: str) -> list[str]:
    """Why a tokenizer.json cannot become zoo's byte-level BPE (empty when it can)."""
    if data is None:
        return [where]
    model = data.get("model") or {}
    if model.get("type") != "BPE":
        return [f"{where}: a {model.get('type') or 'unknown'} tokenizer, not a byte-level BPE"]
    if not (_byte_level(data.get("pre_tokenizer")) and _byte_level(data.get("decoder"))):
        return [f"{where}: a BPE without the ByteLevel pre-tokenizer and decoder (not GPT-2's byte-level BPE)"]
    if not zoo_layout(data):
        clash = sorted(s for s in SPECIALS if s in (model.get("vocab") or {}))
        if clash:
            return [(f"{where}: its vocabulary has {clash[0]!r} at another id than zoo's specials "
                     "(<pad> <unk> <bos> <eos> = 0-3)")]
    return []


def zoo_layout(data: dict[str, Any]) -> bool:
    """Whether ids 0-3 already are zoo's special tokens (a folder zoo exported)."""
    added = {t.get("id"): t.get("content") for t in data.get("added_tokens") or [] if t.get("special")}
    return [added.get(i) for i in range(len(SPECIALS))] == list(SPECIALS)


def vocab_size(data: dict[str, Any]) -> int:
    ids = list((data.get("model") or {}).get("vocab", {}).values())
    ids += [t["id"] for t in data.get("added_tokens") or []]
    return max(ids) + 1 if ids else 0


def shift_ids(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with every id moved up by 4 and zoo's specials at ids 0-3."""
    n = len(SPECIALS)
    out = json.loads(json.dumps(data))
    model = out["model"]
    model["vocab"] = {**{s: i for i, s in enumerate(SPECIALS)}, **{t: i + n for t, i in model["vocab"].items()}}
    specials = [{"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False,
                 "special": True} for i, s in enumerate(SPECIALS)]
    out["added_tokens"] = specials + [{**t, "id": t["id"] + n} for t in out.get("added_tokens") or []]
    if (out.get("post_processor") or {}).get("type") != "ByteLevel":
        out["post_processor"] = None  # a template adding the source's specials: zoo adds none
    return out


def unshift_ids(data: dict[str, Any]) -> dict[str, Any]:
    """The inverse of :func:`shift_ids`: zoo's specials at ids 0-3 removed, every other id moved down by 4."""
    n = len(SPECIALS)
    out = json.loads(json.dumps(data))
    model = out["model"]
    model["vocab"] = {t: i - n for t, i in model["vocab"].items() if i >= n}
    out["added_tokens"] = [{**t, "id": t["id"] - n} for t in out.get("added_tokens") or [] if t["id"] >= n]
    return out


def source_files(state: dict[str, Any], source: dict[str, Any], block_size: int) -> dict[str, str]:
    """The tokenizer files of an imported BPE in its source's id layout (zoo's four specials taken out, if any)."""
    data = json.loads(state["tokenizer_json"])
    text = json.dumps(unshift_ids(data) if source.get("id_shift") else data, ensure_ascii=False)
    config: dict[str, Any] = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": block_size,
                              "clean_up_tokenization_spaces": False, "add_prefix_space": False}
    config.update({k: v for k, v in (source.get("special_tokens") or {}).items() if isinstance(v, str)})
    return {"tokenizer.json": text, "tokenizer_config.json": json.dumps(config, indent=2) + "\n"}


def special_tokens(data: dict[str, Any], cfg: dict[str, Any]) -> dict[str, str]:
    """``bos_token`` / ``eos_token`` / ``pad_token`` of a source folder: its config's ids looked up in its vocabulary."""
    names = {i: t for t, i in (data.get("model") or {}).get("vocab", {}).items()}
    names.update({t["id"]: t["content"] for t in data.get("added_tokens") or []})
    out = {}
    for key in ("bos", "eos", "pad"):
        i = cfg.get(f"{key}_token_id")
        if isinstance(i, int) and i in names:
            out[f"{key}_token"] = names[i]
    return out


def has_id(data: dict[str, Any], token_id: Any) -> bool:
    """Whether ``token_id`` is an id of the tokenizer.json ``data`` (its vocabulary or an added token)."""
    ids = set((data.get("model") or {}).get("vocab", {}).values()) | {t.get("id") for t in data.get("added_tokens") or []}
    return isinstance(token_id, int) and not isinstance(token_id, bool) and token_id in ids


def read_bpe(src: Path, eos_id: Any = None) -> tuple[dict[str, Any], int]:
    """(zoo bpe tokenizer state, how far ids moved: 0 or 4) of a folder; :class:`ValueError` when impossible.

    A folder zoo exported already has zoo's specials at ids 0-3. Any other keeps its own ids when
    its config names an end-of-text id (``eos_token_id``, GPT-2's ``<|endoftext|>``): that token
    serves as zoo's <pad> <unk> <bos> <eos> (the state's ``specials``), so the vocabulary, the
    logits and the probabilities are exactly the folder's. Without one, every id moves up by 4
    and zoo's specials go in front.
    """
    from tokenizers import Tokenizer

    data, where = source_json(src)
    problems = bpe_problems(data, where)
    if problems or data is None:
        raise ValueError(problems[0] if problems else where)
    if zoo_layout(data):
        return {"tokenizer_json": json.dumps(data, ensure_ascii=False)}, 0
    if has_id(data, eos_id):
        out = json.loads(json.dumps(data))
        if (out.get("post_processor") or {}).get("type") != "ByteLevel":
            out["post_processor"] = None  # a template adding the source's specials: zoo adds none
        return {"tokenizer_json": json.dumps(out, ensure_ascii=False), "specials": dict.fromkeys(
            ("pad", "unk", "bos", "eos"), eos_id)}, 0
    shift = len(SPECIALS)
    text = json.dumps(shift_ids(data), ensure_ascii=False)
    # the moved vocabulary encodes exactly as the source, ids + 4
    sample = "Hello, world! Ünïcödé 123\n\ttabs  and   spaces <eos> <|endoftext|>"
    before, after = Tokenizer.from_str(json.dumps(data)), Tokenizer.from_str(text)
    before.encode_special_tokens = after.encode_special_tokens = True
    got = after.encode(sample, add_special_tokens=False).ids
    if got != [i + shift for i in before.encode(sample, add_special_tokens=False).ids]:
        raise ValueError(f"{where}: moving the ids up by {shift} changed how text is encoded; "
                         "this tokenizer cannot be imported")
    return {"tokenizer_json": text}, shift
