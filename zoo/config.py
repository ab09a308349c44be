"""Configs as dataclasses: ``--set`` parsing, strict validation, TOML round trip.

Every component declares a ``Config`` dataclass. Unknown keys and values of the
wrong type are :class:`ConfigError` naming the full key (``model.hidden``).
``None`` is written as the string ``"none"`` because TOML has no null.
"""

from __future__ import annotations

import copy
import dataclasses
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

from .errors import ConfigError

NONE = "none"


@dataclasses.dataclass
class EmptyConfig:
    """For components without options."""


def parse_value(text: str) -> Any:
    """A ``--set`` value: TOML syntax (``3``, ``1e-3``, ``true``, ``[1, 2]``, ``"x"``), else a bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


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


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep merge; ``override`` wins. Neither input is modified."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _type_name(tp: Any) -> str:
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
            return float(value)
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


def build(cls: type, values: dict[str, Any] | None, section: str) -> Any:
    """Instantiate config dataclass ``cls`` from ``values``; errors name ``section.key``."""
    values = dict(values or {})
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        valid = ", ".join(sorted(fields)) or "(none)"
        raise ConfigError(f"unknown key '{section}.{unknown[0]}'; valid keys of [{section}]: {valid}")
    hints = typing.get_type_hints(cls)
    kwargs = {k: coerce(v, hints[k], f"{section}.{k}") for k, v in values.items()}
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[{section}]: {exc}") from exc
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
    import tomli_w

    return tomli_w.dumps(_tomlable(data))


def load_toml(path: Path) -> dict[str, Any]:
    from .errors import ZooError

    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ZooError(f"{path}: cannot read ({exc.strerror})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
