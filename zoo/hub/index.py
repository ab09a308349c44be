"""A published index of trained models: ``zoo publish``, ``zoo pull`` and ``zoo list --index``.

A destination is a local folder (which any static web server may then serve) or an ``s3://`` prefix.
It holds ``index.json`` and, per model and version, ``NAME/VERSION/model.safetensors`` and its card
``NAME/VERSION/README.md``. ``index.json``::

    {"format": "zoo-index/1",
     "models": {"NAME": {"latest": "2", "versions": {"1": {...}, "2": {"entry": ..., "version": "2",
                "file": "NAME/2/model.safetensors", "card": "NAME/2/README.md", "sha256": ..., "size": ...,
                "metrics": {...}, "plugin": ..., "plugin_version": ..., "zoo_version": ..., "published": ...}}}}}

The files of a version are written before the index names them, and the index is replaced in one
step (a temp file and a rename in a folder, a single PUT on S3), so a reader sees the old index or the
new one, never a name without its file. Publishers to one folder take turns (a lock file); on S3 two
publishers at the same instant may lose one's index update (S3 has no lock), never a file.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from zoo.errors import ArtifactError, RunDirError, ZooError, ZooUsageError, first_line
from zoo.store.fetch import check_sha256, fetch, filesystem, is_url

FORMAT = "zoo-index/1"
INDEX = "index.json"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def index_url(where: str) -> str:
    """The URL of an index: ``where`` itself when it ends in ``.json``, else ``where/index.json``;
    a local path becomes a ``file://`` URL."""
    url = where if is_url(where) else Path(where).expanduser().resolve().as_uri()
    return url if url.endswith(".json") else url.rstrip("/") + "/" + INDEX


def _check_index(data: Any, where: str) -> dict[str, Any]:
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("models"), dict):
        raise ArtifactError(f"{where + ': ' if where else ''}not a zoo model index (expected an object with "
                            f"format={FORMAT!r} and models)")
    return data


def _parse(path: Path, where: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{where + ': ' if where else ''}not valid JSON ({exc})") from None
    return _check_index(data, where)


def read_index(where: str) -> dict[str, Any]:
    """The index at ``where`` (URL, folder or ``.json`` file), fetched fresh (from the cache when offline)."""
    url = index_url(where)
    path = fetch(url, check=lambda p: _parse(p, ""), refresh=True, progress=False)
    return _parse(path, url)


def pick(index: dict[str, Any], name: str, version: str | None, where: str) -> dict[str, Any]:
    """The record of model ``name`` (``version``, default its latest) in ``index``."""
    model = index["models"].get(name)
    if model is None:
        known = ", ".join(sorted(index["models"])) or "none"
        raise ZooUsageError(f"{where}: no model '{name}' in the index (it has: {known})")
    version = str(version or model.get("latest", ""))
    record = model.get("versions", {}).get(version)
    if record is None:
        raise ZooUsageError(f"{where}: model '{name}' has no version '{version}' (it has: "
                            f"{', '.join(sorted(model.get('versions', {})))})")
    return record


def pull(name: str, index: str, version: str | None = None) -> Path:
    """Download model ``name`` (``version``, default the latest) from the index at ``index`` into the cache,
    verified against the sha256 and size the index records; returns the cached file."""
    from zoo.store.remote import check_artifact

    url = index_url(index)
    record = pick(read_index(url), name, version, url)
    rel = str(record.get("file", ""))
    if not rel or rel.startswith("/") or "\\" in rel or ".." in rel.split("/") or "://" in rel:
        raise ArtifactError(f"{url}: model '{name}' has file {rel!r}; an index names files by a path below it")
    file_url = url.rsplit("/", 1)[0] + "/" + rel
    path = fetch(file_url, check_sha256(record.get("sha256"), f"{url}: {name}"), check=check_artifact)
    if "size" in record and path.stat().st_size != int(record["size"]):
        raise ArtifactError(f"{file_url}: {path.stat().st_size} bytes, the index says {record['size']}")
    return path


# --- publishing ---------------------------------------------------------------------------------------

def publish(run: str | Path, dest: str, *, name: str | None = None, version: str | None = None,
            force: bool = False) -> dict[str, Any]:
    """Copy a run's artifact and model card to ``dest`` (a folder or ``s3://`` prefix) and add them to its
    ``index.json``; returns the new index record. A version already published with other content is
    replaced only with ``force``."""
    from zoo.store.artifact import read_metadata
    from zoo.sdk.files import sha256_file
    from zoo.inference.load import find_artifact

    art = find_artifact(run)
    if not art.is_file():
        raise ArtifactError(f"{run}: no model file at {art}")
    meta = read_metadata(art)
    name = name or str(meta.get("entry") or art.parent.name).split(":", 1)[-1]
    if not NAME.match(name):
        raise ZooUsageError(f"name '{name}': use letters, digits, '.', '_' and '-' (starting with a letter or digit)")
    store = _store(dest)
    with store.locked():
        index = store.read()
        model = index["models"].setdefault(name, {"latest": "", "versions": {}})
        version = str(version or _next_version(model["versions"]))
        if not NAME.match(version):
            raise ZooUsageError(f"version '{version}': use letters, digits, '.', '_' and '-'")
        record = _record(meta, name, version, sha256_file(art), art.stat().st_size)
        old = model["versions"].get(version)
        if old and old.get("sha256") != record["sha256"] and not force:
            raise RunDirError(f"{dest}: {name} version {version} is already published with other weights; "
                              "publish another version, or force=True to replace it")
        store.put_file(record["file"], art)
        store.put_bytes(record["card"], _card(art, meta, name, version).encode("utf-8"))
        model["versions"][version] = record
        model["latest"] = max(model["versions"], key=_version_key)
        store.put_bytes(INDEX, (json.dumps(index, indent=2, sort_keys=True) + "\n").encode("utf-8"))
    return record


def _version_key(version: str) -> tuple[int, Any]:
    return (1, int(version)) if version.isdigit() else (0, version)


def _next_version(versions: dict[str, Any]) -> str:
    numbers = [int(v) for v in versions if v.isdigit()]
    return str(max(numbers, default=0) + 1)


def _record(meta: dict[str, Any], name: str, version: str, sha256: str, size: int) -> dict[str, Any]:
    return {
        "entry": meta.get("entry", ""), "version": version, "sha256": sha256, "size": size,
        "file": f"{name}/{version}/model.safetensors", "card": f"{name}/{version}/README.md",
        "metrics": {k: v for k, v in (meta.get("metrics") or {}).items() if k in ("val", "test")},
        "task": meta.get("task", ""), "plugin": meta.get("plugin", ""),
        "plugin_version": meta.get("plugin_version", ""),
        "zoo_version": meta.get("zoo_version", ""),
        "published": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _card(art: Path, meta: dict[str, Any], name: str, version: str) -> str:
    """The run's model card (README.md beside the artifact), else a short one from the metadata."""
    readme = art.parent / "README.md"
    text = readme.read_text(encoding="utf-8") if readme.is_file() else ""
    if not text:
        lines = [f"# {name}", "", f"Entry `{meta.get('entry', '')}`, task `{meta.get('task', '')}`.", ""]
        for split, values in (meta.get("metrics") or {}).items():
            if split in ("val", "test") and isinstance(values, dict):
                lines += [f"- {split}: " + ", ".join(f"{k} = {v:.6g}" for k, v in values.items()
                                                     if isinstance(v, (int, float)))]
        text = "\n".join(lines) + "\n"
    return text + f"\nPublished as `{name}` version {version}: `zoo pull {name} --index URL`.\n"


class _Folder:
    def __init__(self, root: Path):
        self.root = root

    @contextmanager
    def locked(self) -> Iterator[None]:
        import fcntl

        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".index.lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)  # released when the file closes, or the process dies
            yield

    def read(self) -> dict[str, Any]:
        path = self.root / INDEX
        return _parse(path, str(path)) if path.is_file() else {"format": FORMAT, "models": {}}

    def put_file(self, rel: str, src: Path) -> None:
        from zoo.sdk.atomic import atomic_path
        import shutil

        with atomic_path(self.root / rel) as tmp:
            shutil.copyfile(src, tmp)

    def put_bytes(self, rel: str, data: bytes) -> None:
        from zoo.sdk.atomic import atomic_write

        atomic_write(self.root / rel, data)


class _S3:
    def __init__(self, url: str):
        self.url = url.rstrip("/")
        self.fs, self.prefix = filesystem(self.url)

    @contextmanager
    def locked(self) -> Iterator[None]:
        yield  # S3 has no lock: see the module docstring

    def read(self) -> dict[str, Any]:
        path = f"{self.prefix}/{INDEX}"
        try:
            data = json.loads(self.fs.cat_file(path))
        except FileNotFoundError:
            return {"format": FORMAT, "models": {}}
        except ValueError as exc:
            raise ArtifactError(f"{self.url}/{INDEX}: not valid JSON ({exc})") from None
        except Exception as exc:  # noqa: BLE001 - no bucket, no access, no connection
            raise ZooError(f"{self.url}/{INDEX}: cannot read it ({first_line(exc)}); check the bucket and your "
                           "credentials") from None
        return _check_index(data, f"{self.url}/{INDEX}")

    def put_file(self, rel: str, src: Path) -> None:
        self._guard(lambda: self.fs.put_file(str(src), f"{self.prefix}/{rel}"), rel)

    def put_bytes(self, rel: str, data: bytes) -> None:
        self._guard(lambda: self.fs.pipe_file(f"{self.prefix}/{rel}", data), rel)

    def _guard(self, write: Any, rel: str) -> None:
        try:
            write()
        except Exception as exc:  # noqa: BLE001 - s3fs/botocore raise their own types
            raise ZooError(f"{self.url}/{rel}: cannot write it ({first_line(exc)}); check the bucket and your "
                           "credentials") from None


def _store(dest: str) -> Any:
    if dest.lower().startswith("s3://"):
        return _S3(dest)
    if is_url(dest):
        raise ZooUsageError(f"{dest}: publish writes to a folder or an s3:// prefix (serve the folder over HTTP)")
    root = Path(dest).expanduser()
    if root.exists() and not root.is_dir():
        raise ZooUsageError(f"{dest}: not a folder")
    return _Folder(root)
