"""The model card: the README.md of a run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zoo import config as _config
from zoo.registry.resolve import Resolved


def zoo_version() -> str:
    from zoo._version import __version__

    return __version__


def model_card(resolved: Resolved, metrics: dict[str, Any], artifact: Path, config_text: str | None = None) -> str:
    """The card of a run: its components, results, reference and config (``config_text``: the run's
    config.toml as written, so that the card and the file agree; rendered from ``resolved`` when not given)."""
    if config_text is None:
        config_text = _config.dumps_toml(resolved.data)
    ref = resolved.reference
    lines = [f"# {resolved.entry or 'zoo run'}", ""]
    if resolved.summary:
        lines += [resolved.summary, ""]
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
              config_text.rstrip(), "```", ""]
    return "\n".join(lines)
