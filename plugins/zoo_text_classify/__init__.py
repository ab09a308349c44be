"""Text classification: LSTM / GRU classifiers, a word tokenizer, IMDB and your own CSV / JSONL files.

The ``classification`` task, the ``rnn-classifier`` model, the ``word`` and
``labels`` tokenizers, the ``imdb`` and ``text-classification`` datasets, and four entries
(``entries.toml``, beside this file).
Registration is by dotted path: nothing is read and torch is not imported here.
"""

from importlib.resources import files

from zoo import hookimpl


@hookimpl
def zoo_register_models(register):
    register("rnn-classifier", "zoo_text_classify.model:RNNClassifier",
             summary="LSTM or GRU over packed sequences, last/mean/max pooling, optional GloVe or gensim embeddings")


@hookimpl
def zoo_register_tokenizers(register):
    register("word", "zoo_text_classify.tokenizers:WordTokenizer",
             summary="regex words, lower-cased, HTML breaks removed; min_freq, max_size, optional stop words")
    register("labels", "zoo_text_classify.tokenizers:LabelTokenizer",
             summary="the class names seen in training, sorted; travels in the artifact")


@hookimpl
def zoo_register_datasets(register):
    register("imdb", "zoo_text_classify.datasets:IMDB",
             summary="IMDB movie reviews (Maas et al. 2011): 25,000 train / 25,000 test, pos or neg; val carved from train")
    register("text-classification", "zoo_text_classify.datasets:TextClassificationFiles",
             summary="your own CSV / TSV / JSONL files with a text and a label column")


@hookimpl
def zoo_register_tasks(register):
    register("classification", "zoo_text_classify.task:ClassificationTask",
             summary="one label per text; accuracy, per-class precision/recall/F1, confusion matrix, probabilities")


@hookimpl
def zoo_register_entries(register):
    register.from_toml(files(__name__) / "entries.toml")  # the entries of this plugin, beside this file
