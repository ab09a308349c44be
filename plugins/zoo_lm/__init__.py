"""Language modelling: the decoder-only ``gpt`` model, the ``lm`` task, and the entries
``shakespeare-char-gpt``, ``gpt-lm`` and ``text-gpt`` (in ``entries.toml``, beside this file)."""

from importlib.resources import files

from zoo import hookimpl

# The plugins this one builds on: its entries name their datasets (plugin text) and tokenizers
# (plugin tokenizers) by short name, looked up here and there first.
ZOO_DEPENDS = ["text", "tokenizers"]


@hookimpl
def zoo_register_models(register):
    register("gpt", "zoo_lm.gpt:GPT",
             summary="GPT-style decoder-only Transformer: pre-norm, causal SDPA attention, tied head, KV cache")


@hookimpl
def zoo_register_tasks(register):
    register("lm", "zoo_lm.task:LMTask",
             summary="next-token prediction on contiguous blocks; loss, perplexity, bits per byte; text generation")


@hookimpl
def zoo_register_entries(register):
    register.from_toml(files(__name__) / "entries.toml")  # the entries of this plugin, beside this file
