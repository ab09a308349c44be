"""Files from outside are bounded before they cost anything.

An artifact, a Hugging Face folder or a user's data file may be hand-made: what it
declares is checked before zoo acts on it, and what it says is made harmless before
zoo prints it.

- :func:`loads`: JSON whose nesting is bounded (:data:`MAX_DEPTH`), a ``ValueError`` otherwise,
  never a ``RecursionError``.
- :func:`check_build`: the model a file describes, built on torch's ``meta`` device (shapes, no
  storage), must not have more parameters than the file holds values, nor need more memory
  than this machine has; both are refused before any real allocation.
- :func:`printable`: control characters (terminal escape sequences, bidi overrides) escaped.
- :func:`clip`: a bounded, printable prefix of a piece of input quoted in an error message.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from zoo.errors import ArtifactError, first_line
from zoo.runtime.memory import _count, _size, available_memory

log = logging.getLogger(__name__)

MAX_DEPTH = 64  # nesting of JSON read from a file; what zoo writes stays under 10
QUOTE_CHARS = 80  # characters of a user's input quoted in an error message

# C0 and C1 controls, DEL, line/paragraph separators and the bidi marks that reorder text on a terminal;
# zero-width joiners stay (Persian, Indic scripts and emoji need them)
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")


def loads(text: str | bytes) -> Any:
    """``json.loads`` that raises ``ValueError`` for nesting deeper than :data:`MAX_DEPTH`."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise ValueError(f"JSON nested deeper than {MAX_DEPTH} levels") from None
    check_depth(value)
    return value


def check_depth(value: Any, limit: int = MAX_DEPTH) -> None:
    """``ValueError`` when lists and objects in ``value`` nest deeper than ``limit`` (walked without recursion)."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is None:
            continue
        if depth > limit:
            raise ValueError(f"JSON nested deeper than {limit} levels")
        stack.extend((child, depth + 1) for child in children)


def printable(text: Any, keep: str = "") -> str:
    """``text`` with control characters written as ``\\x1b`` / ``\\u202e`` escapes: safe to print.
    ``keep``: control characters left as they are (``"\\n\\t"`` for multi-line text such as code)."""
    return _CONTROL.sub(lambda m: m.group() if m.group() in keep else _escape(m.group()), str(text))


def _escape(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def clip(text: Any, limit: int = QUOTE_CHARS) -> str:
    """At most ``limit`` characters of ``text``, "..." when cut, control characters escaped."""
    text = str(text)
    return printable(text[:limit]) + ("..." if len(text) > limit else "")


def check_build(where: Any, model_cls: Any, config: Any, sizes: dict[str, Any], *, stored: int | None,
                available: int | None = None, error: type[Exception] = ArtifactError, what: Any = "") -> None:
    """Refuse a model that a file describes and cannot hold or this machine cannot load, before building it.

    ``stored``: how many values the file's weights hold (a model with more parameters cannot be
    filled from it); ``available``: bytes of memory (default: :func:`zoo.runtime.memory.available_memory`).
    A model that cannot be built on the meta device is not estimated: its real build says why.
    """
    import torch

    try:
        with torch.device("meta"):
            model = model_cls(config, **sizes)
    except Exception as exc:  # noqa: BLE001 - no estimate; the real build reports real errors
        log.debug("no size estimate for %s: %s", where, exc)
        return
    n_params = sum(p.numel() for p in model.parameters())
    need = sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))
    if stored is not None and n_params > stored:
        raise error(f"{where}: weights do not fit model {what or model_cls.__name__}: its config and sizes "
                    f"describe {_count(n_params)} parameters, but its weights hold {_count(stored)} values "
                    "(a damaged or hand-made file)")
    available = available_memory() if available is None else available
    if available is not None and need > available:
        raise error(f"{where}: the model it describes ({_count(n_params)} parameters) needs about {_size(need)} "
                    f"to load; this machine has {_size(available)} available: load it where more memory is free")


def build_error(where: Any, exc: BaseException, error: type[Exception] = ArtifactError) -> Exception:
    """The one-line error for a model whose real build failed on a file's config and sizes."""
    return error(f"{where}: cannot build the model from its config and sizes ({first_line(exc)})")


def check_sizes(where: Any, stored: dict[str, int], reported: dict[str, int], *, values: bool = True) -> None:
    """The ``sizes`` a file records against those its restored task reports (``values``: compare them too)."""
    for key in stored:
        if key not in reported:
            raise ArtifactError(f"{where}: metadata 'sizes.{clip(key)}' is not a size its task reports "
                                f"({', '.join(sorted(reported))}); the file is damaged")
    for key, value in reported.items():
        if key not in stored:
            raise ArtifactError(f"{where}: metadata 'sizes' has no '{key}', which its task needs; the file is damaged")
        if values and stored[key] != value:
            raise ArtifactError(f"{where}: metadata 'sizes.{key}' is {stored[key]}, but the tokenizers in its "
                                f"metadata 'tokenizers' give {value}; the file is damaged")
