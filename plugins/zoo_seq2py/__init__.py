"""English -> Python code generation (CoNaLa): the ``code-generation`` task, the
``transformer-seq2seq`` model, the ``conala`` and ``pairs`` datasets, and the
``intent-words`` / ``python-code`` tokenizers; the entries ``seq2py`` and ``seq2py-pairs``
(``entries.toml``, beside this file).

Registration is by dotted path: nothing is read and torch is not imported here.
"""

from importlib.resources import files

from zoo import hookimpl


@hookimpl
def zoo_register_datasets(register):
    register("conala", "zoo_seq2py.datasets:CoNaLa",
             summary="CoNaLa curated: 2,379 train / 500 test English intents with Python snippets (val carved from train)")
    register("pairs", "zoo_seq2py.datasets:Pairs",
             summary="your own source/target pairs: JSONL objects or CSV rows (dataset.train_file, src_field, tgt_field)")


@hookimpl
def zoo_register_tokenizers(register):
    register("intent-words", "zoo_seq2py.tokenizers:IntentTokenizer",
             summary="English words and punctuation, case kept; slot names var_N / str_N always in the vocabulary")
    register("python-code", "zoo_seq2py.tokenizers:CodeTokenizer",
             summary="Python lexemes with quotes, brackets, colons, commas, spaces and indentation kept (lossless)")


@hookimpl
def zoo_register_tasks(register):
    register("code-generation", "zoo_seq2py.task:CodeGenTask",
             summary="intent -> code with CoNaLa slots; loss, perplexity, CoNaLa BLEU-4, exact match; beam search")


@hookimpl
def zoo_register_models(register):
    register("transformer-seq2seq", "zoo_seq2py.model:TransformerSeq2Seq",
             summary="Transformer encoder-decoder (SDPA attention, learned positions) with a copy mechanism")


@hookimpl
def zoo_register_entries(register):
    register.from_toml(files(__name__) / "entries.toml")  # the entries of this plugin, beside this file
