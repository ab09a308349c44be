"""The lm task's <bos>/<eos> boundaries and generation that stops at <eos>; evaluation that keeps its budget."""

from __future__ import annotations

import json
import logging

import pytest
import torch
import zoo
from zoo import config
from zoo.runtime.distributed import World
from zoo.training.evaluation import BoundedEval
from zoo_lm.task import LMConfig, LMTask, units
from zoo_tokenizers.char import CharTokenizer

TEXT = ("It was late. The lamps were lit!\nWas anyone there? \"No.\" Nobody came.\n\n"
        "A new paragraph starts here. It ends here.")


def task_for(text: str = TEXT, **cfg) -> LMTask:
    tok = CharTokenizer()
    tok.fit([text, "One more."])
    return LMTask(config.build(LMConfig, {"block_size": 4, **cfg}, "task"), {"text": tok})


def test_units_of_text():
    assert units(TEXT, "document") == [TEXT]
    assert units(TEXT, "paragraph") == ["It was late. The lamps were lit!\nWas anyone there? \"No.\" Nobody came.",
                                        "A new paragraph starts here. It ends here."]
    assert units(TEXT, "sentence") == ["It was late.", "The lamps were lit!", "Was anyone there?", "\"No.\"",
                                       "Nobody came.", "A new paragraph starts here.", "It ends here."]
    assert units("  \n\n \n ", "sentence") == [] and units("Mr. Smith", "sentence") == ["Mr.", "Smith"]


@pytest.mark.parametrize("boundaries, count", [("document", 2), ("paragraph", 3), ("sentence", 8)])
def test_every_unit_is_marked_with_bos_and_eos(boundaries, count):
    task = task_for(boundaries=boundaries)
    tok = task.tokenizers["text"]
    examples = [{"text": TEXT}, {"text": "One more."}]
    ids = task.encode(examples)["ids"].tolist()
    assert ids[0] == tok.bos_id and ids[-1] == tok.eos_id
    assert ids.count(tok.bos_id) == ids.count(tok.eos_id) == count
    pieces, current = [], []
    for i in ids:  # every unit is <bos> text <eos>, nothing between them
        if i == tok.bos_id:
            assert current == []
        elif i == tok.eos_id:
            pieces.append(tok.decode(current))
            current = []
        else:
            current.append(i)
    assert pieces == [u for ex in examples for u in units(ex["text"], boundaries)]
    # bits per byte count the units' own bytes: not the markers, not the gaps between units
    encoded = task.encode(examples)
    assert encoded["bytes_per_token"] * len(ids) == pytest.approx(sum(len(p.encode()) for p in pieces))


def test_without_boundaries_the_stream_is_the_joined_text():
    task = task_for()
    ids = task.encode([{"text": TEXT}, {"text": "One more."}])["ids"].tolist()
    tok = task.tokenizers["text"]
    assert tok.bos_id not in ids and tok.eos_id not in ids
    assert tok.decode(ids) == TEXT + "\n" + "One more."


class ScriptedModel(torch.nn.Module):
    """A 'model' whose generate yields a fixed list of ids, recording what it was given."""

    def __init__(self, script: list[int]):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.script, self.calls = script, []

    def generate(self, idx, max_new_tokens, temperature, top_k, generator=None, use_cache=True, banned=None):
        self.calls.append({"idx": idx.tolist(), "banned": banned})
        for t in self.script[:max_new_tokens]:
            yield torch.tensor([t])


def test_generation_shows_eos_as_the_gap_or_stops_there():
    task = task_for(boundaries="sentence")
    tok = task.tokenizers["text"]
    script = [*tok.encode("It was."), tok.eos_id, tok.bos_id, *tok.encode("No.")]
    model = ScriptedModel(script)
    assert "".join(task.generate(model, "It", max_new_tokens=50)) == "It was. No."
    assert model.calls[0]["idx"] == [[tok.bos_id, *tok.encode("It")]]  # the prompt starts a unit, as in training
    assert tok.eos_id not in model.calls[0]["banned"] and tok.pad_id in model.calls[0]["banned"]
    assert "".join(task.generate(model, "", max_new_tokens=50, stop_at_eos=True)) == "It was."
    assert model.calls[1]["idx"] == [[tok.bos_id]]
    records = task.predict(model, ["It"], max_new_tokens=50, stop_at_eos=True)
    assert records == [{"text": "It was."}]
    paragraphs = task_for(boundaries="paragraph")
    assert "".join(paragraphs.generate(ScriptedModel(script), "", max_new_tokens=50)) == "It was.\n\nNo."


def test_stop_at_eos_needs_a_model_trained_with_boundaries():
    task = task_for()
    tok = task.tokenizers["text"]
    model = ScriptedModel(tok.encode("It was."))
    with pytest.raises(zoo.ConfigError, match="trained without task.boundaries"):
        task.predict(model, ["It"], stop_at_eos=True)
    assert task.predict(model, ["It"])[0]["text"] == "It was."  # unchanged without boundaries
    banned = model.calls[-1]["banned"]
    assert {tok.bos_id, tok.eos_id} <= set(banned)  # never learned: never produced
    with pytest.raises(zoo.ConfigError, match="stop_at_eos must be true or false"):
        task.predict(model, ["It"], stop_at_eos="yes")


def test_a_cut_evaluation_still_spans_the_split():
    task = task_for("abcdefghij" * 100)  # 1,000 tokens: 249 blocks of 4
    encoded = task.encode([{"text": "abcdefghij" * 100}])
    every = torch.cat([b["x"] for b in task.batches(encoded, 16, shuffle=False, seed=0)])
    assert every.shape[0] == 249
    offsets = task._offsets(encoded)
    assert sorted(offsets.tolist()) == list(range(0, 996, 4))  # every block once
    head = offsets[:16]
    assert head.min() < 250 and head.max() > 750  # the first batch alone samples the whole split


# --- the evaluation budget ------------------------------------------------------------------------

class FiveBatches:
    shared_keys = ()

    def batches(self, encoded, batch_size, *, shuffle, seed):
        for _ in range(5):
            yield {"x": torch.zeros(batch_size, 2)}


def evaluate_with_clock(bounded: BoundedEval, clock: list[float]) -> int:
    """Batches evaluated when each takes one second of ``clock``."""
    n = 0
    for _ in bounded.batches(None, 3, shuffle=False, seed=0):
        clock[0] += 1.0
        n += 1
    return n


def test_bounded_evaluation_stops_in_time_and_later_ones_stop_at_the_same_batch(caplog, monkeypatch):
    import zoo.training.evaluation

    clock = [0.0]
    monkeypatch.setattr(zoo.training.evaluation.time, "perf_counter", lambda: clock[0])
    bounded = BoundedEval(FiveBatches(), 1.5, World(), torch.device("cpu"))
    with caplog.at_level(logging.WARNING, logger="zoo.training.evaluation"):
        assert evaluate_with_clock(bounded, clock) == 2  # 1 s after the first, 2 s after the second: time is up
    assert bounded.examples == 6 and bounded.cap == 2
    assert "train.max_eval_time=1.5s after 2 batches (6 examples)" in caplog.text
    bounded.max_time = 100.0
    assert evaluate_with_clock(bounded, clock) == 2  # later evaluations take the same examples
    once = BoundedEval(FiveBatches(), 1e-9, World(), torch.device("cpu"))
    assert evaluate_with_clock(once, clock) == 1  # the first batch is always evaluated
    free = BoundedEval(FiveBatches(), None, World(), torch.device("cpu"))
    assert evaluate_with_clock(free, clock) == 5 and free.examples == 15


def tiny(path, **more):
    cfg = {
        "dataset": {"files": [str(path)]},
        "model": {"n_layer": 1, "n_head": 2, "n_embd": 32},
        "task": {"block_size": 16},
        "train": {"epochs": 2, "steps_per_epoch": 5, "batch_size": 8, "eval_batch_size": 4, "threads": 1,
                  "progress": False},
    }
    return zoo.config.merge(cfg, more)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "notes.txt"
    path.write_text("The cat sat. The dog ran! Where is the bird? It flew away.\n\n" * 60, encoding="utf-8")
    return path


def test_a_run_says_how_many_blocks_each_evaluation_took(corpus, tmp_path):
    run = zoo.train("text-gpt", tiny(corpus, task={"eval_blocks": 10}), out=tmp_path / "bounded")
    records = [json.loads(line) for line in (run.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["eval_examples"] for r in records] == [10, 10]  # eval_blocks bounds it
    cut = zoo.train("text-gpt", tiny(corpus, train={"max_eval_time": 1e-9}), out=tmp_path / "cut")
    records = [json.loads(line) for line in (cut.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["eval_examples"] for r in records] == [4, 4]  # one batch of eval_batch_size blocks, every epoch


def test_training_with_sentence_boundaries(corpus, tmp_path):
    run = zoo.train("text-gpt", tiny(corpus, task={"boundaries": "sentence"}), out=tmp_path / "run")
    lm = zoo.load(run.artifact)
    assert lm.task.config.boundaries == "sentence"  # travels with the model
    text = lm.predict(["The"], max_new_tokens=40, stop_at_eos=True)[0]["text"]
    assert "<" not in text and len(text) <= 40
