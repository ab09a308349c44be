"""What a MODEL argument means when it is not a local file: a URL, an entry's published weights, a packaged model.

:func:`zoo.inference.load.find_artifact` asks here, so ``zoo.load``, ``zoo eval``, ``predict``, ``serve``,
``generate``, ``info`` and ``export`` all take the same forms.
"""

from __future__ import annotations

import importlib.metadata as md
import json
from pathlib import Path
from typing import Any

from zoo.errors import ArtifactError, ZooError
from zoo.store.fetch import fetch

GROUP = "zoo.models"  # entry-point group of packaged models: NAME = "module" holding model.safetensors
MANIFEST = "zoo_package.json"


def check_artifact(path: Path) -> None:
    """Raise unless ``path`` is a readable zoo artifact (its header and tensor offsets, not its tensors)."""
    from zoo.store.artifact import read_metadata

    read_metadata(path)


def fetch_artifact(url: str, sha256: str | None = None) -> Path:
    """The cached, verified local copy of the model at ``url`` (``URL#sha256=HEX`` pins it)."""
    return fetch(url, sha256, check=check_artifact)


def entry_weights(name: str) -> Path:
    """The published weights of entry ``name`` (its ``weights`` table), fetched and verified."""
    from zoo.registry.discovery import get_registry

    spec = get_registry().get("entry", name)
    weights = spec.data.get("weights")
    if not weights:
        raise ArtifactError(f"{name}: entry {spec.id} names no published weights; train it (zoo train "
                            f"{spec.name}) and load the run, or give a URL")
    return fetch_artifact(weights["url"], weights["sha256"])


def has_weights(name: str) -> bool:
    from zoo.registry.discovery import get_registry

    try:
        return bool(get_registry().get("entry", name).data.get("weights"))
    except ZooError:
        return False


def _normal(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def packaged(name: str) -> Path | None:
    """The artifact of the installed packaged model ``name`` (entry point group ``zoo.models``), or None.

    A model packaged with ``zoo package`` records the plugin distribution that built it; when that
    distribution is missing the error names the package to install.
    """
    found = [ep for ep in md.entry_points(group=GROUP) if _normal(ep.name) == _normal(name)]
    if not found:
        return None
    ep = found[0]
    from importlib.resources import files

    try:
        folder = files(ep.value)
    except ImportError as exc:
        raise ArtifactError(f"{name}: packaged model's module {ep.value} cannot be imported ({exc}); reinstall "
                            f"its wheel") from None
    manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    _require(name, manifest)
    path = Path(str(folder / "model.safetensors"))
    if not path.is_file():
        raise ArtifactError(f"{name}: the packaged model has no model.safetensors in {path.parent}; reinstall it")
    return path


def _require(name: str, manifest: dict[str, Any]) -> None:
    """The plugin distribution the model was built with must be installed."""
    dist, version = manifest.get("distribution"), manifest.get("distribution_version")
    if not dist:
        return
    try:
        installed = md.version(dist)
    except md.PackageNotFoundError:
        raise ArtifactError(f"{name}: this model needs plugin {manifest.get('plugin')} from package {dist} "
                            f"{version}, which is not installed; pip install '{dist}=={version}'") from None
    if version and installed != version:
        import logging

        logging.getLogger(__name__).warning("%s: packaged with %s %s, %s is installed", name, dist, version,
                                            installed)


def packaged_names() -> list[str]:
    """The names of the installed packaged models."""
    return sorted({ep.name for ep in md.entry_points(group=GROUP)})
