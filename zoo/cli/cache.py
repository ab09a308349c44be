"""``zoo cache ls / rm / prune`` and ``zoo prepare``: the prepared-data cache from the command line."""

from __future__ import annotations

import time
from typing import Any

import click

from zoo.errors import ConfigError


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"  # pragma: no cover - the loop returns


def _ago(t: float) -> str:
    s = max(time.time() - t, 0)
    for unit, n in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= n:
            return f"{s / n:.0f} {unit} ago"
    return "just now"


def parse_size(text: str) -> int:
    """``500M``, ``2G``, ``1.5GB``, ``100000`` (bytes) -> bytes."""
    t = text.strip().upper().removesuffix("B")
    factor = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}.get(t[-1:], 1)
    try:
        value = float(t[:-1] if factor > 1 else t)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a size; give e.g. 500M or 2G") from None
    if value < 0:
        raise click.BadParameter(f"{text!r}: a size is at least 0")
    return int(value * factor)


@click.group("cache")
def cache_cmd() -> None:
    """The prepared-data cache ($ZOO_CACHE_DIR/prepared, default ~/.cache/zoo/prepared): what tasks made of
    dataset splits (token streams, tokenizer states), reused by later runs with the same data and settings."""


@cache_cmd.command("ls")
def cache_ls() -> None:
    """List the entries: key, size, last use, and what each holds."""
    from zoo.sdk.prepared import PreparedCache

    cache = PreparedCache()
    entries = cache.entries()
    if not entries:
        click.echo(f"{cache.root}: no prepared data")
        return
    total = 0
    click.echo(f"{'KEY':<12}  {'SIZE':>9}  {'LAST USE':<12}  WHAT")
    for e in entries:
        size, label = e.size, e.manifest.get("label", {})
        total += size
        what = " ".join(str(label.get(k, "")) for k in ("entry", "split")).strip() or "(incomplete or damaged)"
        used = _ago(e.last_use) if e.manifest else "-"
        click.echo(f"{e.key[:12]:<12}  {_size(size):>9}  {used:<12}  {what}  [{label.get('dataset', '')}]")
    click.echo(f"{len(entries)} entries, {_size(total)} in {cache.root}")


@cache_cmd.command("rm")
@click.argument("keys", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Remove every entry.")
def cache_rm(keys: tuple[str, ...], everything: bool) -> None:
    """Remove the entries whose keys start with KEYS (as 'zoo cache ls' shows them), or --all."""
    from zoo.sdk.prepared import PreparedCache

    if not keys and not everything:
        raise click.UsageError("name the entries to remove (KEY prefixes from 'zoo cache ls'), or --all")
    cache = PreparedCache()
    entries = cache.entries()
    chosen = entries if everything else [e for e in entries if any(e.key.startswith(k) for k in keys)]
    unknown = [k for k in keys if not any(e.key.startswith(k) for e in entries)]
    if unknown:
        raise ConfigError(f"no prepared-data entry with a key starting {unknown[0]!r}; see 'zoo cache ls'")
    _remove(cache, chosen)


def _remove(cache: Any, entries: list[Any]) -> None:
    freed = 0
    for e in entries:
        size = e.size
        if cache.remove(e):
            freed += size
            click.echo(f"removed {e.key[:12]} ({_size(size)})")
        else:
            click.echo(f"kept {e.key[:12]}: a process is preparing it right now", err=True)
    click.echo(f"freed {_size(freed)}")


@cache_cmd.command("prune")
@click.option("--older-than", type=click.FloatRange(min=0), default=30.0, show_default=True, metavar="DAYS",
              help="Remove entries not used for this many days.")
@click.option("--max-size", metavar="SIZE", help="Then remove the least recently used until the cache holds at "
              "most SIZE (e.g. 20G).")
def cache_prune(older_than: float, max_size: str | None) -> None:
    """Remove entries unused for --older-than days, the least recently used beyond --max-size, and what
    killed or damaged preparations left behind."""
    import shutil

    from zoo.sdk.prepared import PreparedCache

    cache = PreparedCache()
    for tmp in cache.stale_temporaries():
        shutil.rmtree(tmp, ignore_errors=True)
        click.echo(f"removed {tmp.name} (left by a preparation that did not finish)")
    entries = cache.entries()  # newest use first
    cutoff = time.time() - older_than * 86400
    chosen = [e for e in entries if not e.manifest or e.last_use < cutoff]
    if max_size is not None:
        limit, kept = parse_size(max_size), 0
        for e in entries:
            if e in chosen:
                continue
            if kept + e.size > limit:
                chosen.append(e)
            else:
                kept += e.size
    _remove(cache, chosen)


@click.command("prepare")
@click.argument("entry")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a config value, as in zoo train.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="TOML file of overrides.")
@click.option("--data-dir", type=click.Path(), help="Folder holding the datasets [default: $ZOO_DATA_DIR].")
def prepare_cmd(entry: str, sets: tuple[str, ...], config_file: str | None, data_dir: str | None) -> None:
    """Prepare ENTRY's data ahead of training: fit its tokenizers and encode every split into the cache,
    so that 'zoo train ENTRY' with the same settings (here or on machines sharing the cache) starts at once."""
    from zoo import config as _config
    from zoo.build.prepare import prepare_entry

    overrides = _config.read_overrides(sets, config_file)
    for split, entry_ in prepare_entry(entry, overrides, data_dir).items():
        label = ", ".join(f"{k}={v:,}" for k, v in entry_.meta.items() if isinstance(v, int))
        click.echo(f"{split}: {entry_.key[:12]} ({_size(entry_.size)}{', ' + label if label else ''})")
