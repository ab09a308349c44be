"""Sequence-to-sequence: the ``seq2seq`` task and the GRU encoder-decoder."""

from zoo import hookimpl


@hookimpl
def zoo_register_tasks(register):
    register("seq2seq", "zoo_seq2seq.task:Seq2SeqTask",
             summary="source text -> target text; cross-entropy, token accuracy, exact match, greedy decoding")


@hookimpl
def zoo_register_models(register):
    register("gru-seq2seq", "zoo_seq2seq.gru:GRUSeq2Seq",
             summary="GRU encoder-decoder with teacher forcing and optional attention")
