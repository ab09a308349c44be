"""Configs as dataclasses: ``--set`` parsing, strict validation, TOML round trip.

Every component declares a ``Config`` dataclass. Unknown keys and values of the
wrong type are :class:`ConfigError` naming the full key (``model.hidden``).
``None`` is written as the string ``"none"`` because TOML has no null.
Allowed values are declared beside the type, with :class:`Range` in ``Annotated``::

    hidden: Annotated[int, Range(1, 65536)] = 256    # 1 <= hidden <= 65536
    dropout: Annotated[float, Range(0, lt=1)] = 0.1  # [0, 1): gt= and lt= make an end open
    clip_norm: Annotated[float, Range(gt=0, note="none: no clipping")] | None = 1.0
    betas: Annotated[tuple[float, float], Range(0, lt=1)] = (0.9, 0.999)  # each item (dict: each value)

Either end may be left out; ``None`` passes. :func:`build` enforces ranges after types
and before ``validate()``, naming the key, the value and the range. Every float must also
be finite (unless ``Range(finite=False)``) and every int fit in 64 bits, declared or not.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import operator
import tomllib
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from zoo.errors import ConfigError

NONE = "none"
_BOUNDS = (("ge", operator.ge), ("gt", operator.gt), ("le", operator.le), ("lt", operator.lt))


@dataclasses.dataclass(frozen=True)
class Range:
    """The values a numeric config field allows; see the module docstring."""

    ge: float | None = None  # value >= ge
    le: float | None = None  # value <= le
    gt: float | None = None  # value > gt
    lt: float | None = None  # value < lt
    finite: bool = True  # a float must not be nan or +-inf
    note: str = ""  # added to the error message: what the bounds mean, what to use instead

    def __contains__(self, value: float) -> bool:  # nan is in no range with a bound
        return all(getattr(self, name) is None or ok(value, getattr(self, name)) for name, ok in _BOUNDS)

    def describe(self) -> str:
        """``in [0, 1)``, ``>= 1``, ``> 0``..."""
        lo = self.ge if self.ge is not None else self.gt
        hi = self.le if self.le is not None else self.lt
        if lo is not None and hi is not None:
            return f"in {'[' if self.gt is None else '('}{_num(lo)}, {_num(hi)}{']' if self.lt is None else ')'}"
        if lo is not None:
            return f"{'>=' if self.gt is None else '>'} {_num(lo)}"
        return f"{'<=' if self.lt is None else '<'} {_num(hi)}" if hi is not None else "any number"


SEED = Range(0, 2**32 - 1)  # every seed random, numpy, torch and gensim take, with room for derived seeds


def _num(x: float) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


@dataclasses.dataclass
class EmptyConfig:
    """For components without options."""


def parse_value(text: str) -> Any:
    """A ``--set`` value: TOML syntax (``3``, ``1e-3``, ``true``, ``[1, 2]``, ``"x"``), else a bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def read_overrides(sets: typing.Iterable[str] = (), config_file: str | Path | None = None) -> dict[str, Any]:
    """The overrides of a command line: the TOML file ``config_file`` (``--config``), then ``sets``
    (``--set KEY=VALUE``, which win). ``zoo train``, ``zoo tune`` and ``zoo import`` read them alike."""
    base = load_toml(Path(config_file)) if config_file else {}
    return merge(base, parse_sets(sets))


def parse_sets(items: typing.Iterable[str]) -> dict[str, Any]:
    """``["model.hidden=256", "train.epochs=3"]`` -> nested dict."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"--set {item!r}: expected SECTION.KEY=VALUE, e.g. --set model.hidden=256")
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: '{part}' is set both as a value and as a section")
        node[leaf] = parse_value(value.strip())
    return out


def merge(base: dict[str, Any], *overrides: dict[str, Any]) -> dict[str, Any]:
    """Deep merge; each of ``overrides`` wins over those before it and ``base``. No input is modified."""
    out = copy.deepcopy(base)
    for override in overrides:
        for key, value in override.items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = merge(out[key], value)
            else:
                out[key] = copy.deepcopy(value)
    return out


def _type_name(tp: Any) -> str:
    tp = _strip(tp)[0]
    if tp is type(None):
        return NONE
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", str(tp))


def coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; return it (ints widen to float)."""
    tp = _strip(tp)[0]
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if tp is type(None):
        if value is None or (isinstance(value, str) and value.lower() in (NONE, "null")):
            return None
    elif origin in (Union, types.UnionType):
        for arm in sorted(args, key=lambda a: a is not type(None)):  # try None first
            try:
                return coerce(value, arm, key)
            except ConfigError:
                continue
    elif origin is Literal:
        if value in args:
            return value
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                return float(value)
            except OverflowError:
                raise ConfigError(f"'{key}' is too large for a float (above 1.8e308)") from None
    elif tp is str:
        if isinstance(value, str):
            return value
    elif origin in (list, tuple) or tp in (list, tuple):
        if isinstance(value, (list, tuple)):
            if origin is tuple and args and args[-1] is not Ellipsis:
                if len(args) != len(value):
                    raise ConfigError(f"'{key}' needs {len(args)} values, got {len(value)}")
                return tuple(coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
            item = args[0] if args else Any
            items = [coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
            return tuple(items) if (origin or tp) is tuple else items
    elif origin is dict or tp is dict:
        if isinstance(value, dict):
            vt = args[1] if args else Any
            return {str(k): coerce(v, vt, f"{key}.{k}") for k, v in value.items()}
    else:  # pragma: no cover - a config annotation we do not support
        raise ConfigError(f"'{key}' has an unsupported type annotation {tp!r}")
    raise ConfigError(f"'{key}' must be {_type_name(tp)}, got {value!r} ({type(value).__name__})")


def _strip(tp: Any) -> tuple[Any, tuple[Range, ...]]:
    """``Annotated[T, Range(...), ...]`` -> (T, its ranges); any other type -> (tp, ())."""
    if typing.get_origin(tp) is Annotated:
        return tp.__origin__, tuple(m for m in tp.__metadata__ if isinstance(m, Range))
    return tp, ()


def _fits(value: Any, tp: Any) -> bool:
    try:
        coerce(value, tp, "")
    except ConfigError:
        return False
    return True


def check(value: Any, tp: Any, key: str, ranges: tuple[Range, ...] = ()) -> None:
    """Refuse a value (already coerced to ``tp``) outside its ranges, a float that is not finite, or an
    int beyond 64 bits; the ranges of a container hold for each of its items."""
    tp, more = _strip(tp)
    ranges += more
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if value is None:
        return
    if origin in (Union, types.UnionType):
        arm = next((a for a in sorted(args, key=lambda a: a is not type(None)) if _fits(value, a)), Any)
        check(value, arm, key, ranges)
    elif isinstance(value, dict):
        for k, v in value.items():
            check(v, args[1] if len(args) == 2 else Any, f"{key}.{k}", ranges)
    elif isinstance(value, (list, tuple)):
        fixed = origin is tuple and args and args[-1] is not Ellipsis
        items = args if fixed else (args[0] if args else Any,) * len(value)
        for i, (v, t) in enumerate(zip(value, items)):
            check(v, t, f"{key}[{i}]", ranges)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        _check_number(value, key, ranges)


def _check_number(value: float, key: str, ranges: tuple[Range, ...]) -> None:
    for r in ranges:
        note = f" ({r.note})" if r.note else ""
        if isinstance(value, float) and not math.isfinite(value) and r.finite:
            raise ConfigError(f"{key} must be a finite number {r.describe()}, got {value}{note}")
        if value not in r:
            raise ConfigError(f"{key} must be {r.describe()}, got {value!r}{note}")
    if isinstance(value, float) and not math.isfinite(value) and not ranges:
        raise ConfigError(f"{key} must be a finite number, got {value}")
    if isinstance(value, int) and not -(2**63) <= value < 2**63:  # what torch and numpy hold in an integer
        raise ConfigError(f"{key} must fit in a signed 64-bit integer, got {value}")


def field_ranges(cls: type) -> dict[str, tuple[Range, ...]]:
    """Each field of config dataclass ``cls`` -> the ranges declared anywhere in its annotation."""

    def walk(tp: Any) -> tuple[Range, ...]:
        tp, found = _strip(tp)
        for arg in typing.get_args(tp) if typing.get_origin(tp) is not Literal else ():
            found += walk(arg)
        return found

    hints = typing.get_type_hints(cls, include_extras=True)
    return {f.name: walk(hints[f.name]) for f in dataclasses.fields(cls) if f.init}


def build(cls: type, values: dict[str, Any] | None, section: str) -> Any:
    """Instantiate config dataclass ``cls`` from ``values``; errors name ``section.key``."""
    values = dict(values or {})
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        valid = ", ".join(sorted(fields)) or "(none)"
        raise ConfigError(f"unknown key '{section}.{unknown[0]}'; valid keys of [{section}]: {valid}")
    hints = typing.get_type_hints(cls, include_extras=True)
    kwargs = {k: coerce(v, hints[k], f"{section}.{k}") for k, v in values.items()}
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[{section}]: {exc}") from exc
    for name in fields:  # defaults too: a default outside its own range is a bug worth hearing about
        check(getattr(obj, name), hints[name], f"{section}.{name}")
    validate = getattr(obj, "validate", None)
    if callable(validate):
        try:
            validate()
        except ValueError as exc:
            raise ConfigError(f"[{section}] {exc}") from exc
    return obj


def as_dict(obj: Any) -> dict[str, Any]:
    return dataclasses.asdict(obj)


def _tomlable(value: Any) -> Any:
    if value is None:
        return NONE
    if isinstance(value, dict):
        return {str(k): _tomlable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_tomlable(v) for v in value]
    return value


def dumps_toml(data: dict[str, Any]) -> str:
    """``data`` as TOML text; None is written ``none`` (TOML has no null)."""
    import tomli_w

    return tomli_w.dumps(_tomlable(data))


def load_toml(path: Path) -> dict[str, Any]:
    """A TOML file as a dict; a file that is not UTF-8 or not TOML is a ConfigError naming it (and the line)."""
    from zoo.errors import ZooError

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ZooError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}, line {line}: not UTF-8 text (byte 0x{data[exc.start]:02x}); "
                          "a config file is TOML, saved as UTF-8") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
