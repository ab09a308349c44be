"""Inference on raw inputs: ``zoo.load(x).predict(...)`` and ``zoo predict``, for every built-in task.

Each task's tiny model is trained once for the module (entries that need no downloaded
data); its predictions are checked against what evaluation computes for the same examples.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import shutil

import pytest

import zoo
from zoo import api, config
from zoo.sdk import files as data
from zoo.inference.predict import SORT_WINDOW, Predictor
from zoo.build.pieces import final_split
from zoo.inference.load import find_artifact

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# task -> (entry, overrides on top of the entry's tiny config); none of them needs ZOO_DATA_DIR
ENTRIES = {
    "classification": ("text-rnn", {}),
    "tagging": ("conll-tagger", {"dataset": {"label_column": -1}}),  # chunk labels: B-NP, I-NP, O (BIO)
    "seq2seq": ("subseq-gru", {"train": {"epochs": 2}}),
    "code-generation": ("seq2py-pairs", {}),
    "lm": ("text-gpt", {}),
}
SAMPLES = {
    "classification": ["I loved every minute of it", "Dull from start to finish."],
    "tagging": ["The cat sat on the mat .", "A small dog barked"],
    "seq2seq": ["2 3 7 1 9 4 4 0 2 8", "0 8 1 2 3 4 5 6 7 8"],
    "code-generation": ["add 1 to `x`", "multiply `a` by `b`"],
    "lm": ["The model", ""],
}
OPTIONS = {"lm": {"max_new_tokens": 8}}


@pytest.fixture(autouse=True, scope="module")
def _in_repo_root():
    """The tiny configs name files of this repository (example data, CHANGELOG.md)."""
    before = os.getcwd()
    os.chdir(ROOT)
    yield
    os.chdir(before)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """task -> run folder of its tiny model, each trained once for the module."""
    runs: dict[str, object] = {}

    def get(task: str):
        if task not in runs:
            entry, extra = ENTRIES[task]
            api.reset()
            tiny = zoo.get_registry().get("entry", entry).data["tiny"]
            overrides = config.merge(config.merge(tiny, {"train": {"progress": False, "threads": 1}}), extra)
            runs[task] = zoo.train(entry, overrides, out=tmp_path_factory.mktemp(entry) / "run").run_dir
            api.reset()
        return runs[task]

    return get


def final_examples(loaded):
    """(name, examples) of the split zoo evaluate reports on (test, or val without a test split)."""
    dataset = loaded.resolved.cls("dataset")(loaded.resolved.configs["dataset"], data_dir=data.data_dir(None))
    split = final_split(dataset)
    return split, dataset.load(split)


# --- records against evaluation ---------------------------------------------------------------------

def test_classification_records_match_the_evaluation_outputs(trained):
    run = trained("classification")
    m = zoo.load(run)
    split, examples = final_examples(m)
    want: list[dict] = []
    zoo.evaluate(run, split, device="cpu", outputs=want)
    got = m.predict([ex["text"] for ex in examples], batch_size=3)
    assert [r["label"] for r in got] == [w["predicted"] for w in want]
    for r, w in zip(got, want):
        assert {p["label"]: p["probability"] for p in r["probabilities"]} == pytest.approx(w["probabilities"], abs=1e-5)
        probs = [p["probability"] for p in r["probabilities"]]
        assert probs == sorted(probs, reverse=True) and r["probability"] == probs[0]
        assert sorted(p["label"] for p in r["probabilities"]) == sorted(m.task.labels)
        assert math.isclose(sum(probs), 1.0, abs_tol=1e-4)


def test_tagging_records_score_as_evaluation_does(trained):
    """Accuracy and span F1 computed from predicted tags equal the metrics of zoo evaluate."""
    from zoo_tagging.task import spans

    run = trained("tagging")
    m = zoo.load(run)
    split, examples = final_examples(m)
    metrics = zoo.evaluate(run, split, device="cpu")
    got = m.predict([ex["tokens"] for ex in examples], batch_size=4)
    correct = sum(p == g for r, ex in zip(got, examples) for p, g in zip(r["tags"], ex["tags"]))
    assert correct / sum(len(ex["tags"]) for ex in examples) == pytest.approx(metrics["accuracy"])
    known = set(m.task.labels)  # evaluation reads a label never seen in training as O
    gold_spans = [spans([t if t in known else "O" for t in ex["tags"]]) for ex in examples]
    found = sum(len(r["spans"]) for r in got)
    hits = sum(len({(s["type"], s["start"], s["end"]) for s in r["spans"]} & g) for r, g in zip(got, gold_spans))
    gold = sum(len(g) for g in gold_spans)
    assert hits / max(found, 1) == pytest.approx(metrics["span_precision"])
    assert hits / max(gold, 1) == pytest.approx(metrics["span_recall"])
    for r in got:
        assert len(r["tags"]) == len(r["words"])
        assert {(s["type"], s["start"], s["end"]) for s in r["spans"]} == spans(r["tags"])


def test_tagging_tags_every_word_of_a_sentence_longer_than_the_model_reads(trained):
    m = zoo.load(trained("tagging"))
    words = ["the", "cat"] * (m.task.config.max_len + 5)
    long = m.predict([words])[0]
    assert long["words"] == words and len(long["tags"]) == len(words)
    head = m.predict([words[: m.task.config.max_len]])[0]
    assert long["tags"][: m.task.config.max_len] == head["tags"]  # the first piece alone tags alike


def test_seq2seq_outputs_score_as_evaluation_does(trained):
    """Exact match and token accuracy computed from the outputs equal zoo evaluate's."""
    run = trained("seq2seq")
    m = zoo.load(run)
    split, examples = final_examples(m)
    metrics = zoo.evaluate(run, split, device="cpu")
    got = m.predict([{"src": ex["src"]} for ex in examples], batch_size=64)
    exact = correct = tokens = 0
    for r, ex in zip(got, examples):
        gold, out = ex["tgt"].split() + ["<eos>"], r["output"].split()
        pred = out + ["<eos>"] * (len(out) < 30)  # the output ends where the model wrote <eos>
        exact += pred[: len(gold)] == gold
        correct += sum(p == g for p, g in zip(pred, gold))
        tokens += len(gold)
    assert exact / len(examples) == pytest.approx(metrics["exact_match"])
    assert correct / tokens == pytest.approx(metrics["token_accuracy"])
    assert correct > 0  # a model that learned something: the comparison is not between two zeros


def test_code_generation_records_match_the_evaluation_outputs(trained):
    run = trained("code-generation")
    want = [json.loads(line) for line in (run / "outputs.test.jsonl").read_text().splitlines()]
    m = zoo.load(run)
    got = m.predict([w["intent"] for w in want], batch_size=2)
    assert [r["code"] for r in got] == [w["generated"] for w in want]


def test_code_generation_options(trained):
    m = zoo.load(trained("code-generation"))
    greedy = m.predict("add 1 to `x`", beam=1, max_len=3)
    assert set(greedy) == {"code"} and len(greedy["code"]) <= len(m.predict("add 1 to `x`", beam=1)["code"])
    if "n_best" not in __import__("inspect").signature(m.model.beam_search).parameters:
        with pytest.raises(zoo.ConfigError, match="n_best"):
            m.predict("add 1 to `x`", n_best=2)
        pytest.skip("this seq2py model's beam_search returns one hypothesis (no n_best parameter)")
    r = m.predict("add 1 to `x`", n_best=2)
    scores = [c["score"] for c in r["candidates"]]
    assert 1 <= len(scores) <= 2 and r["code"] == r["candidates"][0]["code"]


def test_lm_continuation_is_what_zoo_generate_writes(trained):
    run = trained("lm")
    m = zoo.load(run)
    opts = {"max_new_tokens": 12, "temperature": 0.9, "top_k": 5, "seed": 3}
    want = "".join(zoo.generate(run, "The model", device="cpu", **opts))
    assert m.predict("The model", **opts) == {"text": want}
    assert m.predict("The model", **{**opts, "seed": 4}) != m.predict("The model", **opts)
    with pytest.raises(zoo.ConfigError, match="temperature"):
        m.predict("x", temperature=-1.0)


@pytest.mark.slow
@pytest.mark.parametrize("entry", ["imdb-lstm", "chunk-transformer"])
def test_entries_on_real_data_predict_what_training_evaluated(entry, tmp_path, data_dir_or_skip):
    """Tiny models of real-data entries: the test records / metrics of training, again from predict."""
    from zoo_tagging.task import spans

    folder = zoo.resolve_entry(entry).cls("dataset").folder
    if not (data_dir_or_skip / folder).is_dir():
        pytest.skip(f"{entry} needs {folder}/ under ZOO_DATA_DIR ({data_dir_or_skip})")
    tiny = zoo.get_registry().get("entry", entry).data["tiny"]
    run = zoo.train(entry, config.merge(tiny, {"train": {"progress": False, "threads": 1}}), out=tmp_path / "run")
    m = zoo.load(run.run_dir)
    examples = final_examples(m)[1]
    if entry == "imdb-lstm":
        want = [json.loads(line) for line in (run.run_dir / "outputs.test.jsonl").read_text().splitlines()]
        got = m.predict([ex["text"] for ex in examples])
        assert [r["label"] for r in got] == [w["predicted"] for w in want]
        return
    got = m.predict([ex["tokens"] for ex in examples], batch_size=256)
    known = set(m.task.labels)
    correct = sum(p == g for r, ex in zip(got, examples) for p, g in zip(r["tags"], ex["tags"]))
    assert correct / sum(len(ex["tags"]) for ex in examples) == pytest.approx(run.metrics["test"]["accuracy"])
    hits = sum(len({(s["type"], s["start"], s["end"]) for s in r["spans"]}
                   & spans([t if t in known else "O" for t in ex["tags"]])) for r, ex in zip(got, examples))
    assert hits / max(sum(len(r["spans"]) for r in got), 1) == pytest.approx(run.metrics["test"]["span_precision"])


# --- forms, shape, determinism, errors ---------------------------------------------------------------

@pytest.mark.parametrize("task", list(ENTRIES))
def test_single_list_and_stream_forms_give_the_same_json_records(task, trained):
    m = zoo.load(trained(task))
    inputs, opts = SAMPLES[task], OPTIONS.get(task, {})
    batch = m.predict(inputs, **opts)
    assert isinstance(batch, list) and len(batch) == len(inputs)
    assert json.loads(json.dumps(batch)) == batch  # JSON-serialisable as it is
    assert m.predict(inputs[0], **opts) == batch[0]  # one input -> one record
    stream = m.predict((x for x in inputs), batch_size=1, **opts)
    assert not isinstance(stream, list) and list(stream) == batch
    assert m.predict(tuple(inputs), **opts) == batch  # deterministic, whatever the batch
    for r in batch:
        assert r and all(isinstance(k, str) for k in r)


def test_a_stream_is_read_lazily_in_batches(trained):
    m = zoo.load(trained("classification"))
    endless = (f"review number {i}" for i in itertools.count())
    window = 4 * SORT_WINDOW  # inputs read ahead and ordered by length, then predicted 4 at a time
    first = list(itertools.islice(m.predict(endless, batch_size=4), window + 2))
    assert len(first) == window + 2
    assert next(endless) == f"review number {2 * window}"  # two windows were read, nothing more


def test_records_come_back_in_input_order_though_predicted_by_length(trained):
    m = zoo.load(trained("classification"))
    texts = [("good " * n).strip() for n in (9, 1, 5, 3, 7, 2)]
    alone = [m.predict(t) for t in texts]
    assert m.predict(texts, batch_size=2) == alone
    assert list(m.predict(iter(texts), batch_size=2)) == alone


@pytest.mark.parametrize("task", ["classification", "tagging", "seq2seq", "code-generation"])
def test_empty_and_wrong_type_inputs_are_data_errors_naming_the_input(task, trained):
    m = zoo.load(trained(task))
    good = SAMPLES[task][0]
    with pytest.raises(zoo.DataError, match=r"^input 2: .*empty"):
        m.predict([good, good, "   "])
    with pytest.raises(zoo.DataError, match=r"^input 1: expected .*got int"):
        m.predict([good, 7])
    with pytest.raises(zoo.DataError, match=r"^input 5: "):  # the position in the whole stream
        list(m.predict(iter([good] * 5 + [None]), batch_size=2))


def test_tagging_inputs_text_or_wrapped_word_list(trained):
    m = zoo.load(trained("tagging"))
    assert m.predict("The cat sat") == m.predict([["The", "cat", "sat"]])[0]
    assert m.predict(["The cat sat"]) == m.predict([("The", "cat", "sat")])
    with pytest.raises(zoo.DataError, match="input 0: word 1"):
        m.predict([["The", "big cat"]])


def test_lm_allows_an_empty_prompt_but_not_a_number(trained):
    m = zoo.load(trained("lm"))
    assert isinstance(m.predict("", max_new_tokens=3)["text"], str)
    with pytest.raises(zoo.DataError, match="input 0: expected a prompt"):
        m.predict([3])


def test_options_the_task_does_not_take_are_refused(trained):
    m = zoo.load(trained("classification"))
    with pytest.raises(zoo.ConfigError, match="'top_k' does not apply.*none"):
        m.predict("nice", top_k=3)
    with pytest.raises(zoo.ConfigError, match="batch_size"):
        m.predict(["nice"], batch_size=0)
    predictor = Predictor(m)
    assert predictor.run(["nice"]) == [m.predict("nice")]


def test_load_by_entry_name_finds_its_run_or_says_to_train(trained, tmp_path, monkeypatch):
    run = trained("classification")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(zoo.ArtifactError, match="zoo train text-rnn"):
        zoo.load("text-rnn")
    with pytest.raises(zoo.ArtifactError, match="no entry of that name"):
        zoo.load("no-such-entry")
    shutil.copytree(run, tmp_path / "runs" / "text-rnn")
    assert find_artifact("text-rnn") == tmp_path.joinpath("runs", "text-rnn", "model.safetensors").relative_to(tmp_path)
    assert zoo.load("text-rnn").predict("nice") == zoo.load(run).predict("nice")


# --- zoo predict ------------------------------------------------------------------------------------

def test_cli_prints_a_table_for_classification(trained, cli):
    run = trained("classification")
    result = cli("predict", str(run), "I loved every minute of it", "Dull.")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["label", "prob", "input"] and len(lines) == 3
    want = zoo.load(run).predict(["I loved every minute of it", "Dull."])
    for line, r in zip(lines[1:], want):
        assert line.split()[0] == r["label"] and line.endswith(("it", "Dull."))


def test_cli_tagging_words_and_json(trained, cli):
    run = trained("tagging")
    r = zoo.load(run).predict("The cat sat")
    result = cli("predict", str(run), "The cat sat")
    assert result.output.strip() == " ".join(f"{w}/{t}" for w, t in zip(r["words"], r["tags"]))
    result = cli("predict", str(run), "The cat sat", "--json")
    assert json.loads(result.output) == {"input": "The cat sat", **r}


def test_cli_reads_text_and_jsonl_files_and_writes_jsonl(trained, cli, tmp_path):
    run = trained("classification")
    texts = ["I loved it", "Dull.", "fine"]
    (tmp_path / "in.txt").write_text(texts[0] + "\n\n" + "\n".join(texts[1:]) + "\n")  # a blank line is skipped
    result = cli("predict", str(run), "--input", str(tmp_path / "in.txt"), "--output", str(tmp_path / "out.jsonl"),
                 "--batch-size", "2")
    assert result.exit_code == 0, result.output
    want = zoo.load(run).predict(texts)
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert rows == [{"input": t, **w} for t, w in zip(texts, want)]
    lines = [json.dumps({"id": i, "input": t, "label": "gold"}) for i, t in enumerate(texts)]
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    result = cli("predict", str(run), "--input", str(tmp_path / "in.jsonl"), "--output", "-")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [r["id"] for r in rows] == [0, 1, 2] and all(r["input_label"] == "gold" for r in rows)
    assert [r["label"] for r in rows] == [w["label"] for w in want]


def test_cli_bad_jsonl_line_names_file_and_line_and_keeps_the_old_output(trained, cli, tmp_path):
    run = trained("classification")
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text('{"input": "good"}\n{"input": "fine"}\n{"text": "no input field"}\n')
    out.write_text("earlier results\n")
    result = cli("predict", str(run), "--input", str(src), "--output", str(out), "--batch-size", "1", "--force")
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert f"{src}:3: expected an object with an 'input' field" in result.output
    assert "Traceback" not in result.output
    assert out.read_text() == "earlier results\n"  # written atomically: nothing half-done
    src.write_text('{"input": "good"}\n{"input": ""}\n')
    result = cli("predict", str(run), "--input", str(src), "--json")
    assert result.exit_code == 1 and f"{src}:2: the text is empty" in result.output
    src.write_text('{"input": "good"}\n{"input": "ok"\n')
    assert f"{src}:2: not valid JSON" in cli("predict", str(run), "--input", str(src)).output


def test_cli_usage_errors(trained, cli):
    run = trained("classification")
    assert cli("predict", str(run)).exit_code == 2
    result = cli("predict", str(run), "x", "--n-best", "2")
    assert result.exit_code == 2 and "n_best" in result.output


def test_cli_views_for_generation_tasks(trained, cli):
    lm_run, s2s_run, code_run = trained("lm"), trained("seq2seq"), trained("code-generation")
    want = zoo.load(lm_run).predict("The", max_new_tokens=5, seed=1)["text"]
    assert cli("predict", str(lm_run), "The", "--max-new-tokens", "5", "--seed", "1").output == f"The{want}\n"
    want = zoo.load(s2s_run).predict("2 3 7 1 9 4 4 0 2 8")["output"]
    assert cli("predict", str(s2s_run), "2 3 7 1 9 4 4 0 2 8").output == want + "\n"
    want = zoo.load(code_run).predict("add 1 to `x`")["code"]
    assert cli("predict", str(code_run), "add 1 to `x`").output == want + "\n"
