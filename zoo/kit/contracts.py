"""The contract tests of the conformance kit (collected by :mod:`zoo.testing` under ``--zoo-plugin``).

Each test checks one promise a plugin makes to zoo and its users; the failure
message says which component broke it and how.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Union

import pytest

import zoo
from zoo import testing as kit
from zoo.config import Range

pytestmark = pytest.mark.zoo_kit  # pytest -m zoo_kit: only the kit's tests


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    cases = kit.kit_cases(metafunc.config)
    names = metafunc.fixturenames
    if "plugin_name" in names:
        metafunc.parametrize("plugin_name", cases.plugins)
    if "component" in names:
        metafunc.parametrize("component", cases.components)
    if "logger_component" in names:
        metafunc.parametrize("logger_component", [c for c in cases.components if c.startswith("logger:")])
    if "role" in names:
        metafunc.parametrize("entry_id,role", cases.roles, ids=[f"{e}-{r}" for e, r in cases.roles])
    elif "entry_id" in names:
        metafunc.parametrize("entry_id", cases.entries)


def _spec(component: str) -> Any:
    kind, _, spec_id = component.partition(":")
    return zoo.plugin_state().registry.get(kind, spec_id)


def _interface(kind: str) -> type:
    return {"model": zoo.Model, "tokenizer": zoo.Tokenizer, "dataset": zoo.Dataset, "task": zoo.Task,
            "logger": zoo.Logger}[kind]


# --- the plugin and its components -----------------------------------------------------------------------

def test_plugin_loads(plugin_name):
    info = zoo.plugin_state().plugins[plugin_name]
    assert info.status == "ok", f"plugin {plugin_name} did not load ({info.status}): {info.error}"


def test_factory_imports(component):
    spec = _spec(component)
    try:
        obj = spec.load()
    except zoo.ZooError as exc:
        pytest.fail(f"{spec.kind} {spec.id}: its factory does not import: {exc}")
    base = _interface(spec.kind)
    assert isinstance(obj, type) and issubclass(obj, base), \
        f"{spec.kind} {spec.id}: factory {obj!r} is not a subclass of zoo.{base.__name__}"


def test_config_defaults_validate(component):
    spec = _spec(component)
    try:
        config_cls = getattr(spec.load(), "Config", zoo.EmptyConfig)
    except zoo.ZooError:
        pytest.skip(f"{spec.id} does not import (test_factory_imports fails)")
    assert dataclasses.is_dataclass(config_cls) and isinstance(config_cls, type), \
        f"{spec.id}: Config must be a @dataclass class, got {config_cls!r}"
    hints = typing.get_type_hints(config_cls, include_extras=True)
    fields = [f for f in dataclasses.fields(config_cls) if f.init]
    try:
        cfg = config_cls()
    except TypeError as exc:
        pytest.fail(f"{spec.id}: every Config field needs a default ({exc})")
    for f in fields:
        assert _fits(getattr(cfg, f.name), hints[f.name]), \
            f"{spec.id}: default {f.name} = {getattr(cfg, f.name)!r} does not fit {hints[f.name]} (its type or " \
            "range), or the type is one zoo configs cannot hold: use bool, int, float, str, None, Literal, " \
            "unions, list, tuple or dict of them"
    validate = getattr(cfg, "validate", None)
    if callable(validate):
        try:
            validate()
        except ValueError as exc:
            named = [f.name for f in fields if f.name in str(exc)]
            assert named, f"{spec.id}: validate() rejects the defaults without naming a field: {exc}"
            pytest.skip(f"{spec.id}: the defaults leave {named[0]} for the user to set ({exc})")


def _fits(value: Any, tp: Any) -> bool:
    """Whether ``value`` is of config annotation ``tp`` (and ``tp`` is one zoo configs support)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Annotated:  # Annotated[T, Range(...)]: of type T and within every range
        return _fits(value, args[0]) and all(_within(value, m) for m in tp.__metadata__ if isinstance(m, Range))
    if tp is Any:
        return True
    if tp is type(None):
        return value is None
    if origin in (Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if origin is Literal:
        return value in args
    if tp in (bool, str):
        return isinstance(value, tp)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if origin in (list, tuple) or tp in (list, tuple):
        if origin is tuple and args and args[-1] is not Ellipsis:
            return isinstance(value, (list, tuple)) and len(value) == len(args) \
                and all(_fits(v, a) for v, a in zip(value, args))
        return isinstance(value, (list, tuple)) and all(_fits(v, args[0] if args else Any) for v in value)
    if origin is dict or tp is dict:
        return isinstance(value, dict) and all(_fits(v, args[1] if args else Any) for v in value.values())
    return False


def _within(value: Any, rng: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, (list, tuple)):
        return all(_within(v, rng) for v in value)
    if isinstance(value, dict):
        return all(_within(v, rng) for v in value.values())
    return value in rng


def test_component_is_used_by_an_entry(component, pytestconfig):
    spec = _spec(component)
    if spec.kind == "logger":
        pytest.skip(f"logger {spec.id} serves runs, not entries: test_logger_reports_a_run checks it")
    if spec.id not in kit.kit_cases(pytestconfig).covered:
        pytest.skip(f"{spec.kind} {spec.id}: no entry uses it, so it is not trained here; register an entry "
                    "with a 'tiny' table that does")


# --- entries -----------------------------------------------------------------------------------------------

def test_entry_config_resolves(entry_id):
    """With its tiny overrides an entry resolves; on its own only a value left to the user may be missing."""
    try:
        zoo.resolve_entry(entry_id, kit.tiny_overrides(entry_id))
    except zoo.ZooError as exc:
        pytest.fail(f"entry {entry_id} does not resolve with its tiny overrides: {exc}")
    try:
        zoo.resolve_entry(entry_id)
    except zoo.ConfigError:
        pass  # e.g. an entry for the user's own files, which names none
    except zoo.ZooError as exc:
        pytest.fail(f"entry {entry_id} does not resolve: {exc}")


def test_entry_trains_tiny(entry_id, tiny_run):
    run = tiny_run(entry_id)
    assert run.artifact.is_file(), f"{entry_id}: no artifact at {run.artifact}"
    final = run.metrics.get("test") or run.metrics.get("val")
    assert final, f"{entry_id}: the run reported no val or test metrics"
    bad = {k: v for k, v in final.items() if isinstance(v, float) and not math.isfinite(v)}
    assert not bad, f"{entry_id}: metrics that are not finite: {bad}"


def test_artifact_matches_trained_model(entry_id, tiny_run):
    import torch

    run = tiny_run(entry_id)
    loaded = zoo.load(run.artifact, device="cpu")
    saved, back = run.model.state_dict(), loaded.model.state_dict()
    assert saved.keys() == back.keys(), f"{entry_id}: reloaded weights have other names: " \
        f"{sorted(set(saved) ^ set(back))[:5]}"
    for name, value in saved.items():
        assert torch.equal(value.detach().cpu(), back[name].cpu()), f"{entry_id}: weight {name} changed on reload"
    examples = _sample(loaded, 8)
    batch = _first_batch(run.task, examples)
    kit.assert_close(batch, _first_batch(loaded.task, examples), f"{entry_id} batch of the reloaded task")
    kit.assert_close(_outputs(run.model, run.task, batch), _outputs(loaded.model, loaded.task, batch),
                 f"{entry_id} outputs of the reloaded model")


def _sample(loaded: Any, n: int) -> list[Any]:
    dataset = loaded.resolved.cls("dataset")(loaded.resolved.configs["dataset"], data_dir=kit.data_dir())
    split = "test" if "test" in dataset.splits else "val" if "val" in dataset.splits else dataset.splits[0]
    return list(dataset.load(split))[:n]


def _first_batch(task: Any, examples: list[Any]) -> dict[str, Any]:
    return next(iter(task.batches(task.encode(examples), len(examples), shuffle=False, seed=0)))


def _outputs(model: Any, task: Any, batch: dict[str, Any]) -> dict[str, Any]:
    """What the model returns from every forward call of one evaluation batch, the sums and the records."""
    import torch

    seen: list[Any] = []
    handle = model.register_forward_hook(lambda _m, _i, out: seen.append(out))
    model.eval()
    try:
        torch.manual_seed(0)
        with torch.no_grad():
            sums, records = task.eval_outputs(model, batch)
    finally:
        handle.remove()
    return {"forward": seen, "sums": sums, "records": records}


# --- tokenizers and datasets -----------------------------------------------------------------------------

def test_tokenizer_state_round_trip(entry_id, role):
    kit.require_data(entry_id)
    resolved = zoo.resolve_entry(entry_id, kit.tiny_overrides(entry_id))
    dataset = resolved.cls("dataset")(resolved.configs["dataset"], data_dir=kit.data_dir())
    task_cls = resolved.cls("task")
    toks = {r: resolved.cls(f"tokenizer.{r}")(resolved.configs[f"tokenizer.{r}"]) for r in task_cls.tokenizer_roles}
    task = task_cls(resolved.configs["task"], toks)
    train = list(dataset.load("train"))[:200]
    task.fit_tokenizers(train)
    tok, key = toks[role], resolved.specs[f"tokenizer.{role}"].id
    try:
        state = json.loads(json.dumps(tok.get_state()))
    except (TypeError, ValueError) as exc:
        pytest.fail(f"tokenizer {key}: get_state() is not JSON ({exc})")
    clone = resolved.cls(f"tokenizer.{role}")(resolved.configs[f"tokenizer.{role}"])
    clone.set_state(state)
    specials = ("vocab_size", "pad_id", "unk_id", "bos_id", "eos_id")
    assert [getattr(clone, s) for s in specials] == [getattr(tok, s) for s in specials], \
        f"tokenizer {key}: sizes or special ids change through get_state/set_state"
    assert json.loads(json.dumps(clone.get_state())) == state, f"tokenizer {key}: get_state() of the copy differs"
    for text in list(task.texts(role, train))[:50]:
        ids = tok.encode(text)
        assert clone.encode(text) == ids, f"tokenizer {key}: the restored copy encodes {text!r:.60} differently"
        assert clone.decode(ids) == tok.decode(ids), f"tokenizer {key}: the restored copy decodes {ids[:10]} differently"


def _dataset(entry_id: str) -> tuple[type, Any]:
    kit.require_data(entry_id)
    resolved = zoo.resolve_entry(entry_id, kit.tiny_overrides(entry_id))
    return resolved.cls("dataset"), resolved.configs["dataset"]


def _key(example: Any, fields: Any) -> str:
    value = example if fields is True else [example.get(f) for f in fields]
    return json.dumps(value, sort_keys=True, default=repr)


def test_dataset_splits_are_deterministic(entry_id):
    cls, cfg = _dataset(entry_id)
    a, b = cls(cfg, data_dir=kit.data_dir()), cls(cfg, data_dir=kit.data_dir())
    assert "train" in a.splits and tuple(a.splits) == tuple(b.splits), f"{entry_id}: splits {a.splits}"
    for split in a.splits:
        first, second = list(a.load(split)), list(b.load(split))
        assert first, f"{entry_id}: split '{split}' is empty"
        assert all(isinstance(e, Mapping) for e in first), f"{entry_id}: split '{split}' holds non-dict examples"
        assert len(first) == len(second), f"{entry_id}: split '{split}' has {len(first)}, then {len(second)} examples"
        for i, (x, y) in enumerate(zip(first, second)):
            assert _key(x, True) == _key(y, True), f"{entry_id}: split '{split}' example {i} differs between loads"


def test_dataset_splits_are_disjoint(entry_id):
    cls, cfg = _dataset(entry_id)
    declared = getattr(cls, "disjoint_splits", None)
    if not declared:
        pytest.skip(f"{entry_id}: dataset {cls.__name__} declares no disjoint_splits")
    fields = True if declared is True else [declared] if isinstance(declared, str) else list(declared)
    ds = cls(cfg, data_dir=kit.data_dir())
    keys = {s: {_key(e, fields) for e in ds.load(s)} for s in ds.splits}
    for i, s in enumerate(ds.splits):
        for t in ds.splits[i + 1:]:
            both = keys[s] & keys[t]
            assert not both, f"{entry_id}: splits '{s}' and '{t}' share {len(both)} example(s) " \
                f"(by {'whole example' if fields is True else fields}), e.g. {next(iter(both))[:120]}"


# --- predict -------------------------------------------------------------------------------------------

INPUT_FIELDS = ("input", "text", "src", "tokens", "words", "intent")


def test_predict_contract(entry_id, tiny_run):
    run = tiny_run(entry_id)
    loaded = zoo.load(run.artifact, device="cpu")
    predict = getattr(loaded, "predict", None)
    if predict is None:
        pytest.skip("this zoo has no predict() on loaded models yet")
    own, base = getattr(type(loaded.task), "predict", None), getattr(zoo.Task, "predict", None)
    if own is None or own is base:
        pytest.skip(f"task {loaded.resolved.specs['task'].id} does not implement predict")
    examples = _sample(loaded, 4)
    field = next((f for f in INPUT_FIELDS if all(f in e for e in examples)), None)
    if field is None:
        pytest.skip(f"{entry_id}: examples have none of the input fields {INPUT_FIELDS}")
    inputs = [e[field] for e in examples]
    records = predict(inputs)
    assert isinstance(records, list) and len(records) == len(inputs), \
        f"{entry_id}: predict() of {len(inputs)} inputs returned {records!r:.200}"
    for r in records:
        try:
            json.dumps(r, allow_nan=False)
        except (TypeError, ValueError) as exc:
            pytest.fail(f"{entry_id}: a predict() record is not JSON ({exc}): {r!r:.200}")
    assert predict(inputs) == records, f"{entry_id}: predict() gives other records the second time"
    if isinstance(inputs[0], str):
        assert predict(inputs[0]) == records[0], f"{entry_id}: predict(one input) differs from predict([it])[0]"


# --- loggers (zoo_register_loggers) ------------------------------------------------------------------------

def test_logger_reports_a_run(logger_component, tmp_path, monkeypatch):
    """A logger starts a run, takes params, step and epoch metrics, a file and an end status, and its state
    (kept in trackers.json) is JSON that reopens the same run on resume."""
    spec = _spec(logger_component)
    cls = spec.load()
    assert isinstance(cls, type) and issubclass(cls, zoo.Logger), f"logger {spec.id}: {cls!r} is not a zoo.Logger"
    if cls.missing():
        pytest.skip(f"logger {spec.id} {cls.missing()}")
    monkeypatch.chdir(tmp_path)  # a tracker's default local store lands here
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "README.md").write_text("# a model card\n", encoding="utf-8")
    run = zoo.RunInfo(run_dir, "run", "kit", "kit:entry")
    params = {"model.hidden": 8, "optim.lr": 0.001, "train.amp": "auto", "train.progress": False}
    first = cls()
    state = first.start(run, params)
    assert isinstance(state, dict), f"logger {spec.id}: start() must return a dict (the state that reopens the run)"
    json.dumps(state)  # kept in trackers.json
    first.log_metrics(1, {"train/loss": 2.5, "train/lr": 0.001})
    first.log_metrics(1, {"train_loss": 2.5, "val_loss": 2.25, "epoch": 1.0})
    first.log_artifact(run_dir / "README.md")
    first.finish("interrupted")
    again = cls()
    resumed = again.start(dataclasses.replace(run, resume=state, step=1), {**params, "train.epochs": 2})
    json.dumps(resumed)
    again.log_metrics(2, {"train/loss": 2.0, "train/lr": 0.001})
    again.finish("completed")
