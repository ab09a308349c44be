"""Plugin loading: failures are reported and contained, names are owned by the core, ZOO_PLUGINS filters."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata as md
import sys
import types
from pathlib import Path

import click
import pytest

import zoo
from zoo import api, hookimpl
from zoo.registry.names import KINDS
from zoo.errors import AmbiguousNameError

# ``zoo.registry.discovery`` is the api function, which shadows the submodule of the same name (see
# test_plugins_submodule_is_importable_by_name), so the module is taken from sys.modules.
plugins = importlib.import_module("zoo.registry.discovery")

FAKES = Path(__file__).resolve().parent / "fakeplugins"
BUILTINS = {
    "classify": {"model:rnn-classifier", "tokenizer:word", "tokenizer:labels", "dataset:imdb",
                 "dataset:text-classification", "task:classification",
                 "entry:imdb-lstm", "entry:imdb-gru", "entry:text-rnn", "entry:imdb-rnn"},
    "lm": {"model:gpt", "task:lm", "entry:shakespeare-char-gpt", "entry:gpt-lm", "entry:text-gpt"},
    "seq2seq": {"model:gru-seq2seq", "task:seq2seq", "entry:subseq-gru"},
    "seq2py": {"model:transformer-seq2seq", "task:code-generation", "dataset:conala", "dataset:pairs",
               "tokenizer:intent-words", "tokenizer:python-code", "entry:seq2py", "entry:seq2py-reverse",
               "entry:seq2py-pairs"},
    "subseq": {"dataset:subseq"},
    "text": {"dataset:tinyshakespeare", "dataset:text"},
    "tokenizers": {"tokenizer:digits", "tokenizer:char", "tokenizer:bpe"},
}


@pytest.fixture
def fakes_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(FAKES))
    yield
    for name in [m for m in sys.modules if m.startswith("zoofake_")]:
        del sys.modules[name]


def ep(name: str, module: str) -> md.EntryPoint:
    return md.EntryPoint(name, module, plugins.ENTRY_POINT_GROUP)


def fake(**hooks) -> types.SimpleNamespace:
    """A plugin object: ``fake(zoo_register_models=lambda register: ...)``."""
    obj = types.SimpleNamespace()
    for hook_name, fn in hooks.items():
        setattr(obj, hook_name, hookimpl(fn))
    return obj


def models(*names: str):
    def hook(register):
        for n in names:
            register(n, f"zoofake_nowhere:{n.replace('-', '_')}", summary=f"fake {n}")
    return hook


def test_plugins_submodule_is_importable_by_name():
    import zoo.registry.discovery as module

    assert module is sys.modules["zoo.registry.discovery"]
    assert callable(module.load)


# --- the real built-in plugins ---------------------------------------------------------------------

def test_builtin_plugins_are_found_through_entry_points_and_load_ok():
    loaded = plugins.load()
    for name, expected in BUILTINS.items():
        info = loaded.plugins[name]
        assert info.status == "ok", (name, info.error)
        assert info.error == ""
        assert info.version == zoo.__version__  # read from the distribution
        assert set(info.registered) == expected
    core = loaded.plugins["zoo"]
    assert core.status == "ok" and core.registered == []  # every built-in entry lives in its plugin
    assert loaded.plugins["lm"].depends == ["text", "tokenizers"]
    reg = loaded.registry
    assert reg.get("model", "gru-seq2seq").id == "seq2seq:gru-seq2seq"
    assert reg.get("dataset", "subseq").id == "subseq:subseq"
    assert reg.get("tokenizer", "digits").id == "tokenizers:digits"
    assert reg.get("task", "seq2seq").id == "seq2seq:seq2seq"
    assert reg.get("entry", "subseq-gru").id == "seq2seq:subseq-gru"
    assert [c for c in reg.collisions if c.plugins[0] in BUILTINS] == []


def test_builtin_model_follows_the_model_interface():
    cls = plugins.load().registry.get("model", "gru-seq2seq").load()
    assert issubclass(cls, zoo.Model)
    assert "hidden" in {f.name for f in dataclasses.fields(cls.Config)}
    assert isinstance(cls.__dict__.get("arch_version", zoo.Model.arch_version), int)
    assert zoo.resolve_entry("subseq-gru").data["model"]["name"] == "seq2seq:gru-seq2seq"


# --- plugins that fail --------------------------------------------------------------------------

def test_plugin_failing_on_import_is_reported_and_skipped(fakes_on_path):
    loaded = plugins.load(entry_points=[ep("broken", "zoofake_broken"), ep("good", "zoofake_good")], environ={})
    broken = loaded.plugins["broken"]
    assert broken.status == "failed"
    assert "RuntimeError" in broken.error and "boom" in broken.error
    assert broken.registered == []
    good = loaded.plugins["good"]
    assert good.status == "ok"
    assert loaded.registry.get("model", "good-model").id == "good:good-model"
    assert loaded.plugins["zoo"].status == "ok"
    assert "zoofake_good_heavy" not in sys.modules  # dotted factories stay unimported


def test_misspelled_hook_is_reported_failed(fakes_on_path):
    loaded = plugins.load(entry_points=[ep("good", "zoofake_good"), ep("typo", "zoofake_typo")], environ={})
    typo = loaded.plugins["typo"]
    assert typo.status == "failed"
    assert "zoo_register_modelz" in typo.error
    assert loaded.pm.get_plugin("typo") is None  # unregistered: it cannot run later either
    assert loaded.registry.list("model", "typo*") == []
    assert loaded.plugins["good"].status == "ok"
    assert [s.id for s in loaded.registry.list("model")] == ["good:good-model"]


def test_misspelled_hook_on_a_plugin_object(use_plugins):
    loaded = use_plugins(("typo", fake(zoo_register_tokenisers=models("t"))),
                         ("fine", fake(zoo_register_models=models("m"))))
    assert loaded.plugins["typo"].status == "failed"
    assert "zoo_register_tokenisers" in loaded.plugins["typo"].error
    assert loaded.plugins["fine"].status == "ok"
    assert zoo.list_models("m") == ["fine:m"]


def test_register_hook_that_raises_fails_the_plugin_and_it_contributes_nothing(use_plugins):
    def entries(register):
        register("half-entry", {"model": "half", "task": "seq2seq", "dataset": "subseq"})

    def bad_models(register):
        register("half", "zoofake_nowhere:Half")
        raise ValueError("bad plugin code")

    loaded = use_plugins(("bad", fake(zoo_register_entries=entries, zoo_register_models=bad_models)),
                         ("fine", fake(zoo_register_models=models("ok-model"))))
    info = loaded.plugins["bad"]
    assert info.status == "failed"
    assert "zoo_register_models" in info.error and "ValueError" in info.error and "bad plugin code" in info.error
    assert zoo.list_models("*half*") == [] and zoo.list_entries("*half*") == []
    assert not [s for k in KINDS for s in loaded.registry.specs(k) if s.plugin == "bad"]
    assert zoo.list_models("ok-model") == ["fine:ok-model"]
    assert loaded.plugins["fine"].status == "ok"


def test_failed_plugin_lists_nothing_as_registered(use_plugins):
    def bad_models(register):
        register("half", "zoofake_nowhere:Half")
        raise ValueError("bad plugin code")

    loaded = use_plugins(("bad", fake(zoo_register_models=bad_models)))
    assert loaded.plugins["bad"].status == "failed"
    assert loaded.plugins["bad"].registered == []


@pytest.mark.parametrize("name", ["has space", "a:b", ""])
def test_plugin_registering_an_invalid_name_is_reported(use_plugins, name):
    loaded = use_plugins(("odd", fake(zoo_register_models=models(name))),
                         ("fine", fake(zoo_register_models=models("m"))))
    info = loaded.plugins["odd"]
    assert info.status == "failed" and repr(name) in info.error
    assert not [s for k in KINDS for s in loaded.registry.specs(k) if s.plugin == "odd"]
    assert zoo.list_models("fine:*") == ["fine:m"]


def test_plugin_registering_without_factory_is_reported(use_plugins):
    loaded = use_plugins(("odd", fake(zoo_register_models=lambda register: register("m", None))))
    assert loaded.plugins["odd"].status == "failed"
    assert "without a factory" in loaded.plugins["odd"].error


def test_entry_point_declared_twice_keeps_the_first(fakes_on_path):
    loaded = plugins.load(entry_points=[ep("good", "zoofake_good"), ep("good", "zoofake_typo")], environ={})
    info = loaded.plugins["good"]
    assert info.module == "zoofake_good"
    assert "declared twice" in info.error
    assert loaded.registry.get("model", "good-model").id == "good:good-model"


# --- names ---------------------------------------------------------------------------------------

def test_two_plugins_registering_one_model_name_collide(use_plugins):
    loaded = use_plugins(("alpha", fake(zoo_register_models=models("shared", "only-a"))),
                         ("beta", fake(zoo_register_models=models("shared"))))
    reg = loaded.registry
    assert len(reg.collisions) == 1
    c = reg.collisions[0]
    assert (c.kind, c.name, sorted(c.plugins)) == ("model", "shared", ["alpha", "beta"])
    with pytest.raises(AmbiguousNameError, match="alpha:shared.*beta:shared"):
        zoo.get_registry().get("model", "shared")
    assert reg.get("model", "alpha:shared").plugin == "alpha"
    assert reg.get("model", "beta:shared").plugin == "beta"
    assert zoo.list_models("shared") == ["alpha:shared", "beta:shared"]
    assert reg.get("model", "only-a").id == "alpha:only-a"  # unique names still work short
    assert loaded.plugins["alpha"].status == loaded.plugins["beta"].status == "ok"


def test_collision_is_reported_once_when_another_plugin_failed(use_plugins):
    def raises(register):
        raise RuntimeError("x")

    loaded = use_plugins(("alpha", fake(zoo_register_models=models("shared"))),
                         ("beta", fake(zoo_register_models=models("shared"))),
                         ("bad", fake(zoo_register_models=raises)))
    assert loaded.plugins["bad"].status == "failed"
    assert len(loaded.registry.collisions) == 1


def test_plugin_info_lists_what_it_registered(fakes_on_path, use_plugins):
    loaded = plugins.load(entry_points=[ep("good", "zoofake_good")], environ={})
    info = loaded.plugins["good"]
    assert sorted(info.registered) == ["entry:good-entry", "model:good-model", "tokenizer:good-tok"]
    assert info.module == "zoofake_good"
    loaded = use_plugins(("obj", fake(zoo_register_models=models("m1", "m2"))))
    assert loaded.plugins["obj"].registered == ["model:m1", "model:m2"]


# --- ZOO_PLUGINS ---------------------------------------------------------------------------------

def test_zoo_plugins_loads_only_the_named_plugins(use_plugins):
    loaded = use_plugins(("a", fake(zoo_register_models=models("ma"))), ("b", fake(zoo_register_models=models("mb"))),
                         ("c", fake(zoo_register_models=models("mc"))), environ={"ZOO_PLUGINS": " a , b "})
    status = {n: i.status for n, i in loaded.plugins.items()}
    assert status["a"] == status["b"] == "ok"
    assert status["c"] == "blocked" and "ZOO_PLUGINS" in loaded.plugins["c"].error
    for name in BUILTINS:  # real entry points that are not listed are blocked too
        assert status[name] == "blocked"
    assert status["zoo"] == "ok"  # the core plugin is always there
    assert zoo.list_models() == ["a:ma", "b:mb"]
    assert zoo.list_entries() == []  # the entries of hidden plugins are hidden with them


def test_empty_zoo_plugins_loads_no_entry_point_plugin(monkeypatch):
    monkeypatch.setenv("ZOO_PLUGINS", "")
    loaded = plugins.load()
    eps = {e.name for e in md.entry_points(group="zoo")}
    assert eps >= set(BUILTINS)
    assert {n for n, i in loaded.plugins.items() if i.status == "blocked"} == eps
    assert loaded.plugins["zoo"].status == "ok"
    assert loaded.registry.list("model") == [] and loaded.registry.list("tokenizer") == []
    assert loaded.registry.list("entry") == []  # no plugin, no entry: none lives in the core any more


def test_zoo_plugins_env_names_builtins(monkeypatch):
    monkeypatch.setenv("ZOO_PLUGINS", "tokenizers")
    loaded = plugins.load()
    assert loaded.plugins["tokenizers"].status == "ok"
    assert loaded.plugins["seq2seq"].status == "blocked"
    assert [s.id for s in loaded.registry.list("tokenizer")] == ["tokenizers:bpe", "tokenizers:char", "tokenizers:digits"]
    assert loaded.registry.list("model") == []


# --- the CLI survives bad plugins ----------------------------------------------------------------

@pytest.fixture
def broken_installed(monkeypatch, fakes_on_path):
    """The real entry points plus one that fails on import."""
    real_load = plugins.load

    def load(entry_points=None, environ=None, extra=()):
        eps = [*md.entry_points(group="zoo"), ep("broken", "zoofake_broken")]
        return real_load(entry_points=eps, environ=environ, extra=extra)

    monkeypatch.setattr(plugins, "load", load)


def test_zoo_list_survives_a_broken_plugin(broken_installed, cli):
    result = cli("list")
    assert result.exit_code == 0, result.output
    assert "seq2seq:subseq-gru" in result.stdout and "seq2seq:gru-seq2seq" in result.stdout
    assert "Traceback" not in result.output
    assert "1 plugin(s) failed to load: broken" in result.stderr


def test_zoo_plugins_shows_status_and_error(broken_installed, cli, monkeypatch):
    result = cli("plugins")
    assert result.exit_code == 1, result.output  # a failed plugin is a problem a script can see
    lines = result.stdout.splitlines()
    assert any(line.startswith("broken") and line.split(": ", 1)[1].startswith("failed") for line in lines)
    assert any("error:" in line and "boom" in line for line in lines)
    assert any(line.startswith("seq2seq ") and ": ok" in line for line in lines)
    assert "registered: model:gru-seq2seq, task:seq2seq, entry:subseq-gru" in result.stdout


def test_zoo_plugins_shows_blocked(cli, monkeypatch):
    monkeypatch.setenv("ZOO_PLUGINS", "subseq")
    result = cli("plugins")
    assert result.exit_code == 0
    assert f"subseq {zoo.__version__}: ok" in result.stdout
    assert f"seq2seq {zoo.__version__}: blocked" in result.stdout
    assert "not listed in ZOO_PLUGINS" in result.stdout


def test_plugin_commands_appear_and_a_failing_one_is_contained(monkeypatch, cli):
    def add(cli):
        @cli.command("fake-hello")
        def hello():
            click.echo("hello from a fake plugin")

    def bad(cli):
        raise RuntimeError("cannot add my command")

    real_load = plugins.load
    monkeypatch.setattr(plugins, "load", lambda entry_points=None, environ=None, extra=(): real_load(
        entry_points=entry_points, environ=environ,
        extra=[("cmd", fake(zoo_register_commands=add)), ("badcmd", fake(zoo_register_commands=bad))]))
    result = cli("fake-hello")
    assert result.exit_code == 0, result.output
    assert "hello from a fake plugin" in result.output
    assert zoo.plugin_state().plugins["badcmd"].status == "failed"
    assert "cannot add my command" in zoo.plugin_state().plugins["badcmd"].error
    monkeypatch.setattr(plugins, "load", real_load)
    api.reset()
    from zoo.cli import build_cli

    assert "fake-hello" not in build_cli().commands  # every build_cli() is a fresh group


# --- owner-first names: a plugin reusing built-in short names changes no built-in entry ------------

def builtin_entry_ids(loaded) -> list[str]:
    """The entries of the plugins that ship with zoo (the distribution ``zoo``)."""
    ours = {n for n, i in loaded.plugins.items() if i.distribution == "zoo"}
    return [s.id for s in loaded.registry.specs("entry") if s.plugin in ours]


def resolved_ids(entry_ids: list[str]) -> dict[str, dict[str, str]]:
    """Each entry's resolved component ids (model, task, dataset, every tokenizer role)."""
    out = {}
    for entry in entry_ids:
        tiny = zoo.get_registry().get("entry", entry).data.get("tiny") or {}
        out[entry] = {key: spec.id for key, spec in zoo.resolve_entry(entry, tiny).specs.items()}
    return out


def copycat(registry) -> types.SimpleNamespace:
    """A plugin registering every short name of every kind ``registry`` holds (factories never imported)."""
    names = {kind: sorted({s.name for s in registry.specs(kind)}) for kind in KINDS}

    def components(kind):
        def hook(register):
            for name in names[kind]:
                register(name, f"zoofake_nowhere:{kind.title()}", summary=f"copycat {kind}")
        return hook

    def entries(register):
        for name in names["entry"]:
            register(name, {"model": "gru-seq2seq", "task": "seq2seq", "dataset": "subseq", "summary": "copycat"})

    return fake(zoo_register_models=components("model"), zoo_register_tokenizers=components("tokenizer"),
                zoo_register_datasets=components("dataset"), zoo_register_tasks=components("task"),
                zoo_register_loggers=components("logger"), zoo_register_entries=entries)


def test_a_plugin_reusing_every_builtin_short_name_changes_no_builtin_entry(use_plugins):
    entries = builtin_entry_ids(zoo.plugin_state())
    assert len(entries) >= 14 and "seq2seq:subseq-gru" in entries and "tagging:pos-transformer-char" in entries
    before = resolved_ids(entries)
    loaded = use_plugins(("copycat", copycat(zoo.get_registry())))
    assert loaded.plugins["copycat"].status == "ok"
    clashing = {c.kind for c in loaded.registry.collisions if "copycat" in c.plugins}
    assert clashing == set(KINDS)  # it really reuses a name of each kind: entry, model, tokenizer, dataset, task, logger
    assert resolved_ids(entries) == before
    assert not any(i.startswith("copycat:") for ids in before.values() for i in ids.values())


@pytest.mark.parametrize("kind, name, ours", [
    ("entry", "subseq-gru", "seq2seq:subseq-gru"), ("model", "gru-seq2seq", "seq2seq:gru-seq2seq"),
    ("tokenizer", "char", "tokenizers:char"), ("dataset", "imdb", "classify:imdb"),
    ("task", "classification", "classify:classification"),
])
def test_a_reused_short_name_typed_by_a_user_is_ambiguous(use_plugins, kind, name, ours):
    use_plugins(("copycat", copycat(zoo.get_registry())))
    with pytest.raises(AmbiguousNameError) as err:
        zoo.get_registry().get(kind, name)
    msg = str(err.value)
    owner = ours.split(":")[0]
    assert f"{kind} name '{name}' is ambiguous" in msg
    assert f"{ours} (from plugin {owner}, package zoo {zoo.__version__})" in msg
    assert f"copycat:{name} (from plugin copycat)" in msg
    assert "did you mean" not in msg
    assert zoo.get_registry().get(kind, ours).id == ours  # the full id always works


def test_a_reused_entry_name_on_the_command_line(use_plugins, monkeypatch, cli):
    real_load = plugins.load
    clone = copycat(real_load().registry)
    monkeypatch.setattr(plugins, "load", lambda entry_points=None, environ=None, extra=(): real_load(
        entry_points=entry_points, environ=environ, extra=[("copycat", clone)]))
    result = cli("train", "subseq-gru", "--set", "train.epochs=1")
    assert result.exit_code == 2
    assert "seq2seq:subseq-gru (from plugin seq2seq" in result.output and "copycat:subseq-gru" in result.output
    assert "Usage:" not in result.output and "Traceback" not in result.output
    listing = cli("list", "gru-seq2seq")
    assert "seq2seq:gru-seq2seq" in listing.stdout and "copycat:gru-seq2seq" in listing.stdout
    assert "warning: model 'gru-seq2seq' is registered more than once" in listing.stderr


def test_clashes_are_warnings_on_both_plugins(use_plugins):
    loaded = use_plugins(("copycat", copycat(zoo.get_registry())))
    ours = loaded.plugins["seq2seq"].warnings
    assert any("model name 'gru-seq2seq' is also registered as copycat:gru-seq2seq" in w for w in ours), ours
    theirs = loaded.plugins["copycat"].warnings
    assert any("seq2seq:gru-seq2seq" in w and "ambiguous" in w for w in theirs), theirs
    assert loaded.plugins["seq2seq"].status == loaded.plugins["copycat"].status == "ok"
    assert loaded.plugins["subseq"].warnings != [] and loaded.plugins["zoo"].warnings == []


# --- plugin dependencies ---------------------------------------------------------------------------

def depending(depends, **hooks) -> types.SimpleNamespace:
    obj = fake(**hooks)
    obj.ZOO_DEPENDS = depends
    return obj


def register_components(model=(), task=(), dataset=()):
    def models_(register):
        for n in model:
            register(n, "zoofake_nowhere:M")

    def tasks(register):
        for n in task:
            register(n, "zoofake_nowhere:T")

    def datasets(register):
        for n in dataset:
            register(n, "zoofake_nowhere:D")
    return {"zoo_register_models": models_, "zoo_register_tasks": tasks, "zoo_register_datasets": datasets}


def polarity_plugin(depends=None, task="classification") -> types.SimpleNamespace:
    """A third-party plugin as issue 17 wrote it: its own model and dataset, a task of another plugin."""
    def entries(register):
        register("polarity-cnn", {"model": "kim-cnn", "task": task, "dataset": "polarity"})

    hooks = {**register_components(model=["kim-cnn"], dataset=["polarity"]), "zoo_register_entries": entries}
    return depending(depends, **hooks) if depends is not None else fake(**hooks)


BASECLS = ("basecls", lambda: fake(**register_components(task=["classification", "polarity-task"])))


def test_entry_resolves_short_names_in_its_dependencies_first(use_plugins):
    from zoo.registry.resolve import entry_config

    use_plugins(("cnn", polarity_plugin(["basecls"])), (BASECLS[0], BASECLS[1]()),
                ("rival", fake(**register_components(task=["classification"], dataset=["polarity"]))))
    _, raw = entry_config("polarity-cnn")
    assert (raw["model"]["name"], raw["task"]["name"], raw["dataset"]["name"]) == \
        ("cnn:kim-cnn", "basecls:classification", "cnn:polarity")
    with pytest.raises(AmbiguousNameError):
        zoo.get_registry().get("task", "classification")


def test_dependencies_register_first_and_zoo_plugins_loads_them(use_plugins):
    loaded = use_plugins(("acnn", polarity_plugin(["basecls"])), (BASECLS[0], BASECLS[1]()),
                         ("other", fake(zoo_register_models=models("m"))), environ={"ZOO_PLUGINS": "acnn"})
    infos = loaded.plugins
    assert infos["acnn"].status == infos["basecls"].status == "ok"
    assert "loaded because acnn depends on it" in infos["basecls"].note
    assert infos["other"].status == "blocked" and infos["seq2seq"].status == "blocked"
    names = list(loaded.pm.list_name_plugin())
    assert [n for n, _ in names].index("basecls") < [n for n, _ in names].index("acnn")  # dependencies first
    assert zoo.list_entries() == ["acnn:polarity-cnn"]


def test_zoo_plugins_hides_the_entries_of_plugins_it_does_not_load(monkeypatch):
    monkeypatch.setenv("ZOO_PLUGINS", "lm")
    loaded = plugins.load()
    assert {n for n, i in loaded.plugins.items() if i.status == "ok"} == {"lm", "text", "tokenizers", "zoo"}
    entries = [s.id for s in loaded.registry.list("entry")]
    assert entries == ["lm:gpt-lm", "lm:shakespeare-char-gpt", "lm:text-gpt"]  # no classify:imdb-rnn
    assert "loaded because lm depends on it" in loaded.plugins["text"].note


def test_a_name_hidden_by_zoo_plugins_names_the_plugin_that_provides_it(use_plugins):
    from zoo.registry.resolve import entry_config

    use_plugins(("cnn", polarity_plugin(task="polarity-task")), (BASECLS[0], BASECLS[1]()),
                environ={"ZOO_PLUGINS": "cnn"})
    with pytest.raises(zoo.UnknownNameError) as err:
        entry_config("polarity-cnn")
    msg = str(err.value)
    assert msg == ("entry cnn:polarity-cnn: unknown task 'polarity-task': plugin basecls provides it "
                   "(basecls:polarity-task), but ZOO_PLUGINS=cnn hides it; add basecls to ZOO_PLUGINS, or unset "
                   "ZOO_PLUGINS")
    with pytest.raises(zoo.UnknownNameError, match="plugin basecls provides it"):
        zoo.get_registry().get("task", "basecls:classification")
    with pytest.raises(zoo.UnknownNameError, match=r"plugins basecls, classify provide it \(basecls:classification, "
                                                   r"classify:classification\), but ZOO_PLUGINS=cnn hides them"):
        zoo.get_registry().get("task", "classification")


def test_the_cli_says_which_hidden_plugin_provides_a_name(monkeypatch, cli):
    monkeypatch.setenv("ZOO_PLUGINS", "cnn")
    real_load = plugins.load
    monkeypatch.setattr(plugins, "load", lambda entry_points=None, environ=None, extra=(): real_load(
        entry_points=entry_points, environ=environ, extra=[("cnn", polarity_plugin(task="polarity-task")),
                                                            (BASECLS[0], BASECLS[1]())]))
    result = cli("train", "polarity-cnn")
    assert result.exit_code == 2
    assert "plugin basecls provides it (basecls:polarity-task), but ZOO_PLUGINS=cnn hides it" in result.output
    assert result.output.count("ZOO_PLUGINS=cnn") == 1  # said once, not repeated by a generic note


def test_dependency_problems_are_warnings(use_plugins):
    loaded = use_plugins(("cnn", polarity_plugin(["classify-not-here"], task="polarity-task")),
                         ("a", depending(["b"], zoo_register_models=models("ma"))),
                         ("b", depending(["a"], zoo_register_models=models("mb"))),
                         ("broken", depending(["cnn"], zoo_register_models=lambda register: 1 / 0)),
                         ("user", depending(["broken"], zoo_register_models=models("mu"))))
    assert loaded.plugins["cnn"].status == "ok"
    assert "depends on plugin 'classify-not-here', which is not installed" in loaded.plugins["cnn"].warnings
    assert any("dependency cycle" in w for w in loaded.plugins["a"].warnings)
    assert zoo.list_models("m?") == ["a:ma", "b:mb", "user:mu"]
    with pytest.raises(zoo.UnknownNameError, match="depends on classify-not-here, which registered nothing"):
        zoo.resolve_entry("polarity-cnn")


@pytest.mark.parametrize("value", ["classify", [1], {"classify": 1}, [""]])
def test_invalid_zoo_depends_fails_only_that_plugin(use_plugins, value):
    loaded = use_plugins(("odd", depending(value, zoo_register_models=models("m"))),
                         ("fine", fake(zoo_register_models=models("n"))))
    assert loaded.plugins["odd"].status == "failed"
    assert "ZOO_DEPENDS must be a list of plugin names" in loaded.plugins["odd"].error
    assert zoo.list_models("fine:*") == ["fine:n"]


# --- an artifact whose plugin is missing ------------------------------------------------------------

def test_artifact_of_a_hidden_or_missing_plugin_names_it_and_its_version(tiny_run, tmp_path, monkeypatch):
    import json

    from safetensors.torch import load_file, save_file

    from zoo.store.artifact import read_header

    artifact = tiny_run / "model.safetensors"
    monkeypatch.setenv("ZOO_PLUGINS", "subseq,tokenizers")
    api.reset()
    with pytest.raises(zoo.ArtifactError) as err:
        zoo.load(artifact)
    assert f"model seq2seq:gru-seq2seq comes from plugin seq2seq {zoo.__version__}, which ZOO_PLUGINS hides; " \
           "add seq2seq to ZOO_PLUGINS" in str(err.value)

    monkeypatch.delenv("ZOO_PLUGINS")
    api.reset()
    _, raw = read_header(artifact)
    config = json.loads(raw["config"])
    config["model"]["name"] = "cnn:kim-cnn"
    other = tmp_path / "cnn.safetensors"
    save_file(load_file(str(artifact)), str(other),
              metadata={**raw, "config": json.dumps(config), "model": "cnn:kim-cnn", "plugin": "cnn",
                        "plugin_version": "0.3.1"})
    with pytest.raises(zoo.ArtifactError) as err:
        zoo.load(other)
    assert "model cnn:kim-cnn comes from plugin cnn 0.3.1, which is not installed; install the package that " \
           "provides plugin cnn 0.3.1" in str(err.value)
