"""``zoo package``: one trained model as a pip-installable wheel that pins the plugin that built it.

The wheel is built by setuptools (through ``pip wheel``, no build isolation, so nothing is downloaded)
from a throwaway project: a module ``zoo_model_<name>`` holding ``model.safetensors``, its model card
and ``zoo_package.json`` (which plugin distribution and version built it), declared in the entry-point
group ``zoo.models`` under NAME. Its requirements pin that plugin distribution, so ``pip install`` brings
it; once installed, ``zoo predict NAME ...`` and ``zoo.load("NAME")`` find the model by that name.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import logging
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from zoo.errors import ArtifactError, RunDirError, ZooError, ZooUsageError
from zoo.store.remote import GROUP, MANIFEST

log = logging.getLogger(__name__)
PEP508_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")
VERSION = re.compile(r"^\d+(\.\d+)*$")


def module_name(name: str) -> str:
    return "zoo_model_" + re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def plugin_distribution(meta: dict[str, Any]) -> tuple[str, str]:
    """The installed distribution (name, version) that provides the artifact's plugin."""
    from zoo.registry.discovery import plugin_state

    plugin = str(meta.get("plugin") or "")
    info = plugin_state().plugins.get(plugin)
    if info is None or not info.distribution:
        raise ArtifactError(f"the model comes from plugin {plugin or '?'}, which is not installed here; package it "
                            "where the plugin that trained it is installed")
    return info.distribution, md.version(info.distribution)


def package(run: str | Path, name: str, out: str | Path = "dist", *, version: str = "0.1.0",
            force: bool = False) -> Path:
    """Build ``out/NAME-VERSION-py3-none-any.whl`` holding the model of ``run``; returns the wheel's path."""
    from zoo.store.artifact import read_metadata
    from zoo.sdk.files import sha256_file
    from zoo.inference.load import find_artifact

    if not PEP508_NAME.match(name):
        raise ZooUsageError(f"--name {name}: a package name is letters, digits, '.', '_' and '-'")
    if not VERSION.match(version):
        raise ZooUsageError(f"--version {version}: use numbers separated by dots, e.g. 1.0.0")
    art = find_artifact(run)
    meta = read_metadata(art)
    dist, dist_version = plugin_distribution(meta)
    out = Path(out)
    manifest = {"name": name, "plugin": meta.get("plugin"), "plugin_version": meta.get("plugin_version"),
                "distribution": dist, "distribution_version": dist_version, "entry": meta.get("entry"),
                "sha256": sha256_file(art)}
    with tempfile.TemporaryDirectory(prefix="zoo-package-") as tmp:
        project = Path(tmp) / "project"
        _write_project(project, name, version, art, manifest)
        built = _build(project, Path(tmp) / "wheel")
        wheel = out / built.name
        if wheel.exists() and not force:
            raise RunDirError(f"{wheel} already exists; choose another --version, or force=True to overwrite it")
        out.mkdir(parents=True, exist_ok=True)
        from zoo.sdk.atomic import atomic_path

        with atomic_path(wheel) as target:
            shutil.copyfile(built, target)
    log.info("packaged %s as %s", art, wheel)
    return wheel


def _requirements(dist: str, dist_version: str) -> list[str]:
    from zoo.store.card import zoo_version

    pins = [f"{dist}=={dist_version}"]
    if dist != "zoo":  # the plugin's own requirements say which zoo it needs; keep this zoo's major
        major = zoo_version().split(".", 1)[0]
        pins.append(f"zoo>={zoo_version()},<{int(major) + 1}" if major.isdigit() else "zoo")
    return pins


def _write_project(project: Path, name: str, version: str, art: Path, manifest: dict[str, Any]) -> None:
    module = module_name(name)
    pkg = project / module
    pkg.mkdir(parents=True)
    shutil.copyfile(art, pkg / "model.safetensors")
    readme = art.parent / "README.md"
    card = readme.read_text(encoding="utf-8") if readme.is_file() else f"# {name}\n"
    (pkg / "README.md").write_text(card, encoding="utf-8")
    (pkg / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    (pkg / "__init__.py").write_text(
        f'"""The zoo model {name!r}: load it with zoo.load({name!r}) or run zoo predict {name} ..."""\n',
        encoding="utf-8")
    requires = ", ".join(json.dumps(r) for r in _requirements(manifest["distribution"],
                                                             manifest["distribution_version"]))
    (project / "pyproject.toml").write_text(f"""\
[build-system]
requires = ["setuptools>=70.1"]
build-backend = "setuptools.build_meta"

[project]
name = {json.dumps(name)}
version = {json.dumps(version)}
description = {json.dumps(f"zoo model {name} (entry {manifest.get('entry') or '?'})")}
requires-python = ">=3.11"
dependencies = [{requires}]

[project.entry-points.{json.dumps(GROUP)}]
{json.dumps(name)} = {json.dumps(module)}

[tool.setuptools]
packages = [{json.dumps(module)}]

[tool.setuptools.package-data]
{module} = ["model.safetensors", "README.md", {json.dumps(MANIFEST)}]
""", encoding="utf-8")


def _build(project: Path, wheel_dir: Path) -> Path:
    """``pip wheel`` with this environment's setuptools (no isolation: nothing is downloaded)."""
    cmd = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
           "--disable-pip-version-check", "--wheel-dir", str(wheel_dir), str(project)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=project)
    wheels = sorted(wheel_dir.glob("*.whl")) if wheel_dir.is_dir() else []
    if proc.returncode != 0 or not wheels:
        lines = [s for s in (proc.stderr or proc.stdout).splitlines() if s.strip()]
        why = lines[-1].strip() if lines else f"pip exited with {proc.returncode}"
        raise ZooError(f"building the wheel failed ({why[:300]}); it needs setuptools>=70.1 in this environment: "
                       "pip install 'zoo[package]'")
    return wheels[0]
