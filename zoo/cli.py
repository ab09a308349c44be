"""The ``zoo`` command line. The only place that turns ZooErrors into exit codes."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from pathlib import Path
from typing import Any

import click

from . import __version__, api
from .cli_predict import predict_cmd
from .cli_cache import cache_cmd, prepare_cmd
from .cli_info import info
from .cli_plugins import plugins_cmd, warn_about_filter
from .cli_types import FINITE_NONNEGATIVE
from .interop.commands import FORMATS, export_other, import_cmd
from .errors import ZooError, ZooUsageError
from .registry import KINDS
from .scaffold import new_plugin_cmd
from .serve.cli import serve_cmd

KIND_CHOICES = ("all", *KINDS)


# library errors name the parameters of zoo.train / zoo.export ...; on the command line they are flags
_PARAM_FLAGS = re.compile(r"(?<![\w.])(resume|nproc|out|dtype|device)=(?=\S)")
_PARAM_FLAG_BARE = re.compile(r"(?<![\w.])(out)=(?!\S)")


def as_flags(message: str) -> str:
    """A library message in flags: ``resume=RUN`` -> ``--resume RUN``, ``force=True`` -> ``--force``."""
    message = message.replace("force=True", "--force")
    message = _PARAM_FLAGS.sub(lambda m: f"--{m.group(1)} ", message)
    return _PARAM_FLAG_BARE.sub(lambda m: f"--{m.group(1)}", message)


class ZooGroup(click.Group):
    """Turns :class:`ZooError` into one-line errors: exit 2 for usage, 1 otherwise."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ZooUsageError as exc:  # a bad value, not a misuse of the command: no usage banner
            err = click.ClickException(as_flags(_with_filter_note(exc)))
            err.exit_code = exc.exit_code
            raise err from None
        except ZooError as exc:
            err = click.ClickException(as_flags(str(exc)))
            err.exit_code = exc.exit_code
            raise err from None
        except KeyboardInterrupt:
            click.echo("interrupted; files already written are intact (resume with 'zoo train --resume RUN')",
                       err=True)
            ctx.exit(130)


def _with_filter_note(exc: ZooUsageError) -> str:
    """An unknown name while ZOO_PLUGINS hides plugins: the filter is the likely cause, so name it."""
    from .errors import UnknownNameError

    note = api.plugin_state().filter_note if isinstance(exc, UnknownNameError) else ""
    return f"{exc} ({note})" if note else str(exc)


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


@click.command("zoo")
@click.version_option(__version__, prog_name="zoo")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def _root(verbose: int) -> None:
    """A plugin-based model zoo for PyTorch sequence models."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


@click.command("list")
@click.argument("pattern", default="*")
@click.option("--kind", type=click.Choice(KIND_CHOICES), default="all", show_default=True)
def list_cmd(pattern: str, kind: str) -> None:
    """List entries, models, tokenizers, datasets and tasks (fnmatch PATTERN)."""
    reg = api.get_registry()
    for k in KINDS if kind == "all" else (kind,):
        specs = reg.list(k, pattern)
        if not specs:
            continue
        click.echo(f"{k}s:" if k != "entry" else "entries:")
        width = max(len(s.id) for s in specs)
        for s in specs:
            click.echo(f"  {s.id:<{width}}  {s.summary}".rstrip())
    for c in reg.collisions:
        click.echo(f"warning: {c}; use the full id", err=True)
    failed = [i for i in api.plugin_state().plugins.values() if i.status == "failed"]
    if failed:
        click.echo(f"warning: {len(failed)} plugin(s) failed to load: {', '.join(i.name for i in failed)} "
                   "(see 'zoo plugins')", err=True)
    warn_about_filter()


def _overrides(sets: tuple[str, ...], config_file: str | None, **train: Any) -> dict[str, Any]:
    """--config, then --set, then the train.* settings that have flags of their own (None: not given)."""
    from . import config as _config

    base = _config.load_toml(Path(config_file)) if config_file else {}
    given = {k: v for k, v in train.items() if v is not None}
    return _config.merge(_config.merge(base, _config.parse_sets(sets)), {"train": given} if given else {})


@click.command()
@click.argument("entry", required=False)
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a config value, e.g. model.hidden=256.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="TOML file of overrides (applied before --set).")
@click.option("--device", help="auto, cpu, cuda or cuda:N (sets train.device).")
@click.option("--out", type=click.Path(file_okay=False), help="Run folder [default: runs/ENTRY].")
@click.option("--resume", type=click.Path(file_okay=False), help="Continue the interrupted run in this folder.")
@click.option("--force", is_flag=True, help="Replace a run already in --out.")
@click.option("--data-dir", type=click.Path(), help="Folder holding the datasets [default: $ZOO_DATA_DIR].")
@click.option("--nproc", type=int, default=1, show_default=True,
              help="Train data-parallel in N processes (torchrun; one per CPU core or GPU).")
@click.option("--no-cache", is_flag=True, help="Prepare the data afresh and keep nothing (train.cache=false).")
@click.pass_context
def train(ctx: click.Context, entry: str | None, sets: tuple[str, ...], config_file: str | None, device: str | None,
          out: str | None, resume: str | None, force: bool, data_dir: str | None, nproc: int, no_cache: bool) -> None:
    """Train ENTRY, evaluate it on its test split and write the run folder.

    With --nproc N (or under 'torchrun --nproc-per-node N -m zoo train ...') N processes
    train with DistributedDataParallel; train.batch_size stays the global batch.
    """
    from . import distributed

    if resume and (entry or out or force):
        raise click.UsageError("--resume RUN takes no ENTRY, --out or --force: the run folder says what to train")
    if not resume and not entry:
        raise click.UsageError("missing ENTRY (see 'zoo list'), or --resume RUN")
    distributed.require_procs(nproc)
    world = distributed.from_env()
    if nproc > 1 and world.size > 1:
        raise click.UsageError("--nproc inside torchrun: torchrun already started the processes")
    overrides = _overrides(sets, config_file, device=device or None, cache=False if no_cache else None)
    if nproc > 1:
        run_dir = api.check_train(entry, overrides, out=out, resume=resume, force=force, nproc=nproc)
        verbose = ctx.parent.params.get("verbose", 0) if ctx.parent else 0
        args = ["-v"] * verbose + ["train"] + ([entry] if entry else [])
        for flag, value in (("--config", config_file), ("--device", device), ("--out", out), ("--resume", resume),
                            ("--data-dir", data_dir)):
            if value:
                args += [flag, value]
        for item in sets:
            args += ["--set", item]
        args += [flag for flag, on in (("--force", force), ("--no-cache", no_cache)) if on]
        distributed.launch(nproc, args, run_dir, quiet=verbose == 0)
        return

    def on_epoch(rec: dict[str, Any]) -> None:
        shown = {k: v for k, v in rec.items() if k not in ("epoch",)}
        click.echo(f"epoch {rec['epoch']}: " + "  ".join(f"{k}={_fmt(v)}" for k, v in shown.items()))

    result = api.train(entry, overrides, out=out, resume=resume, force=force, data_dir=data_dir, on_epoch=on_epoch)
    if not world.main:  # rank 0 speaks for the run
        return
    t = result.metrics["train"]
    click.echo(f"trained {t['epochs']} epochs, {t['steps']} steps in {t['train_time']:.1f} s ({t['stopped']})")
    for split in ("val", "test"):
        if split in result.metrics:
            click.echo(f"{split}: " + "  ".join(f"{k}={_fmt(v)}" for k, v in result.metrics[split].items()))
    click.echo(f"model: {result.artifact}")


@click.command("eval")
@click.argument("file", type=click.Path())
@click.option("--split", help="Split to evaluate [default: test, or val when the dataset has no test split].")
@click.option("--device", default="auto", show_default=True)
@click.option("--data-dir", type=click.Path(), help="Folder holding the datasets [default: $ZOO_DATA_DIR].")
@click.option("--batch-size", type=click.IntRange(min=1), help="[default: the run's train.eval_batch_size]")
@click.option("--set", "sets", multiple=True, metavar="dataset.KEY=VALUE",
              help="Other data (dataset.test_file=other.csv) or another readout (task.decode=bio).")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@click.option("--out", type=click.Path(file_okay=False),
              help="Folder for outputs.SPLIT.jsonl and metrics.SPLIT.json, written when the task has per-example "
                   "outputs (e.g. generated code) [default: the model's folder].")
def eval_cmd(file: str, split: str | None, device: str, data_dir: str | None, batch_size: int | None,
             sets: tuple[str, ...], as_json: bool, out: str | None) -> None:
    """Evaluate a model FILE (or run folder) on a split of its dataset (or, with --set dataset.KEY=VALUE,
    on other files of the same kind)."""
    overrides = _overrides(sets, None)
    if set(overrides) - {"dataset", "task"}:
        raise click.UsageError("zoo eval --set takes dataset.KEY=VALUE or task.KEY=VALUE only (weights are fixed)")
    dataset = overrides.get("dataset")
    split = split or api.default_split(file, dataset=dataset, data_dir=data_dir)
    records: list[dict[str, Any]] = []
    metrics = api.evaluate(file, split, device=device, data_dir=data_dir, batch_size=batch_size, outputs=records,
                           dataset=dataset, task=overrides.get("task"))
    if records:
        folder = Path(out) if out else api.artifact_path(file).parent
        folder.mkdir(parents=True, exist_ok=True)
        api.write_outputs(folder / f"outputs.{split}.jsonl", records)
        api.write_outputs(folder / f"metrics.{split}.json", [metrics])
        click.echo(f"wrote {folder / f'outputs.{split}.jsonl'} ({len(records)} examples) and metrics.{split}.json",
                   err=True)
    if as_json:
        click.echo(json.dumps(metrics, indent=2, sort_keys=True))
    else:
        for k, v in metrics.items():
            click.echo(f"{split} {k}: {_fmt(v)}")
        if out:
            click.echo(f"wrote {out}")


@click.command()
@click.argument("src", type=click.Path())
@click.option("--out", required=True, type=click.Path(),
              help="The file (safetensors, onnx) or folder (hf) to write.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="safetensors", show_default=True,
              help="safetensors: a zoo artifact; hf: a Hugging Face GPT-2 folder (GPT models); onnx: an ONNX "
                   "graph with its tokenizer and labels beside it (classifiers, taggers, seq2seq encoders).")
@click.option("--dtype", type=click.Choice(["float32", "float16", "bfloat16"]), help="Cast floating weights.")
@click.option("--force", is_flag=True, help="Overwrite --out if it exists (never a run's own files).")
def export(src: str, out: str, fmt: str, dtype: str | None, force: bool) -> None:
    """Write a self-describing copy of a model FILE or run folder, optionally in half precision,
    or hand it to another ecosystem (--format hf / onnx)."""
    if fmt != "safetensors":
        if dtype:
            raise click.UsageError(f"--dtype applies to --format safetensors only, not {fmt}")
        click.echo(f"wrote {export_other(src, out, fmt, force=force)}")
        return
    path = api.export(src, out, dtype, force=force)
    click.echo(f"wrote {path} ({path.stat().st_size:,} bytes)")


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
    from .device import resolve_device

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


COMMANDS = (list_cmd, info, train, eval_cmd, export, import_cmd, generate, predict_cmd, serve_cmd, plugins_cmd,
            new_plugin_cmd, cache_cmd, prepare_cmd)


def build_cli() -> click.Group:
    """A fresh CLI group: the core commands, and those that plugins add through ``zoo_register_commands``."""
    group = ZooGroup(name="zoo", callback=_root.callback, params=list(_root.params), help=_root.help,
                     context_settings={"help_option_names": ["-h", "--help"]})
    for command in COMMANDS:
        group.add_command(command)
    loaded = api.plugin_state()
    for impl in loaded.pm.hook.zoo_register_commands.get_hookimpls():
        info = loaded.plugins.get(impl.plugin_name)
        if info is None or info.status != "ok":
            continue
        try:
            impl.function(cli=group)
        except Exception as exc:  # a plugin's bug must not take the CLI down
            info.status, info.error = "failed", f"zoo_register_commands raised {type(exc).__name__}: {exc}"
    return group


def main(argv: list[str] | None = None) -> None:
    try:
        group = build_cli()
    except ZooError as exc:  # e.g. an unreadable ZOO_REGISTRY
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # a rank started by torchrun: see parallel.run_rank
        from .parallel import run_rank

        run_rank(lambda: group.main(args=argv, prog_name="zoo"))
    group.main(args=argv, prog_name="zoo")
