"""zoo.config: --set parsing, merging, strict dataclass configs, and the TOML round trip of a resolved run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

import zoo
from zoo import api
from zoo.config import build, dumps_toml, load_toml, merge, parse_sets, parse_value
from zoo.errors import ConfigError, ZooUsageError


@dataclass
class Cfg:
    n: int = 1
    x: float = 0.5
    flag: bool = False
    name: str = "a"
    maybe: int | None = None
    rate: float | None = 0.1
    mode: Literal["fast", "slow"] = "fast"
    pair: tuple[float, float] = (0.9, 0.99)
    items: list[int] = field(default_factory=list)
    groups: dict[str, int] = field(default_factory=dict)

    def validate(self) -> None:
        if self.n > 100:
            raise ValueError(f"n must be <= 100, got {self.n}")


# --- parse_sets ----------------------------------------------------------------------------------

@pytest.mark.parametrize("text, value", [
    ("256", 256),
    ("-3", -3),
    ("1e-3", 1e-3),
    ("0.5", 0.5),
    ("true", True),
    ("false", False),
    ("[1, 2, 3]", [1, 2, 3]),
    ("[0.9, 0.98]", [0.9, 0.98]),
    ('"quoted string"', "quoted string"),
    ("dot", "dot"),  # a bare word is a string
    ("cuda:0", "cuda:0"),
    ("none", "none"),  # None is spelled "none"; the dataclass field decides
    ("{encoder = 2}", {"encoder": 2}),
])
def test_parse_value_types(text, value):
    parsed = parse_value(text)
    assert parsed == value and type(parsed) is type(value)


def test_parse_sets_builds_nested_sections():
    out = parse_sets(["model.hidden=256", "train.epochs = 3", "optim.lr=1e-3", "train.progress=false",
                      "model.attention=dot", "optim.betas=[0.9, 0.98]", "train.freeze.encoder=2"])
    assert out == {
        "model": {"hidden": 256, "attention": "dot"},
        "train": {"epochs": 3, "progress": False, "freeze": {"encoder": 2}},
        "optim": {"lr": 1e-3, "betas": [0.9, 0.98]},
    }
    assert type(out["model"]["hidden"]) is int and type(out["optim"]["lr"]) is float


def test_parse_sets_later_value_wins():
    assert parse_sets(["train.epochs=1", "train.epochs=5"]) == {"train": {"epochs": 5}}


def test_parse_sets_value_may_contain_equals():
    assert parse_sets(["task.prompt=a=b"]) == {"task": {"prompt": "a=b"}}


@pytest.mark.parametrize("item", ["train.epochs", "=3", "train..epochs=3", ".epochs=3", "train.=3", "  =1"])
def test_parse_sets_malformed_item_raises(item):
    with pytest.raises(ConfigError) as err:
        parse_sets([item])
    assert repr(item) in str(err.value) and "KEY=VALUE" in str(err.value)
    assert isinstance(err.value, ZooUsageError)  # exit code 2 on the command line


def test_parse_sets_value_and_section_conflict_raises():
    with pytest.raises(ConfigError, match="'hidden' is set both as a value and as a section"):
        parse_sets(["model.hidden=3", "model.hidden.x=4"])


# --- merge ---------------------------------------------------------------------------------------

def test_merge_is_deep_and_leaves_inputs_alone():
    base = {"model": {"hidden": 32, "layers": 2}, "train": {"epochs": 3, "freeze": {"encoder": 1}}}
    over = {"model": {"hidden": 64}, "train": {"freeze": {"decoder": 2}}, "optim": {"lr": 0.1}}
    out = merge(base, over)
    assert out == {"model": {"hidden": 64, "layers": 2}, "train": {"epochs": 3, "freeze": {"encoder": 1, "decoder": 2}},
                   "optim": {"lr": 0.1}}
    assert base == {"model": {"hidden": 32, "layers": 2}, "train": {"epochs": 3, "freeze": {"encoder": 1}}}
    assert over == {"model": {"hidden": 64}, "train": {"freeze": {"decoder": 2}}, "optim": {"lr": 0.1}}
    out["train"]["freeze"]["encoder"] = 99  # no shared structure
    assert base["train"]["freeze"]["encoder"] == 1


def test_merge_value_replaces_section_and_back():
    assert merge({"a": {"b": 1}}, {"a": 3}) == {"a": 3}
    assert merge({"a": 3}, {"a": {"b": 1}}) == {"a": {"b": 1}}


# --- build ---------------------------------------------------------------------------------------

def test_build_defaults_and_values():
    cfg = build(Cfg, None, "model")
    assert cfg == Cfg()
    cfg = build(Cfg, {"n": 3, "x": 2, "flag": True, "name": "b", "mode": "slow", "items": [1, 2]}, "model")
    assert (cfg.n, cfg.x, cfg.flag, cfg.name, cfg.mode, cfg.items) == (3, 2.0, True, "b", "slow", [1, 2])
    assert type(cfg.x) is float  # ints widen to float


def test_build_unknown_key_names_it_and_lists_valid_keys():
    with pytest.raises(ConfigError) as err:
        build(Cfg, {"hiden": 3}, "model")
    msg = str(err.value)
    assert "model.hiden" in msg
    for key in ("n", "x", "flag", "name", "maybe", "mode", "pair", "items", "groups"):
        assert key in msg
    assert isinstance(err.value, ZooUsageError)


@pytest.mark.parametrize("key, value, expected, shown", [
    ("flag", 1, "bool", "1"),  # int given for bool
    ("flag", "yes", "bool", "'yes'"),
    ("n", "abc", "int", "'abc'"),  # string for int
    ("n", 1.5, "int", "1.5"),  # float for int
    ("n", True, "int", "True"),  # bool is not an int here
    ("x", "fast", "float", "'fast'"),
    ("x", False, "float", "False"),
    ("name", 3, "str", "3"),
    ("items", 3, "list", "3"),
    ("items", ["a"], "int", "'a'"),
    ("groups", {"encoder": "two"}, "int", "'two'"),
    ("groups", [1], "dict", "[1]"),
])
def test_build_wrong_type_names_the_key(key, value, expected, shown):
    with pytest.raises(ConfigError) as err:
        build(Cfg, {key: value}, "model")
    msg = str(err.value)
    assert f"model.{key}" in msg
    assert expected in msg  # the type it must be
    assert shown in msg  # and what was given


def test_wrong_type_inside_containers_names_the_element():
    with pytest.raises(ConfigError, match=r"model\.items\[1\]"):
        build(Cfg, {"items": [1, "b"]}, "model")
    with pytest.raises(ConfigError, match=r"model\.groups\.encoder"):
        build(Cfg, {"groups": {"encoder": 1.5}}, "model")


@pytest.mark.parametrize("value", ["none", "None", "null", None])
def test_optional_field_accepts_none(value):
    cfg = build(Cfg, {"maybe": value, "rate": value}, "model")
    assert cfg.maybe is None and cfg.rate is None


def test_optional_field_still_checks_the_other_type():
    assert build(Cfg, {"maybe": 4}, "model").maybe == 4
    with pytest.raises(ConfigError) as err:
        build(Cfg, {"maybe": "four"}, "model")
    assert "model.maybe" in str(err.value) and "int" in str(err.value) and "none" in str(err.value)


def test_none_for_a_required_type_is_an_error():
    with pytest.raises(ConfigError, match="model.n"):
        build(Cfg, {"n": "none"}, "model")


def test_literal_choices():
    assert build(Cfg, {"mode": "slow"}, "model").mode == "slow"
    with pytest.raises(ConfigError) as err:
        build(Cfg, {"mode": "medium"}, "model")
    msg = str(err.value)
    assert "model.mode" in msg and "'fast'" in msg and "'slow'" in msg and "'medium'" in msg


def test_tuple_field():
    cfg = build(Cfg, {"pair": [0.8, 1]}, "model")
    assert cfg.pair == (0.8, 1.0) and isinstance(cfg.pair, tuple)
    with pytest.raises(ConfigError, match=r"'model.pair' needs 2 values, got 3"):
        build(Cfg, {"pair": [0.1, 0.2, 0.3]}, "model")
    with pytest.raises(ConfigError, match=r"model\.pair\[0\]"):
        build(Cfg, {"pair": ["a", 0.2]}, "model")
    with pytest.raises(ConfigError, match="model.pair"):
        build(Cfg, {"pair": 0.5}, "model")


def test_validate_value_error_becomes_config_error():
    with pytest.raises(ConfigError) as err:
        build(Cfg, {"n": 101}, "model")
    assert "[model]" in str(err.value) and "n must be <= 100" in str(err.value)
    assert isinstance(err.value.__cause__, ValueError)


def test_train_and_optim_configs_validate():
    from zoo.config.train import OptimConfig, TrainConfig

    for values, text in [({"epochs": 0}, "epochs must be >= 1"), ({"patience": 0}, "patience"),
                         ({"freeze": {"encoder": -1}}, "freeze.encoder"), ({"amp": "fp8"}, "train.amp")]:
        with pytest.raises(ConfigError, match=text):
            build(TrainConfig, values, "train")
    with pytest.raises(ConfigError, match="lr must be > 0"):
        build(OptimConfig, {"lr": 0}, "optim")
    with pytest.raises(ConfigError, match="min_lr"):
        build(OptimConfig, {"lr": 0.1, "min_lr": 1.0}, "optim")
    with pytest.raises(ConfigError, match="optim.name"):
        build(OptimConfig, {"name": "lion"}, "optim")


# --- resolving entries and the TOML round trip ---------------------------------------------------

def test_resolve_entry_applies_overrides_and_rejects_bad_ones():
    r = zoo.resolve_entry("subseq-gru", {"model": {"hidden": 48}, "train": {"epochs": 7}})
    assert r.data["model"]["hidden"] == 48 and r.data["train"]["epochs"] == 7
    assert r.data["model"]["attention"] == "dot"  # the entry's own override survives
    assert r.data["model"]["name"] == "seq2seq:gru-seq2seq" and r.data["entry"] == "seq2seq:subseq-gru"
    with pytest.raises(ConfigError, match="model.nope"):
        zoo.resolve_entry("subseq-gru", {"model": {"nope": 1}})
    with pytest.raises(ConfigError, match="unknown config section 'modle'"):
        zoo.resolve_entry("subseq-gru", {"modle": {"hidden": 1}})
    with pytest.raises(ConfigError, match=r"tokenizer\.(src\.)?bogus"):
        zoo.resolve_entry("subseq-gru", {"tokenizer": {"bogus": {"name": "digits"}}})
    with pytest.raises(ConfigError, match="'entry' is not a setting"):  # its card and artifact would name it
        zoo.resolve_entry("subseq-gru", {"entry": "imdb-rnn"})
    # a run's own config.toml as overrides names its entry again: that is allowed
    assert zoo.resolve_entry("subseq-gru", {"entry": "seq2seq:subseq-gru"}).entry == "seq2seq:subseq-gru"


def test_resolved_config_round_trips_through_toml(tmp_path):
    resolved = zoo.resolve_entry("subseq-gru", {"train": {"freeze": {"encoder": 1}, "max_steps": None,
                                                          "steps_per_epoch": None}})
    text = dumps_toml(resolved.data)
    assert "none" in text  # None has no TOML spelling
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    again = api.resolve(load_toml(path))
    assert again.data == resolved.data
    assert again.configs == resolved.configs
    assert again.data["train"]["steps_per_epoch"] is None
    assert again.configs["optim"].betas == (0.9, 0.999)
    assert again.data["train"]["freeze"] == {"encoder": 1}


def test_load_toml_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[model\nhidden = 3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="bad.toml: invalid TOML"):
        load_toml(bad)
    with pytest.raises(zoo.ZooError, match="missing.toml: cannot read"):
        load_toml(tmp_path / "missing.toml")
