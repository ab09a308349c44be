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
from zoo.registry import KINDS
from zoo.errors import AmbiguousNameError

# ``zoo.plugins`` is the api function, which shadows the submodule of the same name (see
# test_plugins_submodule_is_importable_by_name), so the module is taken from sys.modules.
plugins = importlib.import_module("zoo.plugins")

FAKES = Path(__file__).resolve().parent / "fakeplugins"
BUILTINS = {
    "classify": {"model:rnn-classifier", "tokenizer:word", "tokenizer:labels", "dataset:imdb",
                 "dataset:text-classification", "task:classification"},
    "lm": {"model:gpt", "task:lm"},
    "seq2seq": {"model:gru-seq2seq", "task:seq2seq"},
    "seq2py": {"model:transformer-seq2seq", "task:code-generation", "dataset:conala", "dataset:pairs",
               "tokenizer:intent-words", "tokenizer:python-code"},
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
    import zoo.plugins as module

    assert module is sys.modules["zoo.plugins"]
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
    assert core.status == "ok" and "entry:subseq-gru" in core.registered
    reg = loaded.registry
    assert reg.get("model", "gru-seq2seq").id == "seq2seq:gru-seq2seq"
    assert reg.get("dataset", "subseq").id == "subseq:subseq"
    assert reg.get("tokenizer", "digits").id == "tokenizers:digits"
    assert reg.get("task", "seq2seq").id == "seq2seq:seq2seq"
    assert reg.get("entry", "subseq-gru").id == "zoo:subseq-gru"
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
    assert status["zoo"] == "ok"  # the core catalog is always there
    assert zoo.list_models() == ["a:ma", "b:mb"]
    assert zoo.list_entries("subseq-gru") == ["zoo:subseq-gru"]


def test_empty_zoo_plugins_loads_no_entry_point_plugin(monkeypatch):
    monkeypatch.setenv("ZOO_PLUGINS", "")
    loaded = plugins.load()
    eps = {e.name for e in md.entry_points(group="zoo")}
    assert eps >= set(BUILTINS)
    assert {n for n, i in loaded.plugins.items() if i.status == "blocked"} == eps
    assert loaded.plugins["zoo"].status == "ok"
    assert loaded.registry.list("model") == [] and loaded.registry.list("tokenizer") == []
    entries = [s.id for s in loaded.registry.list("entry")]  # the catalog is core, always there
    assert "zoo:subseq-gru" in entries and all(e.startswith("zoo:") for e in entries)


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
    assert "zoo:subseq-gru" in result.stdout and "seq2seq:gru-seq2seq" in result.stdout
    assert "Traceback" not in result.output
    assert "1 plugin(s) failed to load: broken" in result.stderr


def test_zoo_plugins_shows_status_and_error(broken_installed, cli, monkeypatch):
    result = cli("plugins")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert any(line.startswith("broken") and line.split(": ", 1)[1].startswith("failed") for line in lines)
    assert any("error:" in line and "boom" in line for line in lines)
    assert any(line.startswith("seq2seq ") and ": ok" in line for line in lines)
    assert "registered: model:gru-seq2seq, task:seq2seq" in result.stdout


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
