"""Example third-party zoo plugin. Imports only zoo's public API."""

import click

from zoo import hookimpl

__version__ = "0.2.0"

# Its entry names the seq2seq task, the subseq dataset and the digits tokenizer by short name:
# declaring their plugins makes those names mean theirs whatever else is installed.
ZOO_DEPENDS = ["seq2seq", "subseq", "tokenizers"]


@hookimpl
def zoo_register_models(register):
    register("lstm-seq2seq", "zoo_lstm_seq2seq.model:LSTMSeq2Seq",
             summary="LSTM encoder-decoder (example third-party plugin)")


@hookimpl
def zoo_register_entries(register):
    register("subseq-lstm", {
        "summary": "subsequence copy with an LSTM encoder-decoder (example third-party plugin)",
        "model": "lstm-seq2seq",
        "task": "seq2seq",
        "dataset": "subseq",
        "tokenizer": "digits",
        "command": "zoo train subseq-lstm",
        "reference": {"metric": "exact_match", "value": 0.986, "source": "reference system 3, as subseq-gru"},
        "config": {
            "dataset": {"train_size": 50000},
            "train": {"epochs": 3, "batch_size": 128, "eval_batch_size": 1000,
                      "early_stopping": "val_exact_match"},
            "optim": {"name": "adam", "lr": 0.003},
        },
    })


@hookimpl
def zoo_register_commands(cli):
    @cli.command("lstm-hello")
    def lstm_hello():
        """Say which zoo names the example LSTM plugin provides."""
        click.echo("zoo-lstm-seq2seq 0.2.0 provides lstm:lstm-seq2seq and lstm:subseq-lstm")
