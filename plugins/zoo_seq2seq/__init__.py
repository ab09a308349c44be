"""Sequence-to-sequence: the ``seq2seq`` task, the GRU encoder-decoder, and the ``subseq-gru`` entry
(reference system 3, in ``entries.toml`` beside this file)."""

from importlib.resources import files

from zoo import hookimpl

# The plugins this one builds on: its entry names the subsequence-copy dataset (plugin subseq) and
# the digit tokenizer (plugin tokenizers) by short name, looked up here and there first.
ZOO_DEPENDS = ["subseq", "tokenizers"]


@hookimpl
def zoo_register_tasks(register):
    register("seq2seq", "zoo_seq2seq.task:Seq2SeqTask",
             summary="source text -> target text; cross-entropy, token accuracy, exact match, greedy decoding")


@hookimpl
def zoo_register_models(register):
    register("gru-seq2seq", "zoo_seq2seq.gru:GRUSeq2Seq",
             summary="GRU encoder-decoder with teacher forcing and optional attention")


@hookimpl
def zoo_register_entries(register):
    register.from_toml(files(__name__) / "entries.toml")  # the entries of this plugin, beside this file
