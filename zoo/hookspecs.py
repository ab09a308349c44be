"""The hooks a zoo plugin implements.

A plugin is a module (or object) exposed through the Python entry-point group
``zoo``. It implements any of the hooks below with :data:`hookimpl`. Each
``register`` callback takes a short name and a factory; the core prefixes the
plugin's name (``plugin:name`` is the canonical id) and reports collisions.

Factories may be given as dotted strings (``"zoo_gpt.model:GPT"``) so that
registering costs nothing: the module is imported on first use. ``zoo list``
and ``zoo --help`` never import torch or model code.

**Dependencies.** A plugin whose entries use another plugin's components declares
it with a module attribute, ``ZOO_DEPENDS = ["classify", "tokenizers"]`` (plugin
names, as ``zoo plugins`` shows them). The plugins it names register before it;
``ZOO_PLUGINS=mine`` loads them too; a dependency that is not installed is a
warning in ``zoo plugins``.

**Names in entries resolve owner-first.** A short component name in an entry
(``task = "classification"``) means the component of that name registered by the
entry's own plugin, else by the plugins in its ``ZOO_DEPENDS`` (in that order),
and only then the one plugin that registers it anywhere. A full id
(``"classify:classification"``) always means exactly that. So a plugin installed
later can never change what an existing entry means; it can only make the bare
short name typed by a user ambiguous (the error lists every full id).
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

    def __call__(self, name: str, entry: dict[str, Any]) -> None:
        """Register entry ``name`` (its id is ``PLUGIN:name``) from its table (see the hook)."""

    def from_toml(self, source: Any) -> list[str]:
        """Register every ``[entries.NAME]`` table of a TOML file: a path, or a file of your package
        (``importlib.resources.files(__name__) / "entries.toml"``). Returns the names registered."""


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
def zoo_register_loggers(register: Register) -> None:
    """Called once when the registry is built, to declare experiment trackers (``train.loggers``).

    ``factory`` is a :class:`zoo.Logger` subclass or a dotted path to one; it is imported only
    when a run names it. Set its ``requires`` (the module it imports) and ``install`` (what to
    run when it is missing): ``train.loggers`` naming it without the package is a one-line error.
    zoo's own ``tensorboard`` and ``mlflow`` loggers are registered this way, by plugin ``track``.
    """


class RegisterEntryKey(Protocol):
    """The callback handed to :func:`zoo_register_entry_keys`."""

    def __call__(self, key: str, *, summary: str, inherit: str = "replace",
                 check: Any = None) -> None: ...


@hookspec
def zoo_register_entry_keys(register: RegisterEntryKey) -> None:
    """Called once when the registry is built, before any entry registers, to declare entry keys this
    plugin reads.

    An entry table holds the core's keys (``model``, ``task``, ``dataset``, ``tokenizer``,
    ``config``, ``summary``, ``reference``, ``command``, ``notes``, ``base``, ``weights``) and the
    keys plugins declare here: ``register("tune", summary="zoo tune's default search space")``
    lets every entry carry a ``tune`` table, read by the plugin that declared it.
    ``inherit`` says what a variant (``base = ...``) does with its base's value: ``"replace"``
    (the variant's own table replaces the base's whole; the default) or ``"merge"`` (merged key by
    key, as ``config`` is). ``check(value, where)``, when given, is called for every entry that
    holds the key and raises :class:`zoo.ZooError` with a one-line message naming ``where`` when
    the value is malformed. A key no loaded plugin declares is an error in the entry (a typo, or
    a missing package), unless ``ZOO_PLUGINS`` hides a plugin or one failed to load: then it is
    kept, and ``zoo plugins`` warns. zoo's own ``tiny`` key (the conformance kit's overrides) is
    declared this way by the core plugin, ``tune`` by plugin ``tune``.
    """


@hookspec
def zoo_register_entries(register: RegisterEntry) -> None:
    """Called once when the registry is built, after every component hook, to declare zoo entries.

    ``register(name, entry)``: ``entry`` has ``model``, ``task``, ``dataset`` (short names,
    looked up owner-first, or full ids), ``tokenizer`` (one name for every role, or
    ``{role: name}``), ``config`` overrides, ``summary``, ``reference`` (``metric``,
    ``value``, ``source``: a public source), ``command``, ``notes``, ``weights``, and the keys
    plugins declare with :func:`zoo_register_entry_keys` (e.g. ``tiny``: overrides that train in
    seconds, for tests and the conformance kit; ``tune``: ``zoo tune``'s default search space).
    ``base = "other-entry"`` starts from a registered entry (this plugin's, or
    one of a plugin in ``ZOO_DEPENDS``): the variant lists only what differs; ``config``
    merges key by key, a declared key as it was declared (``tiny`` and ``tune`` replace the
    base's when given), and ``summary``, ``command``, ``reference``, ``notes`` and ``weights``
    are never inherited.
    ``register.from_toml(file)`` registers the ``[entries.NAME]`` tables of a TOML file:
    the built-in plugins keep theirs in ``entries.toml`` beside their code.
    """


@hookspec
def zoo_register_commands(cli: click.Group) -> None:
    """Called when the ``zoo`` command line is built, to add click commands.

    Keep the module light: import heavy code inside the command function.
    """
