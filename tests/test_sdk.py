"""The plugin SDK as a new author meets it: zoo info (task contracts, trainer keys, resolved configs),
zoo plugins --check, and a public API that plugins need nothing beyond."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import importlib.metadata as md
import inspect
import sys
import tomllib
from pathlib import Path

import pytest

import zoo
from zoo.config.docs import field_comments, field_docs
from zoo.registry.resolve import resolve
from zoo.config.train import OptimConfig, TrainConfig

plugins = importlib.import_module("zoo.registry.discovery")  # zoo.registry.discovery is shadowed by the api function of that name
ROOT = Path(__file__).resolve().parent.parent
FAKES = Path(__file__).resolve().parent / "fakeplugins"

# Built-in tasks whose contract is not declared yet, and why; the test below fails once one is, so the
# entry is removed. Ideally empty.
CONTRACT_PENDING: dict[str, str] = {}  # task id -> why it declares no contract yet


# --- zoo info TASK: the model contract as data ----------------------------------------------------------

def test_zoo_info_task_prints_the_model_contract_and_example_fields(cli):
    out = cli("info", "classification")
    assert out.exit_code == 0, out.output
    text = out.output
    assert "task: classify:classification" in text
    assert "__init__(config, vocab_size=, n_classes=, pad_id=)" in text
    assert "forward(ids (B, T) long, lengths (B,) long)" in text and "-> logits (B, K)" in text
    assert "init_embedding(tokens, sentences, data_dir=None)" in text
    assert "    text: str" in text and "    label: str" in text
    assert "input: a text (str)" in text and 'record: {"label"' in text
    assert "task.max_len = 400  (int, in [2, 1048576])" in text
    seq = cli("info", "seq2seq").output
    assert "generate(src, src_lengths, max_len, bos_id, eos_id)" in seq and "option max_len:" in seq


def test_every_builtin_task_declares_its_contract():
    reg = zoo.get_registry()
    tasks = [s for s in reg.specs("task") if s.plugin in _builtin_plugins()]
    assert len(tasks) >= 5
    for spec in tasks:
        cls = spec.load()
        declared = isinstance(cls.model_contract, zoo.ModelContract) and bool(cls.example_fields)
        if spec.id in CONTRACT_PENDING:
            assert not declared, f"{spec.id} declares its contract now: remove it from CONTRACT_PENDING"
            continue
        assert declared, f"{spec.id}: give the task model_contract and example_fields"
        c = cls.model_contract
        assert c.sizes and c.forward.startswith("forward(") and c.returns, spec.id
        assert cls.predict_input and cls.predict_record, f"{spec.id}: document predict_input and predict_record"
        assert set(cls.predict_options) <= set(inspect.signature(cls.predict).parameters) | _kwargs(cls.predict)


def _kwargs(fn) -> set[str]:  # a predict taking **options accepts every documented option
    params = inspect.signature(fn).parameters.values()
    return {"*"} if any(p.kind is p.VAR_KEYWORD for p in params) else set()


def _builtin_plugins() -> set[str]:
    return {ep.name for ep in md.entry_points(group="zoo") if ep.value.startswith("zoo_") and
            ep.value != "zoo_lstm_seq2seq"}


def _fitted_task(task_id: str, tokenizers: dict[str, str], examples: list[dict]):
    reg = zoo.get_registry()
    toks = {role: reg.get("tokenizer", name).load()() for role, name in tokenizers.items()}
    task = reg.get("task", task_id).load()(None, toks)
    task.fit_tokenizers(examples)
    return task


CASES = {  # task -> (tokenizers by role, a few examples): every task the built-in plugins register that needs no data
    "classify:classification": ({"text": "classify:word", "labels": "classify:labels"},
                                [{"text": "a fine film", "label": "pos"}, {"text": "dull", "label": "neg"}]),
    "tagging:tagging": ({"words": "tagging:conll-words", "tags": "tagging:conll-tags", "chars": "tokenizers:char"},
                        [{"tokens": ["The", "cat"], "tags": ["DT", "NN"]}]),
    "seq2seq:seq2seq": ({"src": "tokenizers:digits", "tgt": "tokenizers:digits"}, [{"src": "123", "tgt": "321"}]),
    "seq2py:code-generation": ({"src": "seq2py:intent-words", "tgt": "seq2py:python-code"},
                               [{"src": "add one to x", "tgt": "x + 1"}]),
}


@pytest.mark.parametrize("task_id", sorted(CASES))
def test_contract_sizes_are_what_the_task_builds_models_with(task_id):
    tokenizers, examples = CASES[task_id]
    task = _fitted_task(task_id, tokenizers, examples)
    sizes, declared = set(task.model_sizes()), task.model_contract.sizes
    assert sizes <= set(declared)
    for optional in set(declared) - sizes:  # built only with some config (e.g. a tagger's auxiliary labels)
        assert "only when" in declared[optional], (task_id, optional)


def test_every_builtin_model_takes_the_sizes_of_the_task_its_entries_train_it_with():
    checked = 0
    for entry in zoo.list_entries():
        try:
            resolved = zoo.resolve_entry(entry)
        except zoo.ConfigError:  # an entry that leaves a value to the user (a file name)
            continue
        contract = resolved.cls("task").model_contract
        model = resolved.cls("model")
        if contract is None or resolved.specs["model"].plugin not in _builtin_plugins():
            continue
        params = inspect.signature(model.__init__).parameters
        takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
        missing = [s for s in contract.sizes if s not in params and not takes_any]
        assert not missing, f"{entry}: {model.__name__}.__init__ does not take {missing}"
        checked += 1
    assert checked >= 5


# --- zoo info train / optim and component configs: keys, defaults, ranges, meanings ------------------------

@pytest.mark.parametrize("section,cls", [("train", TrainConfig), ("optim", OptimConfig)])
def test_zoo_info_lists_every_trainer_key_with_default_range_and_meaning(cli, section, cls):
    out = cli("info", section)
    assert out.exit_code == 0, out.output
    for doc in field_docs(cls):
        assert f"  {section}.{doc.name} = " in out.output, doc.name
        assert doc.meaning, f"{section}.{doc.name} has no comment saying what it does (zoo/train_config.py)"
        assert doc.meaning in out.output
    assert "train.clip_norm = 1.0  (float | none, > 0 (none: no clipping))" in cli("info", "train").output


def test_component_info_shows_ranges_and_meanings(cli):
    out = cli("info", "gru-seq2seq").output
    assert "model: seq2seq:gru-seq2seq" in out
    hidden = next(line for line in out.splitlines() if "model.hidden = " in line)
    assert "(int, in [" in hidden


def test_field_comments_read_beside_above_and_continued():
    @dataclasses.dataclass
    class Demo:
        # above: one line
        # and a second
        a: int = 1
        b: int = 2  # beside
        c: int = 3
        d: str = "x"  # beside, continued
        # on the next line

    assert field_comments(Demo) == {"a": "above: one line and a second", "b": "beside",
                                    "d": "beside, continued on the next line"}
    docs = {d.name: d for d in field_docs(Demo)}
    assert docs["c"].meaning == "" and docs["d"].default == "x" and docs["a"].type == "int"


def test_zoo_info_entry_resolved_is_the_full_config_as_toml(cli):
    out = cli("info", "subseq-gru", "--resolved")
    assert out.exit_code == 0, out.output
    data = tomllib.loads(out.output)
    assert data["model"]["name"] == "seq2seq:gru-seq2seq"
    assert set(data["train"]) == {f.name for f in dataclasses.fields(TrainConfig)}
    assert set(data["optim"]) == {f.name for f in dataclasses.fields(OptimConfig)}
    assert resolve(data).data == zoo.resolve_entry("subseq-gru").data  # complete, as a run's config.toml is


def test_zoo_info_resolved_of_a_component_says_what_it_is(cli):
    out = cli("info", "gru-seq2seq", "--resolved")
    assert out.exit_code == 2
    assert "'gru-seq2seq' is a model" in out.output and "Traceback" not in out.output


# --- zoo plugins and --check -----------------------------------------------------------------------------

@pytest.fixture
def installed(monkeypatch):
    """``installed("broken", "typo")``: the real entry points plus fake plugins from tests/fakeplugins."""
    monkeypatch.syspath_prepend(str(FAKES))
    real_load = plugins.load

    def install(*names: str) -> None:
        def load(entry_points=None, environ=None, extra=()):
            eps = [*md.entry_points(group="zoo"), *(md.EntryPoint(n, f"zoofake_{n}", "zoo") for n in names)]
            return real_load(entry_points=eps, environ=environ, extra=extra)

        monkeypatch.setattr(plugins, "load", load)

    yield install
    for name in [m for m in sys.modules if m.startswith("zoofake_")]:
        del sys.modules[name]


def test_zoo_plugins_exits_1_naming_the_hook_and_file_line_of_each_failure(cli, installed):
    installed("broken", "typo", "hookfail")
    out = cli("plugins")
    assert out.exit_code == 1
    text = out.output
    assert f"failed in: import at {FAKES / 'zoofake_broken.py'}:3" in text
    assert f"failed in: zoo_register_models at {FAKES / 'zoofake_hookfail.py'}:10" in text
    assert f"failed in: zoo_register_modelz at {FAKES / 'zoofake_typo.py'}:6" in text
    assert "3 problem(s) in plugin(s) broken, hookfail, typo" in out.stderr
    assert "Traceback" not in text


def test_zoo_verbose_plugins_shows_the_traceback(cli, installed):
    installed("hookfail")
    out = cli("-v", "plugins")
    assert out.exit_code == 1
    assert "Traceback (most recent call last)" in out.output
    assert "KeyError: 'large'" in out.output and "zoofake_hookfail.py\", line 10" in out.output


def test_zoo_plugins_check_imports_every_factory_and_names_the_plugin_of_each_bad_one(cli, installed):
    installed("badfactory")
    out = cli("plugins", "--check")
    assert out.exit_code == 1
    lines = [line for line in out.output.splitlines() if line.startswith("error: badfactory:")]
    assert len(lines) == 3, out.output
    raising = next(line for line in lines if "raising-model" in line)
    assert "zoo_register_models" in raising and "ImportError: zoofake_badfactory_model needs" in raising
    assert raising.endswith(f"at {FAKES / 'zoofake_badfactory_model.py'}:3")
    assert any("missing-model" in line and "No module named 'zoofake_nowhere_at_all'" in line for line in lines)
    assert any("not-a-model" in line and "not a subclass of zoo.Model" in line for line in lines)


def test_zoo_plugins_check_passes_on_the_builtin_plugins(cli):
    out = cli("plugins", "--check")
    assert out.exit_code == 0, out.output
    checked = next(line for line in out.output.splitlines() if line.startswith("check: "))
    n = int(checked.split()[1])
    assert n >= 25 and checked == f"check: {n} of {n} factories import"


# --- the public API: everything a plugin needs, documented, and nothing else used ---------------------------

PUBLIC_MODULES = {"zoo"}  # what plugins and examples may import (docs/plugins.md says so)
# (file, what it uses) -> why it may, for now; the test fails once a use is gone, so the entry goes too
PRIVATE_USE_PENDING: dict[tuple[str, str], str] = {}


def _plugin_sources() -> list[Path]:
    files = sorted((ROOT / "plugins").glob("*/**/*.py"))
    for pkg in (ROOT / "examples").glob("*/*"):
        if pkg.is_dir() and (pkg / "__init__.py").is_file():
            files += sorted(pkg.rglob("*.py"))
    return files


def private_uses(path: Path) -> set[str]:
    """The non-public zoo modules ``path`` imports (``import zoo.x``, ``from zoo.x import``) or reaches
    through the package (``zoo.config.merge`` after ``import zoo``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("zoo.")}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("zoo."):
            found.add(node.module)
        elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "zoo"
              and node.attr not in zoo.__all__):
            found.add(f"zoo.{node.attr}")
    return found - PUBLIC_MODULES


def test_the_scan_finds_private_imports(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import zoo\nimport zoo.sdk.tensors\nfrom zoo.config import Range\nzoo.config.merge({}, {})\n"
                   "from zoo import Range\nzoo.train\n")
    assert private_uses(bad) == {"zoo.sdk.tensors", "zoo.config"}


def test_plugins_and_examples_use_only_the_public_api():
    found = {}
    for path in _plugin_sources():
        rel = str(path.relative_to(ROOT))
        for use in private_uses(path):
            found[(rel, use)] = True
    assert len(_plugin_sources()) > 30
    unexpected = sorted(k for k in found if k not in PRIVATE_USE_PENDING)
    assert not unexpected, f"plugins reach into zoo's internals (use names from zoo.__all__): {unexpected}"
    stale = sorted(k for k in PRIVATE_USE_PENDING if k not in found)
    assert not stale, f"no longer needed, remove from PRIVATE_USE_PENDING: {stale}"


DOCSTRING_PENDING: dict[str, str] = {}  # public names allowed to lack a docstring for now, with why


def test_every_public_name_exists_is_documented_and_is_in_the_sdk_page():
    page = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    undocumented = set()
    for name in zoo.__all__:
        if name == "__version__":
            continue
        obj = getattr(zoo, name)
        assert f"`{name}" in page, f"docs/plugins.md does not mention zoo.{name}"
        if callable(obj) and not isinstance(obj, zoo.Range) and not inspect.getdoc(obj):
            undocumented.add(name)
    assert undocumented == set(DOCSTRING_PENDING), "public names without a docstring (or stale DOCSTRING_PENDING)"
    assert len(set(zoo.__all__)) == len(zoo.__all__)


def test_the_sdk_page_names_every_trainer_key_and_no_other():
    import re

    page = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    files = ("csv", "tsv", "txt", "jsonl", "conll")  # train.csv and the like are file names
    named = {k for k in re.findall(r"`((?:train|optim)\.[a-z_0-9]+)`", page) if k.split(".")[1] not in files}
    keys = {f"train.{f.name}" for f in dataclasses.fields(TrainConfig)}
    keys |= {f"optim.{f.name}" for f in dataclasses.fields(OptimConfig)}
    assert keys - named == set(), "docs/plugins.md section 7 misses these keys"
    assert named - keys == set(), "docs/plugins.md names keys the trainer does not have"
