"""The conformance kit: a pytest plugin that checks a zoo plugin against zoo's contracts.

``pytest --zoo-plugin NAME`` (repeatable) adds, to whatever pytest collects, the contract
tests for everything plugin ``NAME`` registers (``zoo plugins`` shows the names; ``-m zoo_kit``
keeps only the kit's tests). Its entries train with their ``tiny`` overrides into a temporary run folder;
each artifact must reload to the same outputs as the model object that was saved;
tokenizer states must survive JSON; dataset splits must be deterministic (and
disjoint where the dataset declares ``disjoint_splits``); every config's defaults
must validate; every factory path must import; ``predict`` must give one JSON record
per input where the task implements it; every logger (``zoo_register_loggers``) must report a
run and reopen it from its saved state. The tests live in :mod:`zoo.kit.contracts`.

A component the plugin registers but none of its entries uses is checked through an
entry of another plugin that uses it (a plugin providing only a dataset, say).

For tests of your own, the fixtures ``zoo_plugin_specs`` (``zoo_plugin_specs(NAME)``:
the :class:`zoo.registry.names.Spec` of everything a plugin registered) and ``tiny_run``
(``tiny_run(ENTRY)``: a :class:`TinyRun`, trained once per session) are available
whenever this plugin is loaded.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import zoo

pytest.register_assert_rewrite("zoo.kit.contracts")

KIT_MODULE = Path(__file__).parent / "kit" / "contracts.py"
# Entries without a ``tiny`` table train for two optimizer steps.
FALLBACK_TINY: dict[str, Any] = {"train": {"epochs": 1, "max_steps": 2}}
# Added to every tiny run: no progress bar, on the CPU, one thread (tests run side by side).
KIT_TRAIN: dict[str, Any] = {"train": {"progress": False, "device": "cpu", "threads": 1}}
COMPONENT_KINDS = ("model", "tokenizer", "dataset", "task")
_CASES = pytest.StashKey["KitCases"]()


# --- what a plugin registered ------------------------------------------------------------------------

def plugin_specs(plugin: str, kind: str | None = None) -> list[Any]:
    """The specs plugin ``plugin`` registered (of one ``kind``, or all), in registration order."""
    state = zoo.plugin_state()
    info = state.plugins.get(plugin)
    if info is None:
        known = ", ".join(sorted(state.plugins)) or "(none)"
        raise zoo.ZooUsageError(f"no zoo plugin named '{plugin}' is installed; installed: {known}")
    out, seen = [], set()
    for item in info.registered:
        k, _, name = item.partition(":")
        if (kind is None or k == kind) and item not in seen:
            seen.add(item)
            out.append(state.registry.get(k, f"{plugin}:{name}"))
    return out


def tiny_overrides(entry_id: str) -> dict[str, Any]:
    """The overrides the kit trains ``entry_id`` with: its ``tiny`` table (or two steps), quiet, on the CPU."""
    spec = zoo.plugin_state().registry.get("entry", entry_id)
    tiny = spec.data.get("tiny") or FALLBACK_TINY
    if not isinstance(tiny, dict):
        raise zoo.ConfigError(f"entry {spec.id}: 'tiny' must be a table of config overrides, got {tiny!r}")
    return zoo.merge_config(tiny, KIT_TRAIN)


def data_dir() -> Path | None:
    """The data folder of this session (``ZOO_DATA_DIR``), or None."""
    value = os.environ.get("ZOO_DATA_DIR")
    return Path(value) if value and Path(value).is_dir() else None


def require_data(entry_id: str) -> None:
    """Skip when the entry's dataset reads official files and ``ZOO_DATA_DIR`` is not set (no downloads in tests)."""
    dataset_cls = zoo.resolve_entry(entry_id, tiny_overrides(entry_id)).cls("dataset")
    if getattr(dataset_cls, "sources", ()) and data_dir() is None:
        pytest.skip(f"{entry_id} reads {dataset_cls.folder or 'files'}/ from the data folder; set ZOO_DATA_DIR")


def entry_components(entry_id: str) -> set[str]:
    """Ids of the model, task, dataset and tokenizers ``entry_id`` resolves to; empty when it does not resolve."""
    try:
        resolved = zoo.resolve_entry(entry_id, tiny_overrides(entry_id))
    except zoo.ZooError:
        return set()
    return {spec.id for spec in resolved.specs.values()}


def _names_in(entry: dict[str, Any]) -> set[str]:
    names = {str(entry.get(k, "")) for k in ("model", "task", "dataset")}
    tok = entry.get("tokenizer", "")
    names |= {str(v) for v in tok.values()} if isinstance(tok, dict) else {str(tok)}
    return names


def kit_entries(plugin: str) -> list[str]:
    """The plugin's own entries, then, for each component none of them uses, one entry elsewhere that does.

    Of several entries elsewhere, one with a ``tiny`` table is preferred, then the first by id.
    """
    own = [s.id for s in plugin_specs(plugin, "entry")]
    covered: set[str] = set().union(*(entry_components(e) for e in own)) if own else set()
    borrowed: list[str] = []
    others = [s for s in zoo.plugin_state().registry.specs("entry") if s.plugin != plugin]
    for spec in plugin_specs(plugin):
        if spec.kind == "entry" or spec.id in covered:
            continue
        named = [e for e in others if spec.name in _names_in(e.data) or spec.id in _names_in(e.data)]
        users = [e for e in sorted(named, key=lambda e: "tiny" not in e.data) if spec.id in entry_components(e.id)]
        if users:
            borrowed.append(users[0].id)
            covered |= entry_components(users[0].id)
    return own + [e for e in dict.fromkeys(borrowed) if e not in own]


@dataclass
class KitCases:
    """What the kit parametrizes its tests over, found once per session."""

    plugins: list[str]
    components: list[str] = field(default_factory=list)  # "KIND:PLUGIN:NAME"
    entries: list[str] = field(default_factory=list)
    roles: list[tuple[str, str]] = field(default_factory=list)  # (entry id, tokenizer role)
    covered: set[str] = field(default_factory=set)  # component ids some kit entry uses


def find_cases(plugins: list[str]) -> KitCases:
    cases = KitCases(plugins)
    for plugin in plugins:
        if zoo.plugin_state().plugins[plugin].status != "ok":
            continue  # test_plugin_loads reports it
        cases.components += [f"{s.kind}:{s.id}" for s in plugin_specs(plugin) if s.kind != "entry"]
        cases.entries += [e for e in kit_entries(plugin) if e not in cases.entries]
    for entry_id in cases.entries:
        cases.covered |= entry_components(entry_id)
        try:
            roles = zoo.resolve_entry(entry_id, tiny_overrides(entry_id)).cls("task").tokenizer_roles
        except zoo.ZooError:
            continue  # test_entry_config_resolves reports it
        cases.roles += [(entry_id, role) for role in roles]
    return cases


def kit_cases(config: pytest.Config) -> KitCases:
    if _CASES not in config.stash:
        config.stash[_CASES] = find_cases(list(dict.fromkeys(config.getoption("zoo_plugins") or [])))
    return config.stash[_CASES]


# --- tiny runs -----------------------------------------------------------------------------------------

@dataclass
class TinyRun:
    """One entry trained with its tiny overrides, and the objects the run saved."""

    entry: str
    run_dir: Path
    artifact: Path
    metrics: dict[str, Any]
    overrides: dict[str, Any]
    model: Any  # the trained model object that was written to the artifact
    task: Any  # the task with the tokenizers fitted during training


def train_tiny(entry_id: str, out: Path) -> TinyRun:
    """Train ``entry_id`` with :func:`tiny_overrides` into ``out``, keeping the trained objects.

    The trainer is observed through ``zoo.Trainer.fit`` (the class ``zoo.train`` uses),
    patched for the duration of this call only.
    """
    overrides = tiny_overrides(entry_id)
    trainer_cls, seen = zoo.Trainer, []
    original = trainer_cls.fit

    def fit(self: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(self)
        return original(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(trainer_cls, "fit", fit)
        result = zoo.train(entry_id, overrides, out=out)
    if len(seen) != 1:
        raise RuntimeError(f"zoo.train({entry_id!r}) ran {len(seen)} zoo.Trainer.fit calls, expected 1: "
                           "the kit cannot tell which model was saved")
    trainer = seen[0]
    return TinyRun(entry_id, Path(result.run_dir), Path(result.artifact), dict(result.metrics), overrides,
                   trainer.model, trainer.task)


def assert_close(a: Any, b: Any, where: str, rel: float = 1e-5, abs_: float = 1e-6) -> None:
    """``a`` and ``b`` are equal, nested; floats and float tensors within tolerance."""
    import torch

    def check(ok: bool, problem: str) -> None:
        if not ok:
            raise AssertionError(f"{where}: {problem}")  # short: no dump of whole tensors

    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        check(isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor), f"{type(a).__name__} vs {type(b).__name__}")
        check(a.shape == b.shape, f"shape {tuple(a.shape)} != {tuple(b.shape)}")
        if a.is_floating_point() and a.numel():
            diff = (a.float() - b.float()).abs().max().item()
            check(torch.allclose(a.float(), b.float(), rtol=rel, atol=abs_, equal_nan=True),
                  f"values differ (largest difference {diff:.3g})")
        else:
            check(torch.equal(a, b), "values differ")
    elif isinstance(a, Mapping):
        check(isinstance(b, Mapping) and set(a) == set(b), f"keys {sorted(a)} != {sorted(b)}")
        for k in a:
            assert_close(a[k], b[k], f"{where}[{k!r}]", rel, abs_)
    elif isinstance(a, (list, tuple)):
        check(isinstance(b, (list, tuple)) and len(a) == len(b), f"{len(a)} items, then {b!r:.80}")
        for i, (x, y) in enumerate(zip(a, b)):
            assert_close(x, y, f"{where}[{i}]", rel, abs_)
    elif isinstance(a, float) and isinstance(b, (int, float)):
        check((math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=rel, abs_tol=abs_), f"{a!r} != {b!r}")
    else:
        check(a == b, f"{a!r:.80} != {b!r:.80}")


# --- the pytest plugin ---------------------------------------------------------------------------------

def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("zoo", "zoo plugin conformance kit")
    group.addoption("--zoo-plugin", action="append", dest="zoo_plugins", default=[], metavar="NAME",
                    help="run zoo's contract tests over everything zoo plugin NAME registers (repeatable; "
                         "'zoo plugins' lists the names)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "zoo_kit: a test of zoo's conformance kit (-m zoo_kit runs only those)")
    names = config.getoption("zoo_plugins") or []
    if not names:
        return
    plugins = zoo.plugin_state().plugins
    missing = [n for n in names if n not in plugins]
    if missing:
        known = ", ".join(sorted(plugins)) or "(none)"
        raise pytest.UsageError(f"--zoo-plugin {missing[0]}: no zoo plugin of that name is installed "
                                f"(installed: {known}); install the package or fix the name")


@pytest.hookimpl(tryfirst=True)  # before -k / -m deselect, so they apply to the kit's tests too
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("zoo_plugins"):
        return
    module = pytest.Module.from_parent(session, path=KIT_MODULE, nodeid="zoo-kit")
    items.extend(session.genitems(module))


@pytest.fixture(scope="session")
def zoo_plugin_specs():
    """``zoo_plugin_specs(NAME, kind=None)``: the specs plugin NAME registered (``spec.id``, ``spec.load()``)."""
    return plugin_specs


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory):
    """``tiny_run(ENTRY)``: the :class:`TinyRun` of ``ENTRY``, trained once per session (a failure is kept too)."""
    runs: dict[str, TinyRun | BaseException] = {}

    def get(entry_id: str) -> TinyRun:
        entry_id = zoo.plugin_state().registry.get("entry", entry_id).id
        require_data(entry_id)
        if entry_id not in runs:
            out = tmp_path_factory.mktemp(entry_id.replace(":", "-")) / "run"
            try:
                runs[entry_id] = train_tiny(entry_id, out)
            except Exception as exc:  # noqa: BLE001 - every test of this entry reports it; trained once
                runs[entry_id] = exc
        found = runs[entry_id]
        if isinstance(found, BaseException):
            raise found
        return found

    return get
