"""The catalog: registry.toml indexes exactly what the plugins register; entries live with their
plugins, variants build on a base entry, ZOO_REGISTRY adds your own entries."""

from __future__ import annotations

import re
import types

import pytest

import zoo
from conftest import ROOT
from zoo import hookimpl
from zoo.registry import catalog
from zoo.registry.entries import entry_ids


def registered_rows(loaded) -> dict[str, dict]:
    """What the index should say of every entry of a plugin that ships with zoo."""
    ours = {n for n, i in loaded.plugins.items() if i.distribution == "zoo"}
    reg = loaded.registry
    return {s.name: catalog.index_row(s.plugin, s.summary, s.data, entry_ids(reg, s))
            for s in reg.specs("entry") if s.plugin in ours}


def test_registry_toml_indexes_exactly_what_the_plugins_register():
    rows = registered_rows(zoo.plugin_state())
    index = catalog.read_index()
    assert len(index) >= 14 and set(index) == set(rows)
    problems = catalog.index_problems(index, rows)
    assert problems == [], "\n\n".join(problems)
    assert (ROOT / "registry.toml").resolve() == (ROOT / "zoo" / "registry.toml").resolve()


def test_a_stale_index_is_caught_and_the_fix_is_printed():
    rows = registered_rows(zoo.plugin_state())
    index = {name: dict(row) for name, row in catalog.read_index().items()}
    index["subseq-gru"]["model"] = "seq2seq:lstm-seq2seq"
    del index["imdb-rnn"]
    index["gone"] = {"plugin": "lm", "model": "lm:gpt", "task": "lm:lm", "dataset": "text:text"}
    problems = catalog.index_problems(index, rows)
    assert len(problems) == 3
    assert problems[0].startswith("[entries.gone] is in registry.toml, but no built-in plugin registers")
    assert "entry 'imdb-rnn' (plugin classify) is registered but missing from registry.toml" in problems[1]
    assert "says model = 'seq2seq:lstm-seq2seq', plugin seq2seq registers 'seq2seq:gru-seq2seq'" in problems[2]
    fixed = problems[2].split("the table should read:\n", 1)[1]
    assert catalog.read_index(fixed)["subseq-gru"] == rows["subseq-gru"]  # the printed table is valid TOML


def test_the_index_holds_no_configs():
    with pytest.raises(zoo.ZooError, match=r"\[entries.x\] has unknown key\(s\) \['config'\].*entries.toml"):
        catalog.read_index('[entries.x]\nplugin = "lm"\nmodel = "lm:gpt"\ntask = "lm:lm"\ndataset = "text:text"\n'
                           '[entries.x.config.train]\nepochs = 1\n')


def test_every_reference_cites_a_source_that_exists():
    for name, row in catalog.read_index().items():
        ref = row.get("reference")
        if ref is None:
            continue
        assert {"metric", "value", "source"} <= set(ref), name
        assert "DEVELOPERS" not in ref["source"], name
        for path in re.findall(r"[\w./-]+\.(?:md|py|toml|txt|json)\b", ref["source"]):
            assert (ROOT / path).exists(), f"{name}: reference source names {path}, which is not in this repository"


def test_builtin_entries_keep_their_tiny_tables_and_variants_inherit():
    reg = zoo.get_registry()
    for spec in reg.specs("entry"):
        if spec.plugin in {"classify", "lm", "seq2seq", "seq2py", "tagging"}:
            assert isinstance(spec.data["tiny"], dict), spec.id
    char, chunk = reg.get("entry", "pos-transformer-char"), reg.get("entry", "chunk-transformer")
    assert chunk.data["base"] == "tagging:pos-transformer-char" and char.data["base"] == "tagging:pos-transformer"
    assert chunk.data["tiny"] == char.data["tiny"]  # inherited whole
    assert chunk.data["config"]["model"]["rel_pos"] == 8 and chunk.data["config"]["model"]["aux_layer"] == 1
    assert chunk.data["config"]["dataset"] == {"label": "chunk", "aux_label": "pos"}
    assert chunk.data["config"]["train"]["max_time"] == 570.0  # from pos-transformer-char, its base
    assert chunk.data["config"]["train"]["batch_size"] == 32  # from pos-transformer, two bases up
    assert chunk.data["reference"]["metric"] == "span_f1" and chunk.data["command"] == "zoo train chunk-transformer"
    resolved = zoo.resolve_entry("conll-tagger", {"dataset": {"train_file": "train.conll"}})
    assert resolved.data["train"]["max_time"] is None and resolved.data["train"]["epochs"] == 30
    assert resolved.specs["dataset"].id == "tagging:conll"


def test_zoo_info_shows_a_variant(cli):
    result = cli("info", "chunk-transformer")
    assert result.exit_code == 0, result.output
    assert "entry: tagging:chunk-transformer" in result.output and "transformer-tagger" in result.output


def test_a_retired_zoo_id_still_finds_the_builtin_entry():
    assert zoo.get_registry().get("entry", "zoo:subseq-gru").id == "seq2seq:subseq-gru"
    assert zoo.resolve_entry("zoo:imdb-gru").entry == "classify:imdb-gru"
    with pytest.raises(zoo.UnknownNameError):
        zoo.get_registry().get("entry", "zoo:no-such-entry")


# --- entries of a plugin: register(), register.from_toml(), base --------------------------------------

def entry_plugin(text: str | None = None, depends=None, **tables) -> types.SimpleNamespace:
    """A plugin registering ``tables`` (name -> entry dict) and, if given, the TOML ``text`` of a file."""
    obj = types.SimpleNamespace()

    def zoo_register_entries(register):
        for name, table in tables.items():
            register(name, table)
        if text is not None:
            obj.names = register.from_toml(obj.path)

    obj.zoo_register_entries = hookimpl(zoo_register_entries)
    if depends is not None:
        obj.ZOO_DEPENDS = depends
    return obj


def with_file(obj, tmp_path, text: str):
    obj.path = tmp_path / "entries.toml"
    obj.path.write_text(text, encoding="utf-8")
    return obj


VARIANTS = '''
[entries.fast]
base = "slow"
summary = "fewer epochs"
[entries.fast.config.train]
epochs = 1

[entries.slow]
summary = "the base"
model = "gru-seq2seq"
task = "seq2seq"
dataset = "subseq"
tokenizer = "digits"
command = "zoo train slow"
reference = { metric = "exact_match", value = 0.9, source = "here" }
tiny = { train = { epochs = 1 } }
[entries.slow.config.train]
epochs = 5
batch_size = 32
'''


def test_a_variant_lists_only_what_differs(use_plugins, tmp_path):
    obj = with_file(entry_plugin(text=VARIANTS), tmp_path, VARIANTS)
    loaded = use_plugins(("mine", obj))
    assert loaded.plugins["mine"].status == "ok", loaded.plugins["mine"].error
    assert obj.names == ["slow", "fast"]  # the base first, wherever it is in the file
    fast = zoo.get_registry().get("entry", "mine:fast")
    assert fast.data["base"] == "mine:slow" and fast.summary == "fewer epochs"
    assert fast.data["config"]["train"] == {"epochs": 1, "batch_size": 32}
    assert fast.data["tiny"] == {"train": {"epochs": 1}}
    assert "command" not in fast.data and "reference" not in fast.data  # never inherited
    assert zoo.resolve_entry("mine:fast").data["train"]["batch_size"] == 32


def test_a_variant_of_another_plugins_entry_keeps_that_entrys_names(use_plugins):
    rival = types.SimpleNamespace(zoo_register_models=hookimpl(
        lambda register: register("gru-seq2seq", "zoofake_nowhere:Rival")))
    loaded = use_plugins(("rival", rival), ("mine", entry_plugin(
        depends=["seq2seq"], quick={"base": "subseq-gru", "config": {"train": {"epochs": 1}}})))
    quick = loaded.registry.get("entry", "mine:quick")
    assert quick.data["model"] == "seq2seq:gru-seq2seq" and quick.data["base"] == "seq2seq:subseq-gru"
    resolved = zoo.resolve_entry("mine:quick")
    assert resolved.specs["model"].id == "seq2seq:gru-seq2seq" and resolved.data["train"]["epochs"] == 1
    assert resolved.data["train"]["batch_size"] == 128  # the rest is subseq-gru's


@pytest.mark.parametrize("tables, words", [
    ({"v": {"base": "no-such-entry"}}, ["entry 'v': base 'no-such-entry'", "unknown entry", "registered before"]),
    ({"v": {"base": 3}}, ["base must be an entry name, got 3"]),
    ({"v": {"model": "m", "task": "t"}}, ["entry 'v' is missing 'dataset'"]),
    ({"v": {"model": "m", "task": "t", "dataset": "d", "epochs": 3}}, ["entry 'v' has unknown key(s) ['epochs']"]),
    ({"v": "gru-seq2seq"}, ["entry 'v' must be a table/dict, got str"]),
])
def test_a_bad_entry_fails_its_plugin_with_a_clear_error(use_plugins, tables, words):
    loaded = use_plugins(("bad", entry_plugin(**tables)))
    info = loaded.plugins["bad"]
    assert info.status == "failed" and "zoo_register_entries raised" in info.error
    for word in words:
        assert word in info.error, info.error
    assert loaded.plugins["seq2seq"].status == "ok" and zoo.list_entries("bad:*") == []


@pytest.mark.parametrize("text, words", [
    ("[entries.a\nmodel = 1\n", ["entries.toml: invalid TOML", "line 1"]),
    ("[other]\nx = 1\n", ["unknown table 'other'", "[entries.NAME]"]),
    ('[entries.a]\nbase = "b"\n[entries.b]\nbase = "a"\n', ["name each other as base: a -> b -> a"]),
])
def test_a_bad_entry_file_names_the_file(use_plugins, tmp_path, text, words):
    loaded = use_plugins(("bad", with_file(entry_plugin(text=text), tmp_path, text)))
    info = loaded.plugins["bad"]
    assert info.status == "failed"
    assert str(tmp_path / "entries.toml") in info.error
    for word in words:
        assert word in info.error, info.error


# --- ZOO_REGISTRY: your own entries ---------------------------------------------------------------------

def test_zoo_registry_adds_your_own_entries(tmp_path, monkeypatch):
    path = tmp_path / "mine.toml"
    path.write_text('[entries.my-subseq]\nbase = "subseq-gru"\nsummary = "mine"\n'
                    '[entries.my-subseq.config.model]\nhidden = 64\n'
                    '[entries.my-subseq.tune.space."optim.lr"]\ntype = "float"\nlow = 1e-3\nhigh = 1e-2\n',
                    encoding="utf-8")
    monkeypatch.setenv("ZOO_REGISTRY", str(path))
    spec = zoo.get_registry().get("entry", "my-subseq")
    assert spec.id == "zoo:my-subseq" and list(spec.data["tune"]["space"]) == ["optim.lr"]
    resolved = zoo.resolve_entry("my-subseq")
    assert resolved.data["model"]["hidden"] == 64 and resolved.specs["model"].id == "seq2seq:gru-seq2seq"
    assert zoo.get_registry().get("entry", "subseq-gru").id == "seq2seq:subseq-gru"  # the built-in is unchanged
    assert f"ZOO_REGISTRY={path}" in zoo.plugin_state().plugins["zoo"].note


def test_an_unreadable_zoo_registry_fails_only_the_core_plugin(tmp_path, monkeypatch, cli):
    monkeypatch.setenv("ZOO_REGISTRY", str(tmp_path / "missing.toml"))
    info = zoo.plugin_state().plugins["zoo"]
    assert info.status == "failed" and "ZOO_REGISTRY" in info.error and "missing.toml: cannot read it" in info.error
    result = cli("list", "subseq-gru")
    assert result.exit_code == 0 and "seq2seq:subseq-gru" in result.stdout


# --- entry keys belong to the plugins that read them (zoo_register_entry_keys) ---------------------------

def key_plugin(key: str, **kwargs) -> types.SimpleNamespace:
    """A plugin that declares it reads entry key ``key``."""
    return types.SimpleNamespace(zoo_register_entry_keys=hookimpl(
        lambda register: register(key, summary=f"the {key} table", **kwargs)))


ENTRY = {"model": "gru-seq2seq", "task": "seq2seq", "dataset": "subseq", "tokenizer": "digits"}


def test_tune_and_tiny_are_declared_by_the_plugins_that_read_them():
    from zoo.registry import discovery

    loaded = discovery.load()
    keys = loaded.registry.entry_keys
    assert keys["tune"].plugin == "tune" and keys["tiny"].plugin == "zoo"
    assert loaded.plugins["tune"].entry_keys == ["tune"] and loaded.plugins["zoo"].entry_keys == ["tiny"]
    from zoo.registry.entries import ENTRY_KEYS

    assert not {"tune", "tiny"} & ENTRY_KEYS  # not the core schema's any more


def test_a_key_a_plugin_declares_is_accepted_and_checked(use_plugins):
    def check(value, where):
        if not isinstance(value, int):
            raise zoo.ZooError(f"{where}: must be a number")

    loaded = use_plugins(("mine", entry_plugin(depends=["seq2seq"], a={**ENTRY, "budget": 3})),
                         ("budgets", key_plugin("budget", check=check)))
    assert loaded.plugins["mine"].status == "ok"
    assert loaded.registry.get("entry", "mine:a").data["budget"] == 3
    bad = use_plugins(("mine", entry_plugin(depends=["seq2seq"], a={**ENTRY, "budget": "lots"})),
                      ("budgets", key_plugin("budget", check=check)))
    assert bad.plugins["mine"].status == "failed"
    assert "entry 'a' [budget]: must be a number" in bad.plugins["mine"].error


def test_a_key_nobody_declares_is_an_error_naming_who_declares_what(use_plugins):
    loaded = use_plugins(("mine", entry_plugin(depends=["seq2seq"], a={**ENTRY, "budget": 3})))
    info = loaded.plugins["mine"]
    assert info.status == "failed"
    for word in ("entry 'a' has unknown key(s) ['budget']", "tune (plugin tune)", "tiny (plugin zoo)"):
        assert word in info.error, info.error


def test_a_key_of_a_plugin_hidden_by_zoo_plugins_is_kept_with_a_warning(use_plugins):
    loaded = use_plugins(environ={"ZOO_PLUGINS": "seq2seq"})
    assert loaded.plugins["tune"].status == "blocked"
    assert "tune" in loaded.registry.get("entry", "seq2seq:subseq-gru").data
    warning = [w for w in loaded.plugins["seq2seq"].warnings if "read by no loaded plugin" in w]
    assert warning and "['tune']" in warning[0] and "tune" in warning[0].split("not loaded here:")[1]


def test_a_variant_merges_or_replaces_a_declared_key_as_declared(use_plugins):
    base = {**ENTRY, "merged": {"a": 1, "b": 2}, "whole": {"a": 1, "b": 2}}
    loaded = use_plugins(
        ("mine", entry_plugin(depends=["seq2seq"], base=base,
                              v={"base": "base", "merged": {"b": 3}, "whole": {"b": 3}})),
        ("m", key_plugin("merged", inherit="merge")), ("w", key_plugin("whole")))
    v = loaded.registry.get("entry", "mine:v").data
    assert v["merged"] == {"a": 1, "b": 3} and v["whole"] == {"b": 3}


@pytest.mark.parametrize("key, kwargs, words", [
    ("config", {}, ["declared entry key 'config', which is the core's"]),
    ("two words", {}, ["declared entry key 'two words'", "letters, digits"]),
    ("fine", {"inherit": "sometimes"}, ["inherit must be one of ['replace', 'merge']"]),
    ("fine", {"check": 3}, ["check must be callable"]),
])
def test_a_bad_key_declaration_fails_only_that_plugin(use_plugins, key, kwargs, words):
    loaded = use_plugins(("keys", key_plugin(key, **kwargs)))
    info = loaded.plugins["keys"]
    assert info.status == "failed" and "zoo_register_entry_keys raised" in info.error
    for word in words:
        assert word in info.error, info.error
    assert loaded.plugins["seq2seq"].status == "ok"


def test_a_key_declared_twice_keeps_the_first_reader_in_load_order(use_plugins):
    loaded = use_plugins(("zzz-again", key_plugin("tune")))  # plugins load in name order: tune first
    assert loaded.registry.entry_keys["tune"].plugin == "tune"
    assert any("entry key 'tune' is also declared by plugin tune" in w for w in loaded.plugins["zzz-again"].warnings)
    assert loaded.plugins["zzz-again"].entry_keys == []
