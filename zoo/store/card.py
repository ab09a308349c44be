"""The model card: the README.md of a run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zoo import config as _config
from zoo.errors import ZooError
from zoo.registry.discovery import get_registry
from zoo.registry.resolve import Resolved


def zoo_version() -> str:
    from zoo._version import __version__

    return __version__


def reference(resolved: Resolved) -> dict[str, Any]:
    """The published result the run's entry declares (metric, value, source), or {}."""
    entry = resolved.entry
    if not entry:
        return {}
    try:
        return dict(get_registry().get("entry", entry).data.get("reference", {}))
    except ZooError:
        return {}


def model_card(resolved: Resolved, metrics: dict[str, Any], artifact: Path) -> str:
    ref = reference(resolved)
    lines = [f"# {resolved.entry or 'zoo run'}", ""]
    if resolved.entry:
        summary = get_registry().get("entry", resolved.entry).summary
        if summary:
            lines += [summary, ""]
    lines += ["| component | id |", "|---|---|"]
    for key, spec in resolved.specs.items():
        lines.append(f"| {key} | `{spec.id}` |")
    lines += ["", "## Results", "", "| split | metric | value |", "|---|---|---|"]
    for split in ("val", "test"):
        for k, v in metrics.get(split, {}).items():
            lines.append(f"| {split} | {k} | {v:.6g} |")
    t = metrics.get("train", {})
    lines += ["", f"Trained {t.get('epochs')} epochs / {t.get('steps')} steps in {t.get('train_time', 0):.1f} s "
              f"({t.get('stopped')}).", ""]
    if ref:
        lines += [f"Reference: {ref.get('metric')} = {ref.get('value')} ({ref.get('source', 'no source given')}).", ""]
        if ref.get("anchor"):
            lines += [f"Next anchor: {ref['anchor']}.", ""]
        if ref.get("benchmark"):
            lines += [f"Measured by `{ref['benchmark']}` (from a clone of zoo).", ""]
    lines += [f"Artifact: `{artifact.name}` (zoo {zoo_version()}). Load it with `zoo.load(\"{artifact.name}\")`,",
              f"evaluate it with `zoo eval {artifact.name}`.", "", "## Config", "", "```toml",
              _config.dumps_toml(resolved.data).rstrip(), "```", ""]
    return "\n".join(lines)
