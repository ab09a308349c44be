"""Registry unit tests with fake specs: ids, short names, collisions, suggestions, patterns, sorting."""

from __future__ import annotations

import json

import pytest

from zoo.errors import AmbiguousNameError, UnknownNameError, ZooError, ZooUsageError
from zoo.registry.names import HiddenNameError, NameClashError, Registry, Spec, natural_key


def make(*specs: tuple[str, str, str]) -> Registry:
    """A registry holding ``(kind, name, plugin)`` specs with dummy factories."""
    reg = Registry()
    for kind, name, plugin in specs:
        reg.add(Spec(kind, name, plugin, factory=f"{plugin}.mod:{name}"))
    return reg


def test_canonical_id_is_plugin_colon_name():
    reg = make(("model", "gpt2", "gpt"))
    spec = reg.get("model", "gpt:gpt2")
    assert spec.id == "gpt:gpt2"
    assert (spec.plugin, spec.name, spec.kind) == ("gpt", "gpt2", "model")


def test_short_name_works_when_unique():
    reg = make(("model", "gpt2", "gpt"), ("model", "bert", "hf"))
    assert reg.get("model", "gpt2").id == "gpt:gpt2"
    assert reg.get("model", "bert").id == "hf:bert"


def test_same_short_name_in_different_kinds_is_no_collision():
    reg = make(("model", "gpt2", "gpt"), ("tokenizer", "gpt2", "gpt"), ("entry", "gpt2", "other"))
    assert reg.collisions == []
    assert reg.get("model", "gpt2").kind == "model"
    assert reg.get("tokenizer", "gpt2").kind == "tokenizer"
    assert reg.get("entry", "gpt2").id == "other:gpt2"


def test_two_plugins_same_short_name_is_ambiguous_and_recorded():
    reg = make(("model", "gpt2", "alpha"), ("model", "gpt2", "beta"))
    with pytest.raises(AmbiguousNameError) as err:
        reg.get("model", "gpt2")
    msg = str(err.value)
    assert "alpha:gpt2" in msg and "beta:gpt2" in msg  # says which ids to choose from
    assert isinstance(err.value, ZooUsageError) and err.value.exit_code == 2
    # the full ids still work, and neither shadows the other
    assert reg.get("model", "alpha:gpt2").plugin == "alpha"
    assert reg.get("model", "beta:gpt2").plugin == "beta"
    assert [s.id for s in reg.list("model")] == ["alpha:gpt2", "beta:gpt2"]
    # the collision is recorded, with both plugins
    assert len(reg.collisions) == 1
    c = reg.collisions[0]
    assert (c.kind, c.name, sorted(c.plugins)) == ("model", "gpt2", ["alpha", "beta"])
    assert "alpha:gpt2" in str(c) and "beta:gpt2" in str(c)


def test_one_plugin_registering_a_name_twice_keeps_the_first_and_reports():
    reg = Registry()
    reg.add(Spec("model", "gpt2", "gpt", factory="first"))
    reg.add(Spec("model", "gpt2", "gpt", factory="second"))
    assert reg.get("model", "gpt2").factory == "first"
    assert len(reg.list("model")) == 1
    assert len(reg.collisions) == 1 and reg.collisions[0].name == "gpt2"


def test_unknown_name_suggests_close_matches():
    reg = make(("model", "gpt2", "gpt"), ("model", "bert-base", "hf"))
    with pytest.raises(UnknownNameError) as err:
        reg.get("model", "gtp2")
    msg = str(err.value)
    assert "unknown model 'gtp2'" in msg
    assert "did you mean" in msg and "gpt2" in msg
    assert "bert" not in msg  # only close names are offered
    assert err.value.exit_code == 2


def test_unknown_full_id_suggests_the_right_one():
    reg = make(("model", "bert-base", "hf"))
    with pytest.raises(UnknownNameError, match="did you mean.*hf:bert-base"):
        reg.get("model", "hf:bert-bsae")


def test_unknown_name_without_close_match_points_at_zoo_list():
    reg = make(("model", "gpt2", "gpt"))
    with pytest.raises(UnknownNameError) as err:
        reg.get("model", "resnet-152-imagenet")
    msg = str(err.value)
    assert "did you mean" not in msg
    assert "zoo list" in msg


def test_unknown_name_in_empty_kind():
    with pytest.raises(UnknownNameError, match="unknown task 'x'"):
        Registry().get("task", "x")


def test_fnmatch_pattern_on_short_name_and_id():
    reg = make(("model", "gpt2", "gpt"), ("model", "gpt2-medium", "gpt"), ("model", "bert", "hf"),
               ("model", "mygpt", "hf"))
    assert [s.id for s in reg.list("model", "gpt*")] == ["gpt:gpt2", "gpt:gpt2-medium"]
    assert [s.id for s in reg.list("model", "hf:*")] == ["hf:bert", "hf:mygpt"]
    assert [s.id for s in reg.list("model", "*gpt*")] == ["gpt:gpt2", "gpt:gpt2-medium", "hf:mygpt"]
    assert [s.id for s in reg.list("model", "gpt?")] == ["gpt:gpt2"]
    assert [s.id for s in reg.list("model", "*:bert")] == ["hf:bert"]
    assert reg.list("model", "resnet*") == []
    assert len(reg.list("model")) == 4  # default pattern: everything
    assert reg.list("tokenizer") == []  # kinds are separate


def test_natural_sort_puts_gpt2_before_gpt10():
    reg = make(("model", "gpt10", "p"), ("model", "gpt2", "p"), ("model", "gpt1", "p"), ("model", "gpt2-xl", "p"),
               ("model", "Bert", "p"))
    assert [s.name for s in reg.list("model")] == ["Bert", "gpt1", "gpt2", "gpt2-xl", "gpt10"]
    assert sorted(["v10", "v9", "v100", "v1"], key=natural_key) == ["v1", "v9", "v10", "v100"]


def test_sort_is_by_canonical_id_across_plugins():
    reg = make(("model", "a", "zeta"), ("model", "z", "alpha"), ("model", "m", "plugin10"), ("model", "m", "plugin2"))
    assert [s.id for s in reg.list("model")] == ["alpha:z", "plugin2:m", "plugin10:m", "zeta:a"]


@pytest.mark.parametrize("name", ["", "has space", "a:b", "-leading-dash", "../escape", "név", "x/y", ".hidden"])
def test_invalid_names_are_rejected(name):
    reg = Registry()
    with pytest.raises(ZooError) as err:
        reg.add(Spec("model", name, "plug", factory="x:y"))
    assert "plug" in str(err.value) and repr(name) in str(err.value)  # names the plugin and the bad name
    assert reg.list("model") == []


@pytest.mark.parametrize("name", ["gpt2", "gpt-2", "v1.5", "a_b", "X"])
def test_valid_names_are_accepted(name):
    reg = make(("model", name, "plug"))
    assert reg.get("model", name).id == f"plug:{name}"


def test_unknown_kind_is_rejected():
    with pytest.raises(ZooError, match="unknown kind 'widget'"):
        Registry().add(Spec("widget", "w", "plug"))


def test_dotted_factory_is_resolved_only_on_load():
    reg = Registry()
    reg.add(Spec("model", "dumps", "p", factory="json:dumps"))
    reg.add(Spec("model", "ghost", "p", factory="no_such_module_for_zoo_tests.model:Ghost"))
    spec = reg.get("model", "ghost")  # registering and finding import nothing
    assert spec.factory == "no_such_module_for_zoo_tests.model:Ghost"
    with pytest.raises(ZooError, match="cannot import 'no_such_module_for_zoo_tests.model:Ghost'"):
        spec.load()
    assert reg.get("model", "dumps").load() is json.dumps
    # a dotted path without a colon works too
    assert Spec("model", "x", "p", factory="json.dumps").load() is json.dumps


# --- owner-first names ---------------------------------------------------------------------------

def test_short_name_in_scope_finds_the_owners_own_first():
    reg = make(("model", "gru", "mine"), ("model", "gru", "base"), ("model", "gru", "late"), ("model", "lstm", "base"))
    reg.depends = {"mine": ("base",), "other": ("base", "late")}
    assert reg.get("model", "gru", reg.scope("mine")).id == "mine:gru"  # its own plugin wins
    assert reg.get("model", "gru", reg.scope("other")).id == "base:gru"  # then its dependencies, in order
    assert reg.get("model", "lstm", reg.scope("mine")).id == "base:lstm"
    assert reg.get("model", "late:gru", reg.scope("mine")).id == "late:gru"  # a full id means exactly that
    with pytest.raises(NameClashError):
        reg.get("model", "gru")  # typed by a user, with no owner: ambiguous


def test_short_name_outside_scope_falls_back_to_the_unique_one():
    reg = make(("task", "seq2seq", "seq"), ("model", "m", "mine"))
    assert reg.get("task", "seq2seq", reg.scope("mine")).id == "seq:seq2seq"


def test_ambiguous_name_lists_every_id_and_who_registered_it():
    reg = make(("model", "gru-seq2seq", "seq2seq"), ("model", "gru-seq2seq", "cnn"))
    reg.owners = {"seq2seq": "plugin seq2seq, package zoo 0.1.0", "cnn": "plugin cnn, package zoo-cnn 0.3.1"}
    with pytest.raises(AmbiguousNameError) as err:
        reg.get("model", "gru-seq2seq")
    msg = str(err.value)
    assert "cnn:gru-seq2seq (from plugin cnn, package zoo-cnn 0.3.1)" in msg
    assert "seq2seq:gru-seq2seq (from plugin seq2seq, package zoo 0.1.0)" in msg
    assert "did you mean" not in msg and err.value.exit_code == 2


def test_find_says_ambiguous_instead_of_suggesting_the_name_itself():
    reg = make(("model", "gru-seq2seq", "seq2seq"), ("model", "gru-seq2seq", "cnn"), ("task", "seq2seq", "seq2seq"))
    with pytest.raises(NameClashError) as err:
        reg.find("gru-seq2seq")
    assert "did you mean 'gru-seq2seq'" not in str(err.value) and "cnn:gru-seq2seq" in str(err.value)
    assert [s.id for s in reg.find("seq2seq")] == ["seq2seq:seq2seq"]
    assert [s.kind for s in reg.find("cnn:gru-seq2seq")] == ["model"]
    with pytest.raises(UnknownNameError, match="unknown name 'gru-seq2sq'; did you mean"):
        reg.find("gru-seq2sq")


def test_a_retired_id_is_read_through_the_alias_only_when_it_is_not_registered():
    reg = make(("entry", "subseq-gru", "seq2seq"), ("entry", "mine", "zoo"))
    reg.alias = lambda kind, name: {"zoo:subseq-gru": "seq2seq:subseq-gru"}.get(name)
    assert reg.get("entry", "zoo:subseq-gru").id == "seq2seq:subseq-gru"
    assert reg.get("entry", "zoo:mine").id == "zoo:mine"
    with pytest.raises(UnknownNameError):
        reg.get("entry", "zoo:nothing")


def test_unknown_name_that_a_hidden_plugin_provides_says_so():
    reg = make(("model", "m", "a"))
    hidden = [Spec("task", "classification", "classify", factory="x:y")]
    reg.hidden = lambda kind, name: [s for s in hidden if s.kind == kind and name in (s.id, s.name)]
    reg.filter_text = "ZOO_PLUGINS=cnn"
    with pytest.raises(HiddenNameError) as err:
        reg.get("task", "classification")
    msg = str(err.value)
    assert msg.startswith("unknown task 'classification': plugin classify provides it (classify:classification), "
                          "but ZOO_PLUGINS=cnn hides it")
    assert "add classify to ZOO_PLUGINS" in msg and isinstance(err.value, UnknownNameError)
    with pytest.raises(HiddenNameError):
        reg.get("task", "classify:classification")
    with pytest.raises(UnknownNameError) as plain:
        reg.get("task", "regression")
    assert "ZOO_PLUGINS" not in str(plain.value)  # the filter is not the cause: not mentioned


def test_without_drops_a_plugin_and_keeps_what_messages_need():
    reg = make(("model", "x", "a"), ("model", "x", "b"), ("model", "y", "c"))
    reg.depends, reg.owners = {"a": ("c",)}, {"a": "plugin a"}
    clean = reg.without({"b"})
    assert [s.id for s in clean.list("model")] == ["a:x", "c:y"]
    assert clean.collisions == [] and clean.depends == {"a": ("c",)} and clean.owners == {"a": "plugin a"}


def test_a_factory_that_does_not_import_names_the_plugin_that_registered_it():
    spec = Spec("model", "ghost", "myplug", "no_such_module_anywhere:Ghost")
    with pytest.raises(ZooError, match=r"model myplug:ghost, registered by plugin myplug: cannot import"):
        spec.load()
