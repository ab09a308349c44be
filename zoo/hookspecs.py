"""The hooks a zoo plugin implements.

A plugin is a module (or object) exposed through the Python entry-point group
``zoo``. It implements any of the hooks below with :data:`hookimpl`. Each
``register`` callback takes a short name and a factory; the core prefixes the
plugin's name (``plugin:name`` is the canonical id) and reports collisions.

Factories may be given as dotted strings (``"zoo_gpt.model:GPT"``) so that
registering costs nothing: the module is imported on first use. ``zoo list``
and ``zoo --help`` never import torch or model code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import pluggy

if TYPE_CHECKING:  # pragma: no cover
    import click

PROJECT = "zoo"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class Register(Protocol):
    """The callback handed to every ``zoo_register_*`` hook."""

    def __call__(self, name: str, factory: Any, *, summary: str = "", **extra: Any) -> None: ...


class RegisterEntry(Protocol):
    """The callback handed to :func:`zoo_register_entries`."""

    def __call__(self, name: str, entry: dict[str, Any]) -> None: ...


@hookspec
def zoo_register_models(register: Register) -> None:
    """Called once when the registry is built, to declare model architectures.

    ``register(name, factory, summary=...)``: ``factory`` is a :class:`zoo.Model`
    subclass or a dotted path ``"module:Class"`` to one. The class carries its
    config dataclass as ``Config`` and its ``arch_version``.
    """


@hookspec
def zoo_register_tokenizers(register: Register) -> None:
    """Called once when the registry is built, to declare tokenizers.

    ``factory`` is a :class:`zoo.Tokenizer` subclass or a dotted path to one.
    """


@hookspec
def zoo_register_datasets(register: Register) -> None:
    """Called once when the registry is built, to declare datasets.

    ``factory`` is a :class:`zoo.Dataset` subclass or a dotted path to one.
    """


@hookspec
def zoo_register_tasks(register: Register) -> None:
    """Called once when the registry is built, to declare tasks.

    ``factory`` is a :class:`zoo.Task` subclass or a dotted path to one.
    """


@hookspec
def zoo_register_entries(register: RegisterEntry) -> None:
    """Called once when the registry is built, to declare zoo entries.

    ``register(name, entry)`` where ``entry`` has the shape of one
    ``[entries.NAME]`` table of ``registry.toml``: ``model``, ``task``,
    ``dataset``, ``tokenizer``, ``config`` overrides, ``summary``,
    ``reference`` (metric, value, source) and ``command``.
    """


@hookspec
def zoo_register_commands(cli: click.Group) -> None:
    """Called when the ``zoo`` command line is built, to add click commands.

    Keep the module light: import heavy code inside the command function.
    """
