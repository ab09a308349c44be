"""The models one server holds: a URL-safe name each, what ``zoo info FILE`` shows, the model card."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit
from typing import Any

from zoo.errors import ZooUsageError

# the header fields `zoo info FILE` prints, in its order
INFO_KEYS = ("entry", "model", "plugin", "plugin_version", "arch_version", "task", "dataset", "zoo_version",
             "created")
DETAIL_KEYS = ("metrics", "reference", "sizes", "config")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass
class ServedModel:
    name: str
    loaded: Any  # zoo.api.LoadedModel
    card: str | None = None  # the README.md beside the artifact (the run's model card)
    source: str = ""  # the path it was served from, as given (a file or a run folder)

    @property
    def generates(self) -> bool:
        """A language model: its task overrides ``Task.generate`` and streams text."""
        from zoo.sdk.task import Task

        return getattr(type(self.loaded.task), "generate", Task.generate) is not Task.generate

    @property
    def options(self) -> dict[str, str]:
        """The predict options of the model's task: name -> what it does."""
        return dict(getattr(self.loaded.task, "predict_options", {}))

    def predict(self, inputs: list[Any], options: dict[str, Any], batch_size: int = 64) -> list[dict[str, Any]]:
        """Records of ``inputs`` (:meth:`zoo.api.LoadedModel.predict`), ``batch_size`` per forward pass."""
        return self.loaded.predict(inputs, batch_size=batch_size, **options)

    def describe(self, show_paths: bool = False) -> dict[str, Any]:
        """The JSON that GET /api/models lists for this model; local paths only with ``show_paths``."""
        meta = self.loaded.metadata
        out: dict[str, Any] = {"name": self.name, "path": str(self.loaded.path) if show_paths else self.shown_path()}
        out.update({k: meta[k] for k in INFO_KEYS if k in meta})
        out.update({k: meta[k] for k in DETAIL_KEYS if k in meta})
        card = self.card
        if not show_paths:
            found: list[str] = []
            out = {k: (_hide_paths(v, found) if k == "config" else v) for k, v in out.items()}
            found.append(str(Path(self.loaded.path).resolve().parent) + os.sep)
            for path in sorted(found, key=len, reverse=True):  # longest first: a folder's files before it
                card = card.replace(path, "" if path.endswith(os.sep) else Path(path).name) if card else card
        out["parameters"] = sum(p.numel() for p in self.loaded.model.parameters())
        task = self.loaded.task
        out["predicts"] = bool(getattr(task, "supports_predict", False))
        out["generates"] = self.generates
        out["input"] = getattr(task, "predict_input", "")
        out["record"] = getattr(task, "predict_record", "")
        out["options"] = self.options
        out["card"] = card
        return out

    def shown_path(self) -> str:
        """The artifact's path relative to the folder of what was served (``run/model.safetensors``)."""
        path = Path(self.loaded.path).resolve()
        base = Path(self.source).resolve().parent if self.source else path.parent
        rel = os.path.relpath(path, base)
        return rel if not rel.startswith("..") else path.name


def _hide_paths(value: Any, found: list[str]) -> Any:
    """``value`` with every string that names a local path cut to its last part; the paths go to ``found``."""
    if isinstance(value, dict):
        return {k: _hide_paths(v, found) for k, v in value.items()}
    if isinstance(value, list):
        return [_hide_paths(v, found) for v in value]
    if isinstance(value, str) and (os.path.isabs(value) or value.startswith(("~", "./", "../"))):
        found.append(value)
        return Path(value).name
    return value


def split_spec(arg: str) -> tuple[str | None, str]:
    """``NAME=PATH`` names a model; a plain PATH (or one that exists with '=' in it) is named for its file."""
    name, sep, path = arg.partition("=")
    if sep and NAME.match(name) and not Path(arg).exists():
        return name, path
    return None, arg


def default_name(path: Path) -> str:
    """A run folder's name for its ``model.safetensors``; otherwise the file's stem; made URL-safe."""
    base = path.parent.name if path.name == "model.safetensors" and path.parent.name else path.stem
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", base).strip("-.") or "model"
    return cleaned if NAME.match(cleaned) else f"m-{cleaned}"


def load_models(args: Iterable[str], load: Callable[[str], Any]) -> dict[str, ServedModel]:
    """Load every ``[NAME=]PATH`` with ``load`` (``zoo.load``); later duplicates of a name get ``-2``, ``-3``."""
    served: dict[str, ServedModel] = {}
    for arg in args:
        name, path = split_spec(arg)
        loaded = load(path)
        if name is not None and name in served:
            raise ZooUsageError(f"two models are named '{name}'; give each NAME=PATH a different NAME")
        base = name or default_name(Path(urlsplit(path).path if "://" in path else loaded.path))
        name, k = base, 2
        while name in served:
            name, k = f"{base}-{k}", k + 1
        readme = Path(loaded.path).parent / "README.md"
        card = readme.read_text(encoding="utf-8", errors="replace") if readme.is_file() else None
        served[name] = ServedModel(name, loaded, card, path)
    if not served:
        raise ZooUsageError("no model to serve: give at least one model file or run folder")
    return served
