"""Name resolution: an entry (or a run's config) becomes validated config dataclasses and the specs they name."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from zoo import config as _config
from zoo.config.train import OptimConfig, TrainConfig
from zoo.errors import ConfigError, ZooError
from zoo.registry.discovery import get_registry
from zoo.registry.entries import entry_ids
from zoo.registry.names import Spec

SECTIONS = ("model", "task", "dataset", "tokenizer", "train", "optim")
COMPONENTS = ("model", "task", "dataset")


@dataclass
class Resolved:
    """A fully resolved run config, the component classes it names and what its entry declares.

    Everything a run needs from the registry is looked up here, once: the layers below the CLI take
    classes, the summary and the reference from this record instead of resolving names again.
    """

    data: dict[str, Any]
    specs: dict[str, Spec]  # "model", "task", "dataset", "tokenizer.ROLE"
    configs: dict[str, Any]  # same keys plus "train" and "optim"
    classes: dict[str, Any] = field(default_factory=dict)  # the specs' loaded classes, same keys
    entry: str = ""  # the entry's id, or "" for a config that names no entry
    summary: str = ""  # the entry's one-line summary
    reference: dict[str, Any] = field(default_factory=dict)  # the published result it declares, or {}

    def __post_init__(self) -> None:
        self.entry = self.entry or self.data.get("entry", "")

    def cls(self, key: str) -> Any:
        if key not in self.classes:
            self.classes[key] = self.specs[key].load()
        return self.classes[key]


def entry_config(name: str, overrides: dict[str, Any] | None = None) -> tuple[Spec, dict[str, Any]]:
    """The entry's raw config: the ids of its components, its config overrides, then ``overrides`` (nested
    sections, as ``--set`` gives them).

    ``name`` is what a user typed (an id, or a short name that must be unambiguous); the entry's
    own short component names are looked up in its plugin and the plugins that plugin depends on
    first (see :func:`zoo.registry.entries.entry_ids`), so no plugin installed later changes what it means.
    """
    reg = get_registry()
    spec = reg.get("entry", name)
    _check_entry_kept(reg, spec.id, (overrides or {}).get("entry"))
    ids = entry_ids(reg, spec)
    tok = ids.get("tokenizer", {})
    components: dict[str, Any] = {
        "model": {"name": ids["model"]}, "task": {"name": ids["task"]}, "dataset": {"name": ids["dataset"]},
        "tokenizer": {"name": tok} if isinstance(tok, str) else {r: {"name": n} for r, n in tok.items()},
        "train": {}, "optim": {},
    }
    # the entry's id is the config's identity, not a value to merge: neither its config nor --set may change it
    return spec, {**_config.merge(components, spec.data.get("config", {}), overrides or {}), "entry": spec.id}


def _check_entry_kept(reg: Any, entry: str, named: Any) -> None:
    """Overrides may repeat the entry (a run's config.toml given to ``--config``) but not name another one:
    the run's config.toml, artifact and card would claim an entry it was not trained as."""
    if named is None:
        return
    try:
        same = reg.get("entry", str(named)).id == entry
    except ZooError:
        same = False
    if not same:
        raise ConfigError(f"entry={named!r}: the config belongs to entry {entry}; 'entry' is not a setting "
                          "(to train another entry, name it instead)")


def resolve(raw: dict[str, Any]) -> Resolved:
    """Validate every section of ``raw`` against the named components' config dataclasses."""
    unknown = sorted(set(raw) - set(SECTIONS) - {"entry"})
    if unknown:
        raise ConfigError(f"unknown config section '{unknown[0]}'; sections: {', '.join(SECTIONS)}")
    reg = get_registry()
    data: dict[str, Any] = {"entry": raw.get("entry", "")}
    specs: dict[str, Spec] = {}
    configs: dict[str, Any] = {}
    classes: dict[str, Any] = {}

    def component(key: str, kind: str, section: dict[str, Any], where: str) -> None:
        section = dict(section)
        if "name" not in section:
            raise ConfigError(f"[{where}] needs a 'name' (the {kind} to use)")
        spec = reg.get(kind, str(section.pop("name")))
        cls = spec.load()
        cfg = _config.build(getattr(cls, "Config", _config.EmptyConfig), section, where)
        specs[key], configs[key], classes[key] = spec, cfg, cls
        data_node = {"name": spec.id, **_config.as_dict(cfg)}
        if "." in key:
            data.setdefault("tokenizer", {})[key.split(".", 1)[1]] = data_node
        else:
            data[key] = data_node

    for key in COMPONENTS:
        component(key, key, _section(raw, key), key)
    roles = classes["task"].tokenizer_roles
    tok = _section(raw, "tokenizer")
    if "name" in tok and not isinstance(tok["name"], dict):  # one tokenizer kind for every role
        tok = {role: dict(tok) for role in roles}
    extra = sorted(set(tok) - set(roles))
    if extra:
        raise ConfigError(f"unknown tokenizer role 'tokenizer.{extra[0]}'; the task uses roles: {', '.join(roles)}")
    for role in roles:
        if role not in tok:
            raise ConfigError(f"missing [tokenizer.{role}]: the task needs a tokenizer for role '{role}'")
        component(f"tokenizer.{role}", "tokenizer", tok[role], f"tokenizer.{role}")
    for key, cls in (("train", TrainConfig), ("optim", OptimConfig)):
        configs[key] = _config.build(cls, _section(raw, key), key)
        data[key] = _config.as_dict(configs[key])
    return Resolved(data, specs, configs, classes, data["entry"], *_declared(reg, data["entry"]))


def _declared(reg: Any, entry: str) -> tuple[str, dict[str, Any]]:
    """The summary and reference the entry declares; nothing for no entry or one no longer installed."""
    if not entry:
        return "", {}
    try:
        spec = reg.get("entry", entry)
    except ZooError:
        return "", {}
    return spec.summary, dict(spec.data.get("reference", {}))


def _section(raw: dict[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"'{key}' must be a section (table), got {value!r}")
    return value


def resolve_entry(name: str, overrides: dict[str, Any] | None = None) -> Resolved:
    """An entry's config with ``overrides`` (nested sections, as ``--set`` gives them) merged in, every section
    validated against its component's config dataclass, the components' classes loaded: what a run would use.
    Raises :class:`zoo.ConfigError` (or :class:`zoo.UnknownNameError`) naming the key or name at fault."""
    return resolve(entry_config(name, overrides)[1])
