"""Language modelling: the decoder-only ``gpt`` model and the ``lm`` task."""

from zoo import hookimpl


@hookimpl
def zoo_register_models(register):
    register("gpt", "zoo_lm.gpt:GPT",
             summary="GPT-style decoder-only Transformer: pre-norm, causal SDPA attention, tied head, KV cache")


@hookimpl
def zoo_register_tasks(register):
    register("lm", "zoo_lm.task:LMTask",
             summary="next-token prediction on contiguous blocks; loss, perplexity, bits per byte; text generation")
