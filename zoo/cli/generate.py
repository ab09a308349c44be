"""``zoo generate MODEL --prompt TEXT``: a language model continues a prompt, streaming as it goes."""

from __future__ import annotations

import click

from zoo import api
from zoo.cli.common import FINITE_NONNEGATIVE


@click.command()
@click.argument("file", type=click.Path())
@click.option("--prompt", default="", help="Text to continue.")
@click.option("--max-new-tokens", type=click.IntRange(min=0), default=200, show_default=True,
              help="May exceed the context: the window then slides (see the model's docs).")
@click.option("--temperature", type=FINITE_NONNEGATIVE, default=0.8, show_default=True, help="0 is greedy.")
@click.option("--top-k", type=click.IntRange(min=1), help="Sample among the K likeliest tokens.")
@click.option("--seed", type=int, help="Seed of the sampler, for repeatable output.")
@click.option("--device", default="auto", show_default=True)
@click.option("--no-cache", is_flag=True, help="Recompute the whole context for every token (slower).")
@click.option("--stop-at-eos", is_flag=True,
              help="End at the first <eos> (models trained with task.boundaries).")
def generate(file: str, prompt: str, max_new_tokens: int, temperature: float, top_k: int | None, seed: int | None,
             device: str, no_cache: bool, stop_at_eos: bool) -> None:
    """Continue PROMPT with a language model FILE, streaming the text as it is produced."""
    from zoo.runtime.device import resolve_device

    lm = api.load(file, device=str(resolve_device(device)))
    for tok in lm.tokenizers.values():
        unknown = tok.unknown_chars(prompt) if hasattr(tok, "unknown_chars") else []
        if unknown:
            click.echo(f"warning: the prompt has characters the tokenizer never saw, read as <unk>: "
                       f"{''.join(unknown)!r}", err=True)
    pieces = lm.task.generate(lm.model, prompt, max_new_tokens=max_new_tokens, temperature=temperature,
                              top_k=top_k, seed=seed, use_cache=not no_cache, stop_at_eos=stop_at_eos)
    click.echo(prompt, nl=False)
    for piece in pieces:
        click.echo(piece, nl=False)
    click.echo()
