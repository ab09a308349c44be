"""Config fields as data: each field's key, type, default, allowed range and meaning.

The meaning is the comment written beside a field, or in the comment lines right above
it (a comment block that follows a field and ends the class continues that field's
comment), read from the dataclass's source, so ``zoo info`` and the docs say what
the code says. A class whose source cannot be read gets fields without meanings.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import io
import textwrap
import tokenize
import types
import typing
from typing import Any

from zoo.config import _strip, _type_name, field_ranges

REQUIRED = "(required)"


@dataclasses.dataclass(frozen=True)
class FieldDoc:
    """One key of a config section, as ``zoo info`` prints it."""

    name: str
    type: str  # "int | none", "'auto' | 'off'", ...
    default: Any  # the default value (REQUIRED when the field has none)
    range: str  # "in [0, 1)", ">= 1 (none: no clipping)", or ""
    meaning: str  # from the source's comments, or ""


def field_docs(cls: type) -> list[FieldDoc]:
    """Every init field of config dataclass ``cls``, in declaration order."""
    hints = typing.get_type_hints(cls, include_extras=True)
    ranges = field_ranges(cls)
    meanings = field_comments(cls)
    out = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = REQUIRED
        span = "; ".join(r.describe() + (f" ({r.note})" if r.note else "") for r in ranges.get(f.name, ()))
        out.append(FieldDoc(f.name, type_text(hints[f.name]), default, span, meanings.get(f.name, "")))
    return out


def type_text(tp: Any) -> str:
    """A config annotation in words: ``int | none``, ``list of str``, ``[float, float]``, ``table of int``."""
    tp = _strip(tp)[0]
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_text(a) for a in args)
    if origin is typing.Literal:
        return " | ".join(show_value(a) for a in args)
    if origin is tuple and args and args[-1] is not Ellipsis:
        return "[" + ", ".join(type_text(a) for a in args) + "]"
    if origin in (list, tuple) and args:
        return f"list of {type_text(args[0])}"
    if origin is dict and len(args) == 2:
        return f"table of {type_text(args[1])}"
    return _type_name(tp)


def field_comments(cls: type) -> dict[str, str]:
    """Field name -> its comment text, read from the source of ``cls`` ({} when there is none to read)."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
        tree = ast.parse(source)
        comments = _comments(source)
    except (OSError, TypeError, SyntaxError, tokenize.TokenError):
        return {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    fields = [(s.target.id, s.lineno, s.end_lineno or s.lineno) for s in body
              if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)]
    starts = {start for _, start, _ in fields}
    out = {}
    for name, start, end in fields:
        above = []
        n = start - 1
        while n >= 1 and comments.get(n, (None, False))[1]:
            above.insert(0, comments[n][0])
            n -= 1
        inline = [comments[n][0] for n in range(start, end + 1) if n in comments]
        after = []
        n = end + 1
        while inline and n in comments and comments[n][1]:  # a trailing comment continued below the field
            after.append(comments[n][0])
            n += 1
        if n in starts:  # no: the block is the next field's comment
            after = []
        text = " ".join(c for c in above + inline + after if c)
        if text:
            out[name] = text
    return out


def _comments(source: str) -> dict[int, tuple[str, bool]]:
    """Line number -> (comment text, whether the comment is the whole line)."""
    out: dict[int, tuple[str, bool]] = {}
    lines = source.splitlines()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            row, col = tok.start
            text = tok.string.lstrip("#").strip()
            out[row] = (text, not lines[row - 1][:col].strip())
    return out


def show_value(value: Any) -> str:
    """A default as a user types it after ``--set KEY=``: ``none``, ``true``, ``"text"``, ``[0.9, 0.999]``."""
    if value is REQUIRED:
        return value
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(show_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {show_value(v)}" for k, v in value.items()) + "}"
    return repr(value)


def describe_fields(cls: type, section: str, indent: str = "  ") -> list[str]:
    """Lines for every field of ``cls``: ``section.key = default  (type, range)`` and its meaning below."""
    out = []
    for d in field_docs(cls):
        detail = ", ".join(x for x in (d.type, d.range) if x)
        out.append(f"{indent}{section}.{d.name} = {show_value(d.default)}  ({detail})")
        if d.meaning:
            out.append(f"{indent}    {d.meaning}")
    return out
