"""Contract tests over every registered entry, model, tokenizer, dataset and task.

Each entry trains with its ``tiny`` overrides (or two optimizer steps), then its
artifact is loaded back and must give the same outputs. Every registered
component must be used by some entry, so that these tests cover it.
"""

from __future__ import annotations

import json
import math
import os

import pytest
import torch

import zoo
from zoo import config
from zoo.store import artifact
from zoo.sdk import files as data
from zoo import api
from zoo.build.pieces import final_split
from zoo.build.prepare import build as build_run
from zoo.inference.load import export_built

FALLBACK_TINY = {"train": {"epochs": 1, "max_steps": 2}}


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(autouse=True, scope="module")
def _in_repo_root():
    """Tiny configs may name files of this repository (text-gpt trains on CHANGELOG.md)."""
    before = os.getcwd()
    os.chdir(ROOT)
    yield
    os.chdir(before)


def _entries() -> list[str]:
    api.reset()
    ids = zoo.list_entries()
    api.reset()
    return ids


def _skip_without_data(entry_id: str) -> None:
    """Entries whose dataset reads files need ZOO_DATA_DIR (CI sets it); there is no network here."""
    dataset_cls = zoo.resolve_entry(entry_id, _tiny(entry_id)).cls("dataset")
    if dataset_cls.sources and data.data_dir() is None:
        pytest.skip(f"{entry_id} needs {dataset_cls.folder}/ under ZOO_DATA_DIR, which is not set")


def _tiny(entry_id: str) -> dict:
    spec = zoo.get_registry().get("entry", entry_id)
    tiny = spec.data.get("tiny") or FALLBACK_TINY
    return config.merge(tiny, {"train": {"progress": False, "threads": 1}})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """entry id -> run folder, each entry trained once for the whole module."""
    runs: dict[str, object] = {}

    def get(entry_id: str):
        _skip_without_data(entry_id)
        if entry_id not in runs:
            api.reset()
            out = tmp_path_factory.mktemp(entry_id.replace(":", "_"))
            zoo.train(entry_id, _tiny(entry_id), out=out)
            runs[entry_id] = out
        return runs[entry_id]

    return get


@pytest.mark.parametrize("entry_id", _entries())
def test_entry_trains_and_reports_finite_metrics(entry_id, trained):
    run = trained(entry_id)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics.get("test") or metrics.get("val"), "no final metrics"
    for split in ("val", "test"):
        for key, value in metrics.get(split, {}).items():
            assert math.isfinite(value), f"{split} {key} = {value}"
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert lines and all(math.isfinite(json.loads(line)["train_loss"]) for line in lines)


def _saved_model(entry_id: str, path):
    """A model trained one step in memory and saved to ``path``: (built with the model, an eval batch)."""
    resolved = zoo.resolve_entry(entry_id, _tiny(entry_id))
    built = build_run(resolved, None, None, ("train",))
    torch.manual_seed(0)
    model = resolved.cls("model")(resolved.configs["model"], **built.task.model_sizes())
    built.task.init_model(model, built.splits["train"])
    batch = next(built.task.batches(built.splits["train"], 4, shuffle=False, seed=0))
    model.train()
    built.task.loss(model, batch).backward()
    with torch.no_grad():  # move off the initial weights, which a reload with the same seed would also give
        for p in model.parameters():
            if p.grad is not None:
                p.add_(p.grad, alpha=-0.1)
    built.model = model.eval()
    export_built(built, path, {})
    return built, batch


@pytest.mark.parametrize("entry_id", _entries())
def test_entry_artifact_round_trip(entry_id, trained, tmp_path):
    run = trained(entry_id)
    saved, batch = _saved_model(entry_id, tmp_path / "model.safetensors")
    loaded = zoo.load(tmp_path / "model.safetensors")
    # the reloaded weights and outputs are those of the model that was saved
    assert loaded.model.state_dict().keys() == saved.model.state_dict().keys()
    for name, value in saved.model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[name], value), name
    with torch.no_grad():
        sums_saved = saved.task.eval_batch(saved.model, batch)
        sums_loaded = loaded.task.eval_batch(loaded.model, batch)
    assert sums_loaded == sums_saved
    assert all(math.isfinite(v) for v in sums_loaded.values())
    meta = artifact.read_metadata(run / "model.safetensors")
    assert meta["entry"] == entry_id and meta["zoo_version"] == zoo.__version__
    # the evaluation of the run's reloaded artifact reproduces the test metrics of the run
    dataset = loaded.resolved.cls("dataset")(loaded.resolved.configs["dataset"], data_dir=data.data_dir())
    split = final_split(dataset)
    evaluated = zoo.evaluate(run / "model.safetensors", device="cpu")
    recorded = json.loads((run / "metrics.json").read_text())
    recorded = recorded["test"] if split == "test" else recorded["val"]
    for key, value in recorded.items():
        assert evaluated[key] == pytest.approx(value, rel=1e-4, abs=1e-6), key


@pytest.mark.parametrize("entry_id", _entries())
def test_entry_one_training_step_changes_weights_and_gives_finite_grads(entry_id):
    _skip_without_data(entry_id)
    resolved = zoo.resolve_entry(entry_id, _tiny(entry_id))
    built = build_run(resolved, None, None, ("train",))
    torch.manual_seed(0)
    model = resolved.cls("model")(resolved.configs["model"], **built.task.model_sizes())
    assert isinstance(model, zoo.Model), "models must subclass zoo.Model"
    before = {k: v.clone() for k, v in model.state_dict().items()}
    batch = next(built.task.batches(built.splits["train"], 4, shuffle=True, seed=1))
    model.train()
    loss = built.task.loss(model, batch)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())


def _components_used_by_entries(kind: str) -> set[str]:
    used = set()
    for entry_id in zoo.list_entries():
        resolved = zoo.resolve_entry(entry_id, _tiny(entry_id))
        used |= {spec.id for key, spec in resolved.specs.items() if key.split(".")[0] == kind}
    return used


@pytest.mark.parametrize("kind", ["model", "tokenizer", "dataset", "task"])
def test_every_component_is_covered_by_an_entry(kind):
    registered = {s.id for s in zoo.get_registry().specs(kind)}
    missing = registered - _components_used_by_entries(kind)
    assert not missing, f"{kind}s used by no entry (give them one, with tiny overrides): {sorted(missing)}"


def _tokenizer_cases():
    api.reset()
    cases = []
    for entry_id in zoo.list_entries():
        resolved = zoo.resolve_entry(entry_id, _tiny(entry_id))
        for key, spec in resolved.specs.items():
            if key.startswith("tokenizer."):
                cases.append((entry_id, key.split(".", 1)[1]))
    api.reset()
    return cases


@pytest.mark.parametrize("entry_id,role", _tokenizer_cases())
def test_tokenizer_state_round_trip(entry_id, role):
    _skip_without_data(entry_id)
    resolved = zoo.resolve_entry(entry_id, _tiny(entry_id))
    built = build_run(resolved, None, None, ("train",))
    tok = built.tokenizers[role]
    texts = list(built.task.texts(role, built.dataset.load("train")[:50]))
    state = json.loads(json.dumps(tok.get_state()))  # must be JSON
    clone = resolved.cls(f"tokenizer.{role}")(resolved.configs[f"tokenizer.{role}"])
    clone.set_state(state)
    assert clone.vocab_size == tok.vocab_size
    assert {tok.pad_id, tok.unk_id, tok.bos_id, tok.eos_id} == {clone.pad_id, clone.unk_id, clone.bos_id, clone.eos_id}
    assert len({tok.pad_id, tok.unk_id, tok.bos_id, tok.eos_id}) == 4
    for text in texts:
        ids = tok.encode(text)
        assert ids == clone.encode(text)
        assert all(0 <= i < tok.vocab_size for i in ids)
        assert tok.encode(tok.decode(ids)) == ids


@pytest.mark.parametrize("entry_id", _entries())
def test_dataset_splits_and_deterministic_batches(entry_id):
    _skip_without_data(entry_id)
    resolved = zoo.resolve_entry(entry_id, _tiny(entry_id))
    built = build_run(resolved, None, None, ("train", "val", "test"))
    for split in built.dataset.splits:
        examples = built.dataset.load(split)
        assert len(examples) > 0 and all(hasattr(e, "keys") for e in examples[:10])
    enc = built.splits["train"]

    def first(seed):
        return next(built.task.batches(enc, 16, shuffle=True, seed=seed))

    a, b, c = first(3), first(3), first(4)
    assert all(torch.equal(a[k], b[k]) for k in a if isinstance(a[k], torch.Tensor))
    assert any(not torch.equal(a[k], c[k]) for k in a if isinstance(a[k], torch.Tensor) and a[k].shape == c[k].shape)
