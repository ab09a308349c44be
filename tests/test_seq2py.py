"""The seq2py plugin: tokenizers, CoNaLa slots, BLEU, datasets' bad input, embeddings, decoding, CLI."""

from __future__ import annotations

import json
import math

import pytest
import torch

import zoo
from zoo_seq2py import bleu
from zoo_seq2py.datasets import CoNaLa, CoNaLaConfig, Pairs, PairsConfig, conala_examples
from zoo_seq2py.model import TransformerSeq2Seq, TransformerSeq2SeqConfig
from zoo_seq2py.slots import restore, slot_code, slot_intent
from zoo_seq2py.tokenizers import CodeTokenizer, IntentTokenizer



@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models: one thread is faster than two contending on a shared CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


CODE = "def f(a, b):\n    if a:\n        return {'k': [a, b]}\n\treturn \"x\"  # done\n"


# --- tokenizers ------------------------------------------------------------------------------------

def test_code_tokenizer_keeps_whitespace_indentation_quotes_and_punctuation():
    tok = CodeTokenizer()
    parts = tok.split(CODE)
    assert tok.join(parts) == CODE
    for piece in ("\n    ", "\n        ", "\n\t", " ", "'", '"', ":", ",", "(", ")", "[", "]", "{", "}", "#"):
        assert piece in parts, piece
    assert tok.split("a**=2 // b != c") == ["a", "**=", "2", " ", "//", " ", "b", " ", "!=", " ", "c"]


def test_code_tokenizer_round_trip_through_ids_and_slot_names_in_vocab():
    tok = CodeTokenizer()
    tok.fit([CODE, "x = 1"])
    assert tok.decode(tok.encode(CODE)) == CODE
    assert tok.stoi["var_9"] >= 4 and tok.stoi["str_0"] >= 4  # slots are never <unk>
    assert tok.encode("unseen_name") == [tok.unk_id]


def test_intent_tokenizer_splits_words_and_punctuation_keeping_case():
    tok = IntentTokenizer()
    assert tok.split("sort list var_0 by 'Key', 2x") == ["sort", "list", "var_0", "by", "'", "Key", "'", ",", "2", "x"]


# --- slots ----------------------------------------------------------------------------------------

def test_slots_replace_quoted_values_in_intent_and_code_and_restore_them():
    intent = "replace 'foo bar' with `y` in string `s`, twice `s`"
    text, slots, code_like = slot_intent(intent)
    assert text == "replace str_0 with var_0 in string var_1 , twice var_1"
    assert slots == {"str_0": "foo bar", "var_0": "y", "var_1": "s"}
    code = "s.replace('foo bar', y) + ss + 'foo bar x'"
    slotted = slot_code(code, slots, code_like)
    # whole names only for var slots, whole string literals only for quoted str slots
    assert slotted == "var_1.replace('str_0', var_0) + ss + 'foo bar x'"
    assert restore(slotted, slots) == code


def test_backquoted_values_are_replaced_bare_in_code_and_restored_even_when_glued():
    text, slots, code_like = slot_intent("zip two lists `[1, 2]` and `[3, 4]`")
    assert text == "zip two lists str_0 and str_1"
    assert slot_code("zip([1, 2], [3, 4])", slots, code_like) == "zip(str_0, str_1)"
    assert restore("f(str_0str_1)", slots) == "f([1, 2][3, 4])"


def test_slot_round_trip_on_every_conala_training_pair(data_dir_or_skip):
    records = json.loads((data_dir_or_skip / "conala" / "conala-train.json").read_text())
    failures = []
    for r in records:
        _, slots, code_like = slot_intent(r["rewritten_intent"] or r["intent"])
        if restore(slot_code(r["snippet"], slots, code_like), slots) != r["snippet"]:
            failures.append(r["snippet"])
    assert not failures, failures[:3]


# --- BLEU -----------------------------------------------------------------------------------------

def test_bleu_tokenizer_follows_conala():
    assert bleu.tokenize_for_bleu("df['myCol'].apply(x)") == ["df", "[", "`", "my", "Col", "`", "]", ".", "apply",
                                                              "(", "x", ")"]


def test_bleu_hand_computed_cases():
    assert bleu.corpus_bleu(["a b c d e"], ["a b c d e"]) == pytest.approx(1.0)
    # hypothesis a b c d x vs reference a b c d e: precisions 4/5, 3/4, 2/3, 1/2, same length
    expected = (4 / 5 * 3 / 4 * 2 / 3 * 1 / 2) ** 0.25
    assert bleu.corpus_bleu(["a b c d x"], ["a b c d e"]) == pytest.approx(expected)
    # shorter hypothesis: a b c d (4 tokens) vs 5: precisions 1, BP = exp(1 - 5/4)
    assert bleu.corpus_bleu(["a b c d"], ["a b c d e"]) == pytest.approx(math.exp(1 - 5 / 4))
    # no 4-gram at all: 0 without smoothing; smoothed: ((3+1)/(3+1) * (2+1)/(2+1) * (1+1)/(1+1) * 1/1) = 1, BP
    assert bleu.corpus_bleu(["a b c"], ["a b c"]) == 0.0
    assert bleu.corpus_bleu(["a b c"], ["a b c"], smooth=True) == pytest.approx(1.0)
    # clipping: "a a a a a" vs "a b": unigram 1/5 matches
    stats = bleu.ngram_stats(list("aaaaa"), list("ab"))
    assert stats["match_1"] == 1 and stats["total_1"] == 5 and stats["total_4"] == 2


def test_bleu_is_corpus_level_not_an_average():
    hyps, refs = ["a b c d e", "x y"], ["a b c d e", "p q"]
    # corpus sums: unigrams 5/7, bigrams 4/5, trigrams 3/3, 4-grams 2/2 ("x y" has no 3- or 4-grams);
    # averaging sentence scores would give (1 + 0) / 2 instead
    expected = (5 / 7 * 4 / 5 * 3 / 3 * 2 / 2) ** 0.25
    assert bleu.corpus_bleu(hyps, refs) == pytest.approx(expected)


# --- datasets: bad input --------------------------------------------------------------------------

def test_malformed_json_names_file_line_and_column(tmp_path):
    path = tmp_path / "conala-train.json"
    path.write_text('[\n  {"intent": "x", "snippet": "y"},\n  {"intent": "x" "snippet": "y"}\n]')
    with pytest.raises(zoo.DataError, match=r"conala-train.json, line 3, column 18: malformed JSON"):
        conala_examples(path.read_text(), path)


def test_record_without_snippet_and_empty_intent_are_named(tmp_path):
    text = '[\n  {"intent": "a", "snippet": "b"},\n  {"intent": "c"}\n]'
    with pytest.raises(zoo.DataError, match=r"f.json, record 1 \(line 3\): no 'snippet'"):
        conala_examples(text, "f.json")
    text = '[{"intent": " ", "rewritten_intent": null, "snippet": "b"}]'
    with pytest.raises(zoo.DataError, match=r"record 0 \(line 1\): empty intent"):
        conala_examples(text, "f.json")


def test_rewritten_intent_falls_back_to_intent_and_both_intents_augments():
    text = json.dumps([{"intent": "t1", "rewritten_intent": None, "snippet": "a", "question_id": 1},
                       {"intent": "t2", "rewritten_intent": "r2", "snippet": "b", "question_id": 2}])
    assert [e["src"] for e in conala_examples(text, "f")] == ["t1", "r2"]
    assert [e["src"] for e in conala_examples(text, "f", both_intents=True)] == ["t1", "r2", "t2"]


def test_pairs_jsonl_and_csv_bad_lines(tmp_path):
    good = tmp_path / "p.jsonl"
    good.write_text("\n".join(json.dumps({"src": f"s{i}", "tgt": f"t{i}"}) for i in range(20)) + "\n")
    ds = Pairs(PairsConfig(train_file=str(good)))
    sizes = [len(ds.load(s)) for s in ("train", "val", "test")]
    assert sum(sizes) == 20 and min(sizes) >= 1
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"src": "a", "tgt": "b"}\n{"src": "a", "tgt": \n')
    with pytest.raises(zoo.DataError, match=r"bad.jsonl, line 2, column \d+: malformed JSON"):
        Pairs(PairsConfig(train_file=str(bad))).load("train")
    csv = tmp_path / "p.csv"
    csv.write_text("src,tgt\nadd one,x + 1\n,y\n")
    with pytest.raises(zoo.DataError, match=r"p.csv, line 3: empty 'src'"):
        Pairs(PairsConfig(train_file=str(csv))).load("train")
    missing = tmp_path / "m.jsonl"
    missing.write_text('{"src": "a"}\n')
    with pytest.raises(zoo.DataError, match=r"m.jsonl, line 1: no 'tgt'"):
        Pairs(PairsConfig(train_file=str(missing))).load("train")


def test_conala_splits_counts_and_validation_carve(data_dir_or_skip):
    ds = CoNaLa(data_dir=data_dir_or_skip)
    train, val, test = ds.load("train"), ds.load("val"), ds.load("test")
    assert len(train) + len(val) == 2379 and len(test) == 500 and 200 <= len(val) < 230
    assert not {e["question_id"] for e in train} & {e["question_id"] for e in val}
    assert [e["src"] for e in CoNaLa(data_dir=data_dir_or_skip).load("val")] == [e["src"] for e in val]
    # both_intents adds titles to the train split only: validation holds the same 200-odd records
    both = CoNaLa(CoNaLaConfig(both_intents=True), data_dir=data_dir_or_skip)
    assert both.load("val") == val
    train_both = both.load("train")
    assert [e for e in train_both if not e.get("augmented")] == train
    assert len(train_both) > len(train) and all(e["question_id"] not in {v["question_id"] for v in val}
                                                for e in train_both)


# --- model ----------------------------------------------------------------------------------------

def _model(copy: bool = True) -> TransformerSeq2Seq:
    torch.manual_seed(0)
    cfg = TransformerSeq2SeqConfig(d_model=32, n_head=4, d_ff=64, enc_layers=1, dec_layers=2, dropout=0.0, copy=copy)
    return TransformerSeq2Seq(cfg, src_vocab=30, tgt_vocab=40, pad_id=0).eval()


@pytest.mark.parametrize("copy", [True, False])
def test_beam_one_equals_greedy_and_cache_matches_full_forward(copy):
    model = _model(copy)
    src = torch.tensor([[5, 6, 7, 8], [9, 10, 0, 0]])
    ext = torch.tensor([[12, 40, 14, 41], [15, 40, 0, 0]])  # 40, 41: source words outside the target vocab
    greedy = model.greedy(src, ext, 12, 2, 3)
    assert model.beam_search(src, ext, 12, 2, 3, beam=1) == greedy
    # the cached step-by-step decoder gives the teacher-forced log-probabilities
    seq = torch.tensor([[2] + [min(i, 39) for i in greedy[0]][:5]])
    full = model(src[:1], ext[:1], seq)[0]
    state = model._start(src[:1])
    for t in range(seq.size(1)):
        step = model._step(state, seq[:, t], ext[:1])[0]
        assert torch.allclose(step, full[t], atol=1e-4)
    assert full.shape[-1] == 40 + 4


def test_copy_distribution_sums_to_one_and_padding_does_not_change_outputs():
    model = _model(True)
    src = torch.tensor([[5, 6, 7]])
    ext = torch.tensor([[12, 40, 12]])
    tgt = torch.tensor([[2, 12, 40]])
    logp = model(src, ext, tgt)
    assert torch.allclose(logp.exp().sum(-1), torch.ones(1, 3), atol=1e-4)
    padded = model(torch.tensor([[5, 6, 7, 0, 0]]), torch.tensor([[12, 40, 12, 0, 0]]), torch.tensor([[2, 12, 40, 0]]))
    assert torch.allclose(padded[0, :3, :43].exp(), logp[0].exp(), atol=1e-5)


def test_beam_search_finds_a_hypothesis_at_least_as_likely_as_greedy():
    model = _model(True)
    src = torch.tensor([[5, 6, 7, 8]])
    ext = torch.tensor([[12, 40, 14, 41]])

    @torch.no_grad()
    def score(ids):
        seq = torch.tensor([[2, *[min(i, 39) for i in ids]]])
        logp = model(src, ext, seq)[0]
        target = [*ids, 3]
        return float(sum(logp[t, target[t]] for t in range(len(target)))) / len(target)

    g = model.greedy(src, ext, 10, 2, 3)[0]
    b = model.beam_search(src, ext, 10, 2, 3, beam=4)[0]
    assert score(b) >= score(g) - 1e-5


def test_beam_search_prefers_an_ended_hypothesis_to_a_likely_loop_cut_off_at_max_len():
    # a stub decoder over 6 ids (bos 2, eos 3): after bos, A (4) p=0.5, B (5) p=0.4; A repeats with p=0.95;
    # B ends with p=0.9. Length-normalised, the loop "A A A ..." cut off at max_len scores best of all.
    model = _model(True)
    A, B, EOS = 4, 5, 3
    table = torch.full((6, 6), 1e-6)
    table[2, A], table[2, B], table[2, EOS] = 0.5, 0.4, 0.1
    table[A, A], table[A, EOS] = 0.95, 0.05
    table[B, EOS], table[B, A] = 0.9, 0.1
    logp = (table / table.sum(-1, keepdim=True)).log()
    model._start = lambda src: {}
    model._select = lambda state, index, memory=True: None
    model._step = lambda state, ids, ext: logp[ids]
    src = torch.tensor([[5, 6]])
    assert model.beam_search(src, src, 10, 2, EOS, beam=2) == [[B]]
    table[B, EOS] = table[2, EOS] = 0.0  # nothing can end: the best cut-off hypothesis is what is left
    logp = (table.clamp_min(1e-9) / table.sum(-1, keepdim=True)).log()
    model._step = lambda state, ids, ext: logp[ids]
    assert model.beam_search(src, src, 4, 2, EOS, beam=2)[0][0] == A


# --- embeddings -----------------------------------------------------------------------------------

def _pairs_file(tmp_path):
    path = tmp_path / "pairs.jsonl"
    rows = [{"src": f"add {i} to `x`", "tgt": f"x + {i}"} for i in range(12)]
    rows += [{"src": f"print 'w{i}'", "tgt": f"print('w{i}')"} for i in range(12)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


TINY = {"model": {"d_model": 16, "n_head": 2, "d_ff": 32, "enc_layers": 1, "dec_layers": 1},
        "task": {"beam": 2, "max_decode_len": 10, "vectors_epochs": 1},
        "train": {"epochs": 1, "batch_size": 8, "threads": 1, "progress": False, "freeze": {}}}


def test_vectors_of_another_size_fail_clearly_or_are_projected(tmp_path):
    glove = tmp_path / "tiny.glove.txt"
    glove.write_text("add 0.1 0.2 0.3\nprint 0.3 0.2 0.1\nx 0.5 0.5 0.5\n")
    sets = zoo.config.merge(TINY, {"dataset": {"train_file": str(_pairs_file(tmp_path))},
                                   "task": {"vectors": str(glove)}})
    with pytest.raises(zoo.ConfigError, match=r"tiny.glove.txt has 3-dimensional vectors but the model's "
                                              r"embeddings have 16 \(model.d_model\)"):
        zoo.train("seq2py-pairs", sets, out=tmp_path / "run")
    assert not (tmp_path / "run").exists()  # nothing was written
    sets = zoo.config.merge(sets, {"task": {"vectors_project": True}})
    zoo.train("seq2py-pairs", sets, out=tmp_path / "run")
    lm = zoo.load(tmp_path / "run")
    assert lm.model.src_embed.weight.shape[1] == 16


def test_gensim_vectors_are_saved_in_the_run_and_initialise_frozen_embeddings(tmp_path):
    sets = zoo.config.merge(TINY, {"dataset": {"train_file": str(_pairs_file(tmp_path))},
                                   "train": {"freeze": {"embeddings": 1}}})
    zoo.train("seq2py-pairs", sets, out=tmp_path / "run")
    vectors = zoo.load_vectors(tmp_path / "run" / "vectors.txt")
    lm = zoo.load(tmp_path / "run")
    tok = lm.tokenizers["src"]
    row = vectors.words.index("add")
    # frozen for the only epoch: the embedding is still exactly the gensim vector
    assert torch.allclose(lm.model.src_embed.weight[tok.stoi["add"]], vectors.matrix[row], atol=1e-5)


# --- end to end through the CLI -------------------------------------------------------------------

def test_cli_train_and_eval_write_generated_code(tmp_path, cli):
    pairs = _pairs_file(tmp_path)
    run = tmp_path / "run"
    sets = ["model.d_model=16", "model.n_head=2", "model.d_ff=32", "model.enc_layers=1", "model.dec_layers=1",
            "task.beam=2", "task.max_decode_len=10", "task.vectors_epochs=1", "train.epochs=2", "train.batch_size=8",
            "train.threads=1", "train.eval_every=1", "train.freeze.embeddings=1", f"dataset.train_file={pairs}"]
    args = ["train", "seq2py-pairs", "--out", str(run)]
    for s in sets:
        args += ["--set", s]
    result = cli(*args)
    assert result.exit_code == 0, result.output
    assert "test: loss=" in result.output and "bleu=" in result.output
    result = cli("eval", str(run), "--json", "--out", str(tmp_path / "ev"))
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert set(metrics) >= {"loss", "perplexity", "bleu", "exact_match"}
    lines = (tmp_path / "ev" / "outputs.test.jsonl").read_text().splitlines()
    test_examples = Pairs(PairsConfig(train_file=str(pairs))).load("test")
    assert [json.loads(x)["intent"] for x in lines] == [e["src"] for e in test_examples]
    assert all("generated" in json.loads(x) for x in lines)
    assert json.loads((tmp_path / "ev" / "metrics.test.json").read_text()) == metrics
    # a malformed user file is a one-line error, exit 1, no traceback
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"src": "a", "tgt": "b"}\n{oops\n')
    result = cli("train", "seq2py-pairs", "--out", str(tmp_path / "r2"), "--set", f"dataset.train_file={bad}")
    assert result.exit_code == 1 and "bad.jsonl, line 2, column 2: malformed JSON" in result.output
    assert "Traceback" not in result.output


def test_pairs_jsonl_lines_end_at_newline_only(tmp_path):
    # U+0085 and U+2028 are text inside a JSON string, not line ends (str.splitlines would cut there)
    src = ["add one\u0085now", "sum\u2028all", *[f"s{i}" for i in range(10)]]
    f = tmp_path / "odd.jsonl"
    f.write_text("\n".join(json.dumps({"src": s, "tgt": "x + 1"}, ensure_ascii=False) for s in src) + "\n",
                 encoding="utf-8")
    ds = Pairs(PairsConfig(train_file=str(f)))
    assert sorted(e["src"] for s in ("train", "val", "test") for e in ds.load(s)) == sorted(src)


# --- reranking with a code-to-intent model --------------------------------------------------------

def _forward_and_reverse(tmp_path):
    """A tiny intent-to-code run and a tiny code-to-intent run on the same pairs."""
    pairs = _pairs_file(tmp_path)
    base = zoo.config.merge(TINY, {"dataset": {"train_file": str(pairs)}, "task": {"beam": 3, "vectors": "none"},
                                   "train": {"epochs": 3}})
    zoo.train("seq2py-pairs", base, out=tmp_path / "fwd")
    reverse = zoo.config.merge(base, {"task": {"direction": "code-to-intent", "beam": 1},
                                      "tokenizer": {"src": {"name": "python-code"}, "tgt": {"name": "intent-words"}}})
    zoo.train("seq2py-pairs", reverse, out=tmp_path / "rev")
    return tmp_path / "fwd", tmp_path / "rev"


def test_reranker_scores_every_hypothesis_by_how_well_it_explains_the_intent(tmp_path, cli):
    fwd, rev = _forward_and_reverse(tmp_path)
    intents = ["add 3 to `y`", "print 'w5'", "add 7 to `x`"]
    rev_lm = zoo.load(rev)
    # the reverse model reads code and writes an intent; its scores are the sums of its own loss, negated
    assert set(rev_lm.predict(["x + 1"])[0]) == {"intent"}
    examples = [{"src": "add 3 to `y`", "tgt": "y + 3"}, {"src": "print 'w5'", "tgt": "print('w5')"}]
    scores = rev_lm.task.sequence_logprobs(rev_lm.model, examples)
    batch = next(rev_lm.task.batches(rev_lm.task.encode(examples), 8, shuffle=False, seed=0))
    with torch.no_grad():
        nll, mask = rev_lm.task._nll(rev_lm.model, batch, 0.0, "sum")
    assert sum(s for s, _ in scores) == pytest.approx(-float(nll), rel=1e-5)
    assert [n for _, n in scores] == mask.sum(1).tolist()

    plain = zoo.load(fwd).predict(intents, n_best=3)
    weight0 = zoo.load(fwd, task={"reranker": str(rev), "rerank_weight": 0.0}).predict(intents, n_best=3)
    assert weight0 == plain  # weight 0: the beam's own order and scores
    heavy = zoo.load(fwd, task={"reranker": str(rev), "rerank_weight": 1000.0}).predict(intents, n_best=3)
    for intent, p, h in zip(intents, plain, heavy):
        assert sorted(c["code"] for c in p["candidates"]) == sorted(c["code"] for c in h["candidates"])
        beam = {c["code"]: c["score"] for c in p["candidates"]}
        recon = [s / n for s, n in rev_lm.task.sequence_logprobs(
            rev_lm.model, [{"src": intent, "tgt": c["code"]} for c in h["candidates"]])]
        # a heavy weight: the order is the reconstruction model's, and each score is the sum as documented
        assert recon == sorted(recon, reverse=True)
        for c, r in zip(h["candidates"], recon):
            assert c["score"] == pytest.approx(beam[c["code"]] + 1000.0 * r, abs=1e-3)
        assert h["code"] == h["candidates"][0]["code"]

    # zoo predict --set task.KEY=VALUE reads the same way as zoo.load(..., task=...)
    result = cli("predict", str(fwd), *intents, "--json", "--n-best", "3", "--set", f"task.reranker={rev}",
                 "--set", "task.rerank_weight=1000")
    assert result.exit_code == 0, result.output
    assert [json.loads(line) for line in result.stdout.splitlines()] == [{"input": i, **h} for i, h in zip(intents, heavy)]
    result = cli("predict", str(fwd), "x", "--set", "dataset.limit=3")
    assert result.exit_code == 2 and "--set takes task.KEY=VALUE only" in result.output

    # zoo eval reads with the reranker; a reranker of the wrong direction is a one-line error
    result = cli("eval", str(fwd), "--json", "--set", f"task.reranker={rev}")
    assert result.exit_code == 0, result.output
    assert 0.0 <= json.loads(result.stdout)["bleu"] <= 1.0
    result = cli("eval", str(fwd), "--set", f"task.reranker={fwd}")
    assert result.exit_code in (1, 2) and "Traceback" not in result.output
    assert "task.reranker:" in result.output and "is not a code-to-intent model" in result.output
