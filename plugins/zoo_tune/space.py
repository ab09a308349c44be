"""Search spaces as data: parsing and validation, without Optuna.

A *tune table* says what ``zoo tune`` searches and how it scores a trial. An
entry's default lives in ``registry.toml``; a ``--space FILE`` replaces the
entry's space and overrides its settings::

    # registry.toml                              # --space FILE
    [entries.NAME.tune]                          [tune]
    metric = "val_exact_match"                   metric = "val_exact_match"
    pruner = "hyperband"                         pruner = "median"

    [entries.NAME.tune.space."optim.lr"]         [space."optim.lr"]
    type = "float"                               type = "float"
    low = 1e-3                                   low = 1e-3
    high = 3e-2                                  high = 3e-2
    log = true                                   log = true

Every parameter is a dotted config key (``SECTION.KEY``, as for ``--set``) with
one of three types:

- ``float``: ``low`` < ``high``; ``log = true`` samples the exponent (needs
  ``low > 0``); or ``step`` for a grid.
- ``int``: ``low`` < ``high``; ``step`` (``high - low`` a multiple of it) or
  ``log = true``.
- ``categorical``: ``choices``, a non-empty list of distinct strings, numbers or
  booleans.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import zoo
from zoo import SEED, ConfigError, Range

TYPES = ("float", "int", "categorical")
PARAM_KEYS = {
    "float": ("type", "low", "high", "log", "step"),
    "int": ("type", "low", "high", "log", "step"),
    "categorical": ("type", "choices"),
}


@dataclass
class Settings:
    """How trials are scored and pruned: the ``[tune]`` table."""

    # e.g. "val_exact_match"; none: the entry's train.early_stopping, else the task's first metric
    metric: str | None = None
    direction: Literal["minimize", "maximize"] | None = None  # none: the way the task ranks the metric
    pruner: Literal["hyperband", "median", "none"] = "hyperband"
    # hyperband: about 1 in reduction_factor trials goes on at each rung
    reduction_factor: Annotated[int, Range(2, 100)] = 3
    # median: trials that are never pruned, to learn the median from
    startup_trials: Annotated[int, Range(0, 10_000)] = 5
    seed: Annotated[int, SEED] | None = None  # sampler seed; none: a fresh random one each run
    baseline: bool = True  # a new study's first trial is the entry's own configuration, when it lies inside the space

    def validate(self) -> None:
        if self.metric is not None and not self.metric.startswith("val_"):
            raise ValueError(f"metric must be a validation metric such as 'val_loss', got {self.metric!r}")


@dataclass(frozen=True)
class Param:
    """One searched config key and its range."""

    key: str  # dotted config key, e.g. "optim.lr"
    type: str  # float | int | categorical
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Any, ...] = ()

    def probes(self) -> list[Any]:
        """The values that validation resolves: both ends of a range, every choice."""
        return list(self.choices) if self.type == "categorical" else [self.low, self.high]

    @property
    def first(self) -> Any:
        return self.probes()[0]

    def contains(self, value: Any) -> bool:
        if self.type == "categorical":
            return any(value == c and type(value) is type(c) for c in self.choices)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.type == "int" and not isinstance(value, int):
            return False
        if not self.low <= value <= self.high:
            return False
        if self.step is not None:
            k = (value - self.low) / self.step
            return abs(k - round(k)) < 1e-9
        return True

    def as_dict(self) -> dict[str, Any]:
        if self.type == "categorical":
            return {"type": self.type, "choices": list(self.choices)}
        out: dict[str, Any] = {"type": self.type, "low": self.low, "high": self.high, "log": self.log}
        if self.step is not None:
            out["step"] = self.step
        return out


@dataclass
class TuneSpec:
    """A validated tune table: the settings and the space, and where they came from."""

    settings: Settings
    space: dict[str, Param]
    where: str  # "registry entry zoo:subseq-gru" or the --space file
    raw_settings: dict[str, Any] = field(default_factory=dict)


def _number(value: Any, what: str, integer: bool) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{what} must be {'an integer' if integer else 'a number'}, got {value!r}")
    if integer and not isinstance(value, int):
        raise ConfigError(f"{what} must be an integer for an int parameter, got {value!r}")
    if not integer and not math.isfinite(value):
        raise ConfigError(f"{what} must be finite, got {value!r}")
    return int(value) if integer else float(value)


def parse_param(key: str, spec: Any, where: str) -> Param:
    """One ``[space."KEY"]`` table -> :class:`Param`; every mistake is a ConfigError naming it."""
    name = f"{where}: space '{key}'"
    parts = key.split(".")
    if len(parts) < 2 or not all(p.strip() for p in parts):
        raise ConfigError(f"{name}: a parameter is a dotted config key SECTION.KEY, e.g. 'optim.lr' "
                          "(quote it in TOML: [space.\"optim.lr\"])")
    if not isinstance(spec, dict):
        raise ConfigError(f"{name} must be a table with 'type' and its range, got {spec!r}")
    kind = spec.get("type")
    if kind not in TYPES:
        got = "no 'type'" if kind is None else f"type {kind!r}"
        raise ConfigError(f"{name}: {got}; use one of {', '.join(TYPES)}")
    unknown = sorted(set(spec) - set(PARAM_KEYS[kind]))
    if unknown:
        raise ConfigError(f"{name}: unknown key '{unknown[0]}' for a {kind} parameter; "
                          f"valid keys: {', '.join(PARAM_KEYS[kind])}")
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{name}: a categorical parameter needs 'choices', a non-empty list, got {choices!r}")
        for c in choices:
            if not isinstance(c, (str, int, float, bool)):
                raise ConfigError(f"{name}: choice {c!r} must be a string, number or boolean")
        if len({(type(c), c) for c in choices}) != len(choices):
            raise ConfigError(f"{name}: choices {choices!r} repeat a value")
        return Param(key, kind, choices=tuple(choices))
    integer = kind == "int"
    for bound in ("low", "high"):
        if bound not in spec:
            raise ConfigError(f"{name}: a {kind} parameter needs 'low' and 'high'")
    low = _number(spec["low"], f"{name}: low", integer)
    high = _number(spec["high"], f"{name}: high", integer)
    if low >= high:
        raise ConfigError(f"{name}: empty range, low ({low}) must be below high ({high})")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"{name}: log must be true or false, got {log!r}")
    step = spec.get("step")
    if step is not None:
        step = _number(step, f"{name}: step", integer)
        if step <= 0:
            raise ConfigError(f"{name}: step must be > 0, got {step}")
        if log and (not integer or step != 1):
            raise ConfigError(f"{name}: use either log = true or a step, not both")
        if integer and (high - low) % step:
            raise ConfigError(f"{name}: high ({high}) is not low ({low}) plus a multiple of step ({step}); "
                              f"use high = {low + (high - low) // step * step}")
        if integer and step == 1:
            step = None
    if log and low <= 0:
        raise ConfigError(f"{name}: log = true needs low > 0, got {low}")
    return Param(key, kind, low, high, log, step)


def parse_space(table: Any, where: str) -> dict[str, Param]:
    if not isinstance(table, dict) or not table:
        raise ConfigError(f"{where}: 'space' must be a non-empty table of parameters, e.g. "
                          "[space.\"optim.lr\"] type = \"float\" low = 1e-4 high = 1e-2 log = true")
    return {key: parse_param(key, spec, where) for key, spec in table.items()}


def parse_settings(table: Any, where: str) -> Settings:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: [tune] must be a table of settings, got {table!r}")
    try:
        return zoo.build_config(Settings, table, "tune")
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def entry_table(entry: str) -> tuple[str, dict[str, Any]]:
    """(canonical id, the entry's ``tune`` table or {})."""
    spec = zoo.get_registry().get("entry", entry)
    table = spec.data.get("tune", {})
    if not isinstance(table, dict):
        raise ConfigError(f"registry entry {spec.id}: 'tune' must be a table, got {table!r}")
    return spec.id, table


def load_spec(entry: str, space_file: str | Path | None = None) -> TuneSpec:
    """The entry's default tune table, with ``space_file`` replacing its space and overriding its settings."""
    entry_id, table = entry_table(entry)
    settings = {k: v for k, v in table.items() if k != "space"}
    space_table, where = table.get("space"), f"registry entry {entry_id} [tune]"
    if space_file is not None:
        where = str(space_file)
        data = zoo.load_toml(Path(space_file))
        unknown = sorted(set(data) - {"space", "tune"})
        if unknown:
            raise ConfigError(f"{where}: unknown table '{unknown[0]}'; a space file holds [space.\"SECTION.KEY\"] "
                              "tables and an optional [tune] table")
        if "space" not in data:
            raise ConfigError(f"{where}: no [space] tables; declare parameters as [space.\"optim.lr\"] ...")
        file_settings = data.get("tune", {})
        if not isinstance(file_settings, dict):
            raise ConfigError(f"{where}: [tune] must be a table of settings, got {file_settings!r}")
        settings = {**settings, **file_settings}
        space_table = data["space"]
    elif space_table is None:
        raise ConfigError(f"entry {entry_id} declares no search space: pass --space FILE with "
                          "[space.\"SECTION.KEY\"] tables (see 'zoo tune --help')")
    return TuneSpec(parse_settings(settings, where), parse_space(space_table, where), where, settings)


# --- checking a space against an entry -------------------------------------------------------------

def nest(flat: dict[str, Any]) -> dict[str, Any]:
    """``{"optim.lr": 0.01}`` -> ``{"optim": {"lr": 0.01}}``."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """The inverse of :func:`nest`."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{path}."))
        else:
            out[path] = value
    return out


def lookup(data: dict[str, Any], key: str) -> Any:
    node: Any = data
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def check_space(entry: str, base: dict[str, Any], spec: TuneSpec) -> None:
    """Resolve the entry with every end of every range (and every choice), the others at their first value.

    An unknown key, a value of the wrong type or one the config refuses is a
    ConfigError naming the parameter, with zoo.config's list of the section's valid keys.
    """
    fixed = sorted(set(flatten(base)) & set(spec.space))
    if fixed:
        raise ConfigError(f"'{fixed[0]}' is both searched ({spec.where}) and fixed by --set/--config; drop one")
    firsts = {k: p.first for k, p in spec.space.items()}
    for key, param in spec.space.items():
        for value in param.probes():
            overrides = zoo.merge_config(base, nest({**firsts, key: value}))
            try:
                zoo.resolve_entry(entry, overrides)
            except ConfigError as exc:
                raise ConfigError(f"{spec.where}: space '{key}' = {value!r}: {exc}") from None
