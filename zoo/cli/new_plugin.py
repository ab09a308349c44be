"""``zoo new-plugin NAME``: write a pip-installable plugin package that works as generated.

The package (``zoo-NAME``, module ``zoo_NAME``) registers a bag-of-embeddings classifier
for the built-in ``classify:classification`` task, a dataset reading a folder of CSV / TSV
files (with a small sample), and an entry combining them with a ``tiny`` table; its tests
run zoo's conformance kit. The templates are the files under ``zoo/templates/plugin``:
``__package__`` in a path becomes the module name, ``{{name}}``-style fields in ``*.tmpl``
files are filled in and the suffix dropped; other files are copied as they are.

Light: importing this module (and ``zoo --help``) does not import torch.
"""

from __future__ import annotations

import importlib.metadata as md
import re
import shutil
import tempfile
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

import click

from zoo.errors import ZooUsageError

NAME_RE = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
TEMPLATE_SUFFIX = ".tmpl"
PACKAGE_DIR = "__package__"


def plugin_fields(name: str) -> dict[str, str]:
    """What the templates' ``{{field}}`` placeholders become for plugin ``name``."""
    from zoo._version import __version__

    return {"name": name, "package": "zoo_" + name.replace("-", "_"), "dist": f"zoo-{name}",
            "zoo_version": __version__}


def check_name(name: str) -> None:
    """A plugin name must be a valid entry-point and id part, and not one an installed plugin uses."""
    if not NAME_RE.fullmatch(name) or len(name) > 40:
        raise ZooUsageError(f"plugin name {name!r}: use lower-case letters and digits, words joined by '-', "
                            "starting with a letter, at most 40 characters (e.g. 'polarity')")
    taken = {ep.name for ep in md.entry_points(group="zoo")} | {"zoo"}
    if name in taken:
        raise ZooUsageError(f"a zoo plugin named '{name}' is already installed (see 'zoo plugins'); "
                            "choose another name")


def _templates() -> Traversable:
    return resources.files("zoo").joinpath("templates", "plugin")


def render(name: str) -> dict[str, str]:
    """Relative path -> text of every file of the generated package."""
    fields = plugin_fields(name)
    out: dict[str, str] = {}

    def walk(node: Traversable, parts: tuple[str, ...]) -> None:
        for child in sorted(node.iterdir(), key=lambda c: c.name):
            part = fields["package"] if child.name == PACKAGE_DIR else child.name
            if child.is_dir():
                walk(child, (*parts, part))
                continue
            text = child.read_text(encoding="utf-8")
            if part.endswith(TEMPLATE_SUFFIX):
                part = part[: -len(TEMPLATE_SUFFIX)]
                for key, value in fields.items():
                    text = text.replace("{{" + key + "}}", value)
            out["/".join((*parts, part))] = text

    walk(_templates(), ())
    return out


def write_plugin(name: str, dest: str | Path | None = None) -> Path:
    """Write plugin package ``name`` into ``dest`` (default ``./zoo-NAME``); return the folder.

    ``dest`` must not exist or be an empty folder. The files are written into a temporary
    folder beside it first, so a failure leaves nothing half-written.
    """
    check_name(name)
    dest = Path(dest) if dest is not None else Path(f"zoo-{name}")
    if dest.is_symlink() or (dest.exists() and (not dest.is_dir() or any(dest.iterdir()))):
        raise ZooUsageError(f"{dest} already exists and is not an empty folder; choose another --dest")
    files = render(name)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        for rel, text in files.items():
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        if dest.exists():
            dest.rmdir()  # empty, checked above
        tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


@click.command("new-plugin")
@click.argument("name")
@click.option("--dest", type=click.Path(file_okay=False), help="Folder to create [default: ./zoo-NAME].")
def new_plugin_cmd(name: str, dest: str | None) -> None:
    """Write a pip-installable zoo plugin package NAME that installs, trains and passes zoo's kit as generated.

    It holds a model for the classification task, a dataset reading a folder of CSV files
    (with a sample), an entry combining them, a README and tests.
    """
    out = write_plugin(name, dest)
    entry = f"{name}-demo"
    click.echo(f"wrote {out}/ (plugin '{name}', package {plugin_fields(name)['package']})\nnext:\n"
               f"  pip install -e {out}\n"
               f"  zoo list '{name}:*'\n"
               f"  zoo train {entry} --out runs/{entry}\n"
               f"  cd {out} && pytest        # the plugin's tests and zoo's conformance kit")
