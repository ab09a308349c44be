"""Why a plugin failed, and where: the hook, the exception, the file:line of the failing frame, the traceback.

The loader (:mod:`zoo.registry.discovery`) records a failure as one line. To say where it happened,
:func:`diagnose` runs the failing step again on its own: the import of the plugin's
module, or the one hook that raised (against a throwaway registry). :func:`check_factories`
imports every registered factory, as first use would, and checks its interface.
"""

from __future__ import annotations

import importlib
import inspect
import re
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from zoo.errors import ZooError, first_line

if TYPE_CHECKING:  # pragma: no cover
    from zoo.registry.discovery import Loaded, PluginInfo

_ZOO_DIR = Path(__file__).resolve().parent.parent  # the zoo package


@dataclass
class Problem:
    """One thing ``zoo plugins --check`` found wrong."""

    plugin: str
    hook: str  # "import", or the hook that failed or registered the factory that does not import
    what: str  # the exception (type: first line), or what is wrong
    where: str = ""  # file:line of the failing frame in the plugin's code, when known
    traceback: str = ""  # the whole traceback, when there is one (zoo -v plugins prints it)
    component: str = ""  # "KIND ID" of a factory that does not import

    def line(self) -> str:
        at = f" at {self.where}" if self.where else ""
        of = f", {self.component}" if self.component else ""
        return f"{self.plugin}: {self.hook}{of}: {self.what}{at}"


def _where(tb: TracebackType | None) -> str:
    """file:line of the innermost frame outside zoo's own code and Python's import machinery."""
    frames = traceback.extract_tb(tb)
    for frame in reversed(frames):
        path = Path(frame.filename)
        if frame.filename.startswith("<") or "importlib" in path.parts:
            continue
        try:
            if path.resolve().is_relative_to(_ZOO_DIR):
                continue
        except OSError:  # pragma: no cover - an unreadable path
            pass
        return f"{frame.filename}:{frame.lineno}"
    return ""


def _from_exception(plugin: str, hook: str, exc: BaseException, component: str = "", prefix: str = "") -> Problem:
    cause = exc
    while isinstance(cause, ZooError) and cause.__cause__ is not None:  # to the plugin's own exception
        cause = cause.__cause__
    what = prefix + f"{type(cause).__name__}: {first_line(cause, limit=10_000)}"
    text = "".join(traceback.format_exception(type(cause), cause, cause.__traceback__))
    return Problem(plugin, hook, what, _where(cause.__traceback__), text, component)


def diagnose(loaded: Loaded, info: PluginInfo) -> Problem:
    """The failed plugin ``info``: which step failed, with the exception, file:line and traceback."""
    hook = re.match(r"(zoo_\w+) raised ", info.error)
    if hook:
        return _rerun_hook(loaded, info, hook.group(1))
    unknown = re.search(r"unknown hook '(\w+)'", info.error)
    if unknown:
        return Problem(info.name, unknown.group(1), f"not a zoo hook ({info.error}); the hooks are listed in "
                       "docs/plugins.md", _definition(info.module, unknown.group(1)))
    module = info.module.partition(":")[0]
    try:
        importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - the plugin's own failure, reported
        return _from_exception(info.name, "import", exc)
    return Problem(info.name, "import", info.error)  # it imports now: report what the loader saw


def _rerun_hook(loaded: Loaded, info: PluginInfo, hook: str) -> Problem:
    from zoo.registry import discovery as plugins

    obj = loaded.pm.get_plugin(info.name)
    fn = getattr(obj, hook, None)
    if fn is None:
        return Problem(info.name, hook, info.error)
    try:
        if hook in plugins.REGISTER_HOOKS:
            fn(_scratch_register(plugins, hook, info))
        else:  # zoo_register_commands: a throwaway command group
            import click

            fn(click.Group("zoo"))
    except Exception as exc:  # noqa: BLE001 - the plugin's own failure, reported
        return _from_exception(info.name, hook, exc)
    return Problem(info.name, hook, info.error.partition(" raised ")[2] or info.error)


def _scratch_register(plugins: Any, hook: str, info: PluginInfo) -> Any:
    """A register callback that checks names as the loader does, into a throwaway registry."""
    from zoo.registry.names import Registry

    make = getattr(plugins, "_make_register", None)
    if make is None:  # pragma: no cover - a loader without it: the hook's own errors still show
        return lambda *args, **kwargs: None
    return make(Registry(), plugins.REGISTER_HOOKS[hook], info.name, plugins.PluginInfo(info.name, "ok", info.module))


def _definition(module: str, name: str) -> str:
    """file:line where ``module`` defines ``name`` (a misspelled hook), or ''."""
    try:
        obj = getattr(importlib.import_module(module.partition(":")[0]), name)
        return f"{inspect.getsourcefile(obj)}:{inspect.getsourcelines(obj)[1]}"
    except Exception:  # noqa: BLE001 - only a hint
        return ""


def check_factories(loaded: Loaded) -> tuple[int, list[Problem]]:
    """Import every registered factory; (how many were checked, the problems)."""
    from zoo.sdk.dataset import Dataset
    from zoo.sdk.task import Task
    from zoo.sdk.tokenizer import Tokenizer
    from zoo.sdk.logger import Logger

    failed = {n for n, i in loaded.plugins.items() if i.status == "failed"}
    problems: list[Problem] = []
    checked = 0
    for kind in ("model", "tokenizer", "dataset", "task", "logger"):
        for spec in loaded.registry.specs(kind):
            if spec.plugin in failed:
                continue
            checked += 1
            given, hook, component = spec.factory, f"zoo_register_{kind}s", f"{kind} {spec.id}"
            try:
                obj = spec.load()
            except Exception as exc:  # noqa: BLE001 - reported with the plugin that registered it
                problems.append(_from_exception(spec.plugin, hook, exc, component,
                                                prefix=f"factory {given!r} does not import: "))
                continue
            base: Any = _model_base() if kind == "model" else {"tokenizer": Tokenizer, "dataset": Dataset,
                                                                "task": Task, "logger": Logger}[kind]
            if not (isinstance(obj, type) and issubclass(obj, base)):
                problems.append(Problem(spec.plugin, hook, f"factory {given!r} is {obj!r}, not a subclass of "
                                        f"zoo.{base.__name__}", component=component))
    return checked, problems


def _model_base() -> type:
    from zoo.sdk.model import Model

    return Model
