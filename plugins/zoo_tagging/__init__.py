"""Sequence labelling: part-of-speech tags and chunks (CoNLL-2000, or a user's own CoNLL files).

The ``tagging`` task, the ``transformer-tagger`` model, the ``conll2000`` and
``conll`` datasets, the ``conll-words`` / ``conll-tags`` tokenizers, and four entries
(``entries.toml``, beside this file).
Registration is by dotted path: nothing is read and torch is not imported here.
:mod:`zoo_tagging.report` turns a trained artifact into a per-class table and a
confusion matrix.
"""

from importlib.resources import files

from zoo import hookimpl

# The plugins this one builds on: its entries name the char tokenizer (plugin tokenizers) by short name.
ZOO_DEPENDS = ["tokenizers"]


@hookimpl
def zoo_register_datasets(register):
    register("conll2000", "zoo_tagging.dataset:CoNLL2000",
             summary="CoNLL-2000 (WSJ): 8,936 train / 2,012 test sentences; label = POS or chunk (BIO) tags")
    register("conll", "zoo_tagging.dataset:CoNLLFiles",
             summary="your own CoNLL-format files (one token per line, columns, blank line between sentences)")


@hookimpl
def zoo_register_tokenizers(register):
    register("conll-words", "zoo_tagging.tokenizers:WordTokenizer",
             summary="one id per word seen in training (min_freq, optional lowercasing); others -> <unk>")
    register("conll-tags", "zoo_tagging.tokenizers:TagTokenizer",
             summary="label vocabulary: one id per tag seen in training, most frequent first")


@hookimpl
def zoo_register_tasks(register):
    register("tagging", "zoo_tagging.task:TaggingTask",
             summary="one label per token; accuracy over real tokens, per-class P/R/F1, span F1 for BIO tags")


@hookimpl
def zoo_register_models(register):
    register("transformer-tagger", "zoo_tagging.model:TransformerTagger",
             summary="encoder-only Transformer, learned positions, key-padding mask, optional char-CNN word features")


@hookimpl
def zoo_register_entries(register):
    register.from_toml(files(__name__) / "entries.toml")  # the entries of this plugin, beside this file
