"""A well-behaved plugin: a model (dotted path to a module that is never imported), a tokenizer, an entry."""

from zoo import hookimpl


@hookimpl
def zoo_register_models(register):
    register("good-model", "zoofake_good_heavy:GoodModel", summary="a fake model")


@hookimpl
def zoo_register_tokenizers(register):
    register("good-tok", "zoofake_good_heavy:GoodTokenizer")


@hookimpl
def zoo_register_entries(register):
    register("good-entry", {"model": "good-model", "task": "seq2seq", "dataset": "subseq", "summary": "fake"})
