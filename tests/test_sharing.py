"""Sharing trained models: by URL into a cache, through a published index, as a pip wheel.

Real components only: a Range-capable HTTP server and ``python -m http.server`` on 127.0.0.1, an
S3-compatible server (moto's server mode) on 127.0.0.1, ``pip`` installing a built wheel.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import types
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import zoo
from conftest import TINY_SUBSEQ
from zoo import hookimpl

INPUTS = ["3 1 4 1 5 9 2 6 2 3", "2 7 1 8 2 8 1 8 0 4"]


# --- fixtures: a trained tiny model, servers on 127.0.0.1 ---------------------------------------------

@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """One tiny trained subseq-gru run for the whole module (its own cache folder)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ZOO_CACHE_DIR", str(tmp_path_factory.mktemp("train-cache")))
        out = tmp_path_factory.mktemp("run") / "subseq"
        zoo.train("subseq-gru", TINY_SUBSEQ, out=out)
    return out


@pytest.fixture
def artifact(run) -> tuple[bytes, str]:
    data = (run / "model.safetensors").read_bytes()
    return data, hashlib.sha256(data).hexdigest()


def predictions(model) -> list:
    return zoo.load(model).predict(INPUTS)


class Handler(SimpleHTTPRequestHandler):
    """Serves a folder with HTTP Range support; ``server.cut`` truncates the next responses (bytes sent
    before the connection drops), ``server.corrupt`` flips a byte of the next N responses."""

    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        server = self.server
        server.requests.append((self.path, self.headers.get("Range")))
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        start = int(self.headers["Range"].split("=")[1].split("-")[0]) if self.headers.get("Range") else 0
        if start >= len(data) and start:
            self.send_error(416)
            return
        body = bytearray(data[start:])
        if server.corrupt:
            server.corrupt -= 1
            body[len(body) // 2] ^= 0xFF
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        cut = server.cut.pop(0) if server.cut else None
        self.wfile.write(bytes(body[:cut]) if cut is not None else bytes(body))
        if cut is not None:
            self.close_connection = True

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def http(run):
    """A Range-capable HTTP server on 127.0.0.1 serving a copy of the run folder."""
    root = run.parent / f"served-{time.monotonic_ns()}"
    shutil.copytree(run, root)
    server = ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: Handler(*a, directory=str(root)))
    server.requests, server.cut, server.corrupt = [], [], 0
    server.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {proc.stderr.read()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def start(args: list[str], port: int, **kw) -> subprocess.Popen:
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, **kw)
    try:
        wait_for(port, proc)
    except Exception:
        proc.kill()
        raise
    return proc


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def cached_models(root: Path) -> list[Path]:
    return sorted((root / "models").rglob("*.safetensors")) if (root / "models").is_dir() else []


# --- by URL -------------------------------------------------------------------------------------------

def test_load_by_http_url_with_sha256_caches_it(http, run, artifact, tmp_path):
    data, sha = artifact
    url = f"{http.base}/model.safetensors#sha256={sha}"
    assert predictions(url) == predictions(run)
    cached = cached_models(tmp_path / "cache")
    assert len(cached) == 1 and cached[0].read_bytes() == data and sha in str(cached[0])
    assert len(http.requests) == 1
    assert predictions(url) == predictions(run) and len(http.requests) == 1  # the cache answers


def test_wrong_sha256_is_refused_and_nothing_is_cached(http, cli, tmp_path):
    result = cli("predict", f"{http.base}/model.safetensors#sha256={'0' * 64}", INPUTS[0])
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and "does not match the expected 0000000000000000" in result.output
    assert "refused after 3 attempts" in result.output and len(result.output.strip().splitlines()) == 1
    assert len(http.requests) == 3  # fetched again each time, then refused
    assert cached_models(tmp_path / "cache") == [] and not list((tmp_path / "cache").rglob("*.part"))


def test_a_bad_sha256_fragment_is_a_usage_error(cli, http):
    result = cli("info", f"{http.base}/model.safetensors#sha=abc")
    assert result.exit_code == 2 and "must be sha256=<64 hex digits>" in result.output
    assert http.requests == []


def test_a_truncated_download_is_refused_then_resumed(http, run, artifact, tmp_path):
    data, sha = artifact
    http.cut = [1000]  # the first response breaks off after 1000 bytes
    assert predictions(f"{http.base}/model.safetensors#sha256={sha}") == predictions(run)
    assert http.requests == [("/model.safetensors", None), ("/model.safetensors", "bytes=1000-")]
    assert cached_models(tmp_path / "cache")[0].read_bytes() == data


def test_a_truncated_download_without_sha256_is_never_loaded(http, run, artifact, tmp_path):
    """Without a sha256 the size the server announced still catches a short file; a later call resumes."""
    data, _ = artifact
    http.cut = [1000, 1000, 1000]  # every attempt breaks off
    with pytest.raises(zoo.ArtifactError, match=r"refused after 3 attempts: got 3,000 of [\d,]+ bytes"):
        zoo.load(f"{http.base}/model.safetensors")
    assert cached_models(tmp_path / "cache") == []
    parts = list((tmp_path / "cache").rglob("*.part"))
    assert len(parts) == 1 and parts[0].stat().st_size == 3000  # kept for a resume
    assert predictions(f"{http.base}/model.safetensors") == predictions(run)  # the server recovered
    assert http.requests[-1] == ("/model.safetensors", "bytes=3000-")
    assert cached_models(tmp_path / "cache")[0].read_bytes() == data


def test_a_partial_file_from_an_earlier_process_is_resumed(http, run, artifact, tmp_path):
    from zoo.store.fetch import cache_path

    data, sha = artifact
    dest = cache_path(f"{http.base}/model.safetensors", sha)
    dest.parent.mkdir(parents=True)
    dest.with_name(dest.name + ".part").write_bytes(data[:20000])
    assert predictions(f"{http.base}/model.safetensors#sha256={sha}") == predictions(run)
    assert http.requests == [("/model.safetensors", "bytes=20000-")]
    assert dest.read_bytes() == data


def test_a_corrupted_download_is_fetched_again(http, run, artifact, tmp_path):
    data, sha = artifact
    http.corrupt = 1
    assert predictions(f"{http.base}/model.safetensors#sha256={sha}") == predictions(run)
    assert len(http.requests) == 2 and cached_models(tmp_path / "cache")[0].read_bytes() == data


def test_offline_uses_the_cache_and_never_the_network(http, run, artifact, cli, monkeypatch):
    _, sha = artifact
    url = f"{http.base}/model.safetensors#sha256={sha}"
    assert cli("info", url).exit_code == 0
    seen = len(http.requests)
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    result = cli("predict", url, INPUTS[0], "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.splitlines()[-1])["output"] == predictions(run)[0]["output"]
    miss = cli("predict", f"{http.base}/other.safetensors", INPUTS[0])
    assert miss.exit_code == 1 and len(miss.output.strip().splitlines()) == 1
    assert "not in the model cache" in miss.output and "ZOO_OFFLINE=1 forbids downloading" in miss.output
    assert len(http.requests) == seen  # not one request while offline


def test_file_url_and_eval_by_url(run, artifact, cli, tmp_path):
    _, sha = artifact
    url = (run / "model.safetensors").as_uri() + f"#sha256={sha}"
    result = cli("eval", url, "--split", "val", "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output[result.output.index("{"):])
    assert metrics["exact_match"] == pytest.approx(zoo.evaluate(run, "val")["exact_match"])
    exported = cli("export", url, "--out", str(tmp_path / "half.safetensors"), "--dtype", "float16")
    assert exported.exit_code == 0, exported.output
    assert zoo.load(tmp_path / "half.safetensors").metadata["entry"] == "seq2seq:subseq-gru"


# --- published weights in an entry -----------------------------------------------------------------------

def weights_plugin(**weights) -> types.SimpleNamespace:
    def zoo_register_entries(register):
        register("subseq-pub", {"model": "seq2seq:gru-seq2seq", "task": "seq2seq:seq2seq", "dataset": "subseq:subseq",
                                "tokenizer": "tokenizers:digits", "weights": weights})

    return types.SimpleNamespace(zoo_register_entries=hookimpl(zoo_register_entries))


def test_an_entry_with_published_weights_loads_pretrained(use_plugins, http, run, artifact, tmp_path, monkeypatch):
    _, sha = artifact
    loaded = use_plugins(("pub", weights_plugin(url=f"{http.base}/model.safetensors", sha256=sha)))
    assert loaded.plugins["pub"].status == "ok", loaded.plugins["pub"].error
    monkeypatch.chdir(tmp_path)  # no runs/ folder here
    with pytest.raises(zoo.ArtifactError, match=r"train it first: zoo train subseq-pub or load its published weights"):
        zoo.load("subseq-pub")
    assert zoo.load("subseq-pub", pretrained=True).predict(INPUTS) == predictions(run)
    assert len(http.requests) == 1


def test_entry_weights_are_checked_when_registered(use_plugins):
    loaded = use_plugins(("pub", weights_plugin(url="ftp://x/model.safetensors", sha256="0" * 64)))
    assert loaded.plugins["pub"].status == "failed"
    error = loaded.plugins["pub"].error
    assert "entry 'subseq-pub': weights.url 'ftp://x/model.safetensors' is not an https://" in error


# --- publish, pull, list --index -----------------------------------------------------------------------

def test_publish_to_a_folder_served_over_http_then_pull_and_list(run, artifact, cli, tmp_path, monkeypatch):
    data, sha = artifact
    site = tmp_path / "site"
    first = cli("publish", str(run), str(site))
    assert first.exit_code == 0, first.output
    assert cli("publish", str(run), str(site), "--name", "copy").exit_code == 0
    assert cli("publish", str(run), str(site)).exit_code == 0  # subseq-gru version 2
    index = json.loads((site / "index.json").read_text())
    assert sorted(index["models"]) == ["copy", "subseq-gru"] and index["models"]["subseq-gru"]["latest"] == "2"
    record = index["models"]["subseq-gru"]["versions"]["2"]
    assert record["sha256"] == sha and record["size"] == len(data) and record["entry"] == "seq2seq:subseq-gru"
    assert record["metrics"]["test"]["exact_match"] == zoo.load(run).metadata["metrics"]["test"]["exact_match"]
    assert (site / record["file"]).read_bytes() == data and (site / record["card"]).read_text().startswith("# ")
    assert not [p for p in site.iterdir() if p.name.endswith(".tmp")]

    port = free_port()
    server = start([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(site)],
                   port)
    try:
        listing = cli("list", "--index", f"http://127.0.0.1:{port}/")
        assert listing.exit_code == 0, listing.output
        lines = listing.output.splitlines()
        assert [line.split()[:3] for line in lines] == [["copy", "v1", "seq2seq:subseq-gru"],
                                                        ["subseq-gru", "v2", "seq2seq:subseq-gru"]]
        pulled = cli("pull", "subseq-gru", "--index", f"http://127.0.0.1:{port}/index.json")
        assert pulled.exit_code == 0, pulled.output
        path = Path(pulled.output.strip())
        assert path.read_bytes() == data and str(tmp_path / "cache") in str(path)
        assert zoo.load(path).predict(INPUTS) == predictions(run)
        unknown = cli("pull", "nope", "--index", f"http://127.0.0.1:{port}/")
        assert unknown.exit_code == 2 and "no model 'nope' in the index (it has: copy, subseq-gru)" in unknown.output
    finally:
        stop(server)
    monkeypatch.setenv("ZOO_OFFLINE", "1")  # the server is gone: the cached index and model still answer
    again = cli("pull", "subseq-gru", "--index", f"http://127.0.0.1:{port}/index.json")
    assert again.exit_code == 0 and Path(again.output.strip()) == path
    assert cli("list", "--index", f"http://127.0.0.1:{port}/index.json").output == listing.output
    miss = cli("pull", "copy", "--index", f"http://127.0.0.1:{port}/index.json")
    assert miss.exit_code == 1 and "ZOO_OFFLINE=1 forbids downloading" in miss.output


def test_publishing_other_weights_under_a_published_version_needs_force(run, cli, tmp_path):
    site = tmp_path / "site"
    assert cli("publish", str(run), str(site), "--version", "1.0").exit_code == 0
    other = tmp_path / "other.safetensors"
    zoo.export(run, other, "float16")
    before = (site / "index.json").read_bytes()
    refused = cli("publish", str(other), str(site), "--name", "subseq-gru", "--version", "1.0")
    assert refused.exit_code == 1 and "already published with other weights" in refused.output
    assert "--force" in refused.output and (site / "index.json").read_bytes() == before


@pytest.fixture
def s3(monkeypatch):
    """moto's S3-compatible server on 127.0.0.1, with a bucket; boto3/s3fs pointed at it."""
    pytest.importorskip("s3fs", reason="the s3 extra: pip install 'zoo[s3]'")
    boto3 = pytest.importorskip("boto3")
    port = free_port()
    moto = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or shutil.which("moto_server")
    if moto is None:
        pytest.skip("moto_server is not installed (pip install 'moto[server]')")
    proc = start([moto, "-H", "127.0.0.1", "-p", str(port)], port)
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "test",
           "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"])
    client.create_bucket(Bucket="models")
    yield client
    stop(proc)


def test_publish_to_s3_then_list_pull_and_load(s3, run, artifact, cli):
    data, sha = artifact
    result = cli("publish", str(run), "s3://models/zoo")
    assert result.exit_code == 0, result.output
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="models")["Contents"])
    assert keys == ["zoo/index.json", "zoo/subseq-gru/1/README.md", "zoo/subseq-gru/1/model.safetensors"]
    assert s3.get_object(Bucket="models", Key="zoo/subseq-gru/1/model.safetensors")["Body"].read() == data
    assert cli("publish", str(run), "s3://models/zoo", "--name", "second").exit_code == 0
    listing = cli("list", "--index", "s3://models/zoo")
    assert listing.exit_code == 0, listing.output
    assert [line.split()[0] for line in listing.output.splitlines()] == ["second", "subseq-gru"]
    pulled = cli("pull", "second", "--index", "s3://models/zoo/index.json")
    assert pulled.exit_code == 0, pulled.output
    assert Path(pulled.output.strip()).read_bytes() == data
    assert predictions(f"s3://models/zoo/subseq-gru/1/model.safetensors#sha256={sha}") == predictions(run)


def test_s3_url_to_a_missing_object_is_one_line(s3, cli):
    result = cli("predict", "s3://models/none/model.safetensors", INPUTS[0])
    assert result.exit_code == 1 and "no such file" in result.output and len(result.output.strip().splitlines()) == 1


# --- package: a pip wheel ------------------------------------------------------------------------------

def fresh_env(tmp_path: Path) -> Path:
    """A throwaway venv that sees this environment's packages (zoo, its built-in plugins, torch...) except
    the example third-party plugin zoo-lstm-seq2seq; returns its python."""
    import importlib.metadata as md
    import sysconfig
    import venv

    env = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env)
    python = env / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    hidden = {Path(str(f)).parts[0] for f in md.distribution("zoo-lstm-seq2seq").files or []}
    view = tmp_path / "packages"  # this environment's site-packages, less the example plugin
    view.mkdir()
    for item in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if item.name not in hidden:
            (view / item.name).symlink_to(item)
    (site / "zoo-view.pth").write_text(f"import site; site.addsitedir({str(view)!r})\n")  # its .pth files too
    return python


def test_package_install_and_predict_in_a_fresh_environment(run, cli, tmp_path):
    result = cli("package", str(run), "--name", "tiny-subseq", "--out", str(tmp_path / "dist"))
    assert result.exit_code == 0, result.output
    wheels = list((tmp_path / "dist").glob("tiny_subseq-*.whl"))
    assert len(wheels) == 1
    python = fresh_env(tmp_path)
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--disable-pip-version-check",
                          "--target", str(python.parent.parent / "wheel-site"), str(wheels[0])],
                         capture_output=True, text=True, timeout=300)
    assert pip.returncode == 0, pip.stderr
    env = dict(os.environ, PYTHONPATH=str(python.parent.parent / "wheel-site"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = subprocess.run([str(python), "-m", "zoo", "predict", "tiny-subseq", *INPUTS, "--json"], capture_output=True,
                          text=True, env=env, cwd=elsewhere, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(line)["output"] for line in proc.stdout.splitlines()] == [p["output"] for p in predictions(run)]
    code = ("import zoo, importlib.metadata as md\n"
            "print(zoo.load('tiny-subseq').path)\nprint(md.requires('tiny-subseq'))")
    proc = subprocess.run([str(python), "-c", code], capture_output=True, text=True, env=env, cwd=elsewhere,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "zoo_model_tiny_subseq/model.safetensors" in proc.stdout and "'zoo==0.1.0'" in proc.stdout
    proc = subprocess.run([str(python), "-m", "zoo", "info", "tiny-subseq"], capture_output=True, text=True, env=env,
                          cwd=elsewhere, timeout=300)
    assert proc.returncode == 0 and "entry: seq2seq:subseq-gru" in proc.stdout, proc.stderr


def test_a_packaged_model_whose_plugin_is_missing_names_the_package(cli, tmp_path):
    """A model trained with the example third-party plugin, installed where that plugin is not."""
    out = tmp_path / "lstm-run"
    tiny = {"dataset": {"train_size": 500, "val_size": 50, "test_size": 50}, "model": {"hidden": 16, "emb_dim": 8},
            "train": {"epochs": 1, "progress": False}}
    zoo.train("subseq-lstm", tiny, out=out)
    result = cli("package", str(out), "--name", "lstm-model", "--out", str(tmp_path / "dist"), "--version", "2.0")
    assert result.exit_code == 0, result.output
    wheel = next((tmp_path / "dist").glob("lstm_model-2.0-*.whl"))
    python = fresh_env(tmp_path)
    target = python.parent.parent / "wheel-site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--disable-pip-version-check",
                          "--target", str(target), str(wheel)], capture_output=True, text=True, timeout=300)
    assert pip.returncode == 0, pip.stderr
    proc = subprocess.run([str(python), "-m", "zoo", "predict", "lstm-model", INPUTS[0]], capture_output=True,
                          text=True, env=dict(os.environ, PYTHONPATH=str(target)), cwd=tmp_path, timeout=300)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == ("Error: lstm-model: this model needs plugin lstm from package zoo-lstm-seq2seq "
                                   "0.2.0, which is not installed; pip install 'zoo-lstm-seq2seq==0.2.0'")


def test_the_progress_bar_counts_bytes(http, artifact, capsys):
    from zoo.store.fetch import fetch

    data, sha = artifact
    fetch(f"{http.base}/model.safetensors#sha256={sha}", progress=True)
    bar = capsys.readouterr().err
    total = f"/{len(data) / 1024:.1f}k"  # the file's size in bytes (scaled by 1024), speed in B/s
    assert "model.safetensors:" in bar and total in bar and "B/s" in bar



def waiting_for_lock(pid: int) -> bool:
    """Whether process ``pid`` waits for a file lock (Linux lists blocked requests in /proc/locks with '->')."""
    return any(line.split()[1] == "->" and line.split()[5] == str(pid)
               for line in Path("/proc/locks").read_text().splitlines() if len(line.split()) > 5)


@pytest.mark.skipif(not Path("/proc/locks").is_file(), reason="needs Linux's /proc/locks to see a waiting process")
def test_a_publisher_waits_for_another_to_finish_its_index_update(run, cli, tmp_path):
    """Publishers to one folder take turns: while one holds the index (its lock), another waits, so
    neither update is lost."""
    import fcntl

    site = tmp_path / "site"
    assert cli("publish", str(run), str(site), "--name", "first").exit_code == 0
    with open(site / ".index.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as a publisher in the middle of its update
        proc = subprocess.Popen([sys.executable, "-m", "zoo", "publish", str(run), str(site), "--name", "second"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 300
        while not waiting_for_lock(proc.pid):  # the kernel lists it as blocked on our lock
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.1)
        assert sorted(json.loads((site / "index.json").read_text())["models"]) == ["first"]
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert sorted(json.loads((site / "index.json").read_text())["models"]) == ["first", "second"]


def test_serve_takes_a_url(http, run, artifact):
    from zoo.serve.models import load_models

    _, sha = artifact
    served = load_models([f"{http.base}/model.safetensors#sha256={sha}", f"tiny={http.base}/model.safetensors"],
                         zoo.load)
    assert sorted(served) == ["model", "tiny"]  # named for the URL's file, or as given
    assert served["tiny"].predict(INPUTS, {}) == predictions(run)
