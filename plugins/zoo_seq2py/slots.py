"""CoNaLa's intent slots: quoted values in an intent become placeholders, and come back in the code.

An intent such as ``sort list `lst` by key 'name'`` reads ``sort list var_0 by key str_0``;
the code ``sorted(lst, key=lambda d: d['name'])`` reads ``sorted(var_0, key=lambda d: d['str_0'])``.
A value that is a Python identifier becomes ``var_N``, any other value ``str_N`` (numbered
in order of appearance). The model learns with placeholders; :func:`restore` puts the
values back into the code it generates.
"""

from __future__ import annotations

import keyword
import re

# a value between matching quotes: '' (two apostrophes), `, ' or "; the shortest match
QUOTED = re.compile(r"(?P<q>''|[`'\"])(?P<value>.*?)(?P=q)")
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
SLOT = re.compile(r"(?:var|str)_[0-9]")  # no word boundaries: generated code may glue a slot to its neighbours
MAX_SLOTS = 10  # slot names per kind that every vocabulary holds (var_0..var_9, str_0..str_9)


def slot_intent(intent: str) -> tuple[str, dict[str, str], set[str]]:
    """The intent with quoted values replaced by slot names, the map slot name -> value, and
    the names of values written in backquotes (CoNaLa's mark for code), which :func:`slot_code`
    also replaces where they stand bare in the code, not only inside string literals.

    Past ``MAX_SLOTS`` values of a kind, further values stay in the intent as they are.
    """
    names: dict[str, str] = {}  # value -> slot name
    counts = {"var": 0, "str": 0}
    code_like: set[str] = set()

    def replace(m: re.Match[str]) -> str:
        value = m.group("value")
        if not value.strip():
            return m.group(0)
        if value not in names:
            kind = "var" if IDENTIFIER.match(value) and not keyword.iskeyword(value) else "str"
            if counts[kind] >= MAX_SLOTS:
                return m.group(0)
            names[value] = f"{kind}_{counts[kind]}"
            counts[kind] += 1
        if m.group("q") == "`":
            code_like.add(names[value])
        return f" {names[value]} "

    text = re.sub(r"\s+", " ", QUOTED.sub(replace, intent)).strip()
    return text, {name: value for value, name in names.items()}, code_like


def _pattern(name: str, value: str, code_like: bool) -> str:
    """Where ``value`` counts as an occurrence in code: a whole name for var slots; for str slots
    the whole content of a string literal, or (backquoted values) any bare occurrence."""
    esc = re.escape(value)
    if name.startswith("var") or code_like:
        if re.match(r"\w", value):
            esc = r"(?<![A-Za-z0-9_])" + esc
        if re.search(r"\w\Z", value):
            esc += r"(?![A-Za-z0-9_])"
        return esc
    return r"(?<=['\"])" + esc + r"(?=['\"])"


def slot_code(code: str, slots: dict[str, str], code_like: set[str] | frozenset[str] = frozenset()) -> str:
    """``code`` with occurrences of slot values replaced by the slot names (one pass, longest value first)."""
    if not slots:
        return code
    by_value = {value: name for name, value in slots.items()}
    ordered = sorted(slots.items(), key=lambda kv: len(kv[1]), reverse=True)
    pattern = re.compile("|".join(_pattern(n, v, n in code_like) for n, v in ordered))
    return pattern.sub(lambda m: by_value[m.group(0)], code)


def restore(code: str, slots: dict[str, str]) -> str:
    """Generated ``code`` with slot names replaced by their values (unknown slot names are kept)."""
    if not slots:
        return code
    return SLOT.sub(lambda m: slots.get(m.group(0), m.group(0)), code)


def slot_names() -> list[str]:
    return [f"{kind}_{i}" for kind in ("var", "str") for i in range(MAX_SLOTS)]
