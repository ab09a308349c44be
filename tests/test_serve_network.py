"""zoo serve on a network: cross-site requests, DNS rebinding, the API key, strict JSON, the work
budget, metrics and health, the log line, what /api/models shows; then, under a real uvicorn on
127.0.0.1 with raw sockets: a client that leaves frees the worker, slow or half-open requests are
closed, connections beyond the cap are refused, several workers serve one port.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import time
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="zoo serve needs the serve extra: pip install 'zoo[serve]'")
pytest.importorskip("prometheus_client", reason="zoo serve needs the serve extra: pip install 'zoo[serve]'")

from test_serve import JSON, make_client, runs, start_server, stop_server  # noqa: E402,F401

import zoo  # noqa: E402
from zoo.serve.cli import allowed_hosts, check_exposure  # noqa: E402
from zoo.serve.guard import Access, host_name  # noqa: E402
from zoo.serve.launch import worker_threads  # noqa: E402
from zoo.serve.models import load_models  # noqa: E402
from zoo.serve.runner import BatchRunner  # noqa: E402

PREDICT = "/api/models/reviews/predict"


@pytest.fixture
def served(runs):  # noqa: F811
    return load_models([str(runs["reviews"]), f"lm={runs['lm']}"], zoo.load)


@pytest.fixture
def client(served):
    with make_client(served) as c:
        yield c


# -- other sites -------------------------------------------------------------------------------------------

def test_a_text_plain_post_from_another_site_is_refused(client):
    # what a <form> or a no-cors fetch on evil.example can send without a preflight
    resp = client.post(PREDICT, content=b'{"inputs": ["fine"]}',
                       headers={"Content-Type": "text/plain", "Origin": "http://evil.example"})
    assert resp.status_code in (403, 415) and "records" not in resp.text
    resp = client.post(PREDICT, content=b'{"inputs": ["fine"]}', headers={"Content-Type": "text/plain"})
    assert resp.status_code == 415 and "application/json" in resp.json()["error"]
    resp = client.post(PREDICT, json={"inputs": ["fine"]}, headers={"Origin": "http://evil.example"})
    assert resp.status_code == 403 and "--cors-origin" in resp.json()["error"]
    assert "access-control-allow-origin" not in resp.headers
    same = client.post(PREDICT, json={"inputs": ["fine"]}, headers={"Origin": "http://127.0.0.1:8000"})
    assert same.status_code == 200  # the server's own page
    pre = client.options(PREDICT, headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in pre.headers


def test_dns_rebinding_a_foreign_host_is_refused(client, served):
    for host in ("evil.example", "evil.example:8000", "127.0.0.1.nip.io"):
        resp = client.get("/api/models", headers={"Host": host})
        assert resp.status_code == 400 and "--allow-host" in resp.json()["error"], host
        assert client.post(PREDICT, json={"inputs": ["x"]}, headers={"Host": host}).status_code == 400
    for host in ("localhost:8000", "127.0.0.1", "[::1]:8000", "LOCALHOST."):
        assert client.get("/api/models", headers={"Host": host}).status_code == 200, host
    with make_client(served, Access(allow_hosts=("zoo.internal",))) as c:
        assert c.get("/api/models", headers={"Host": "zoo.internal:8000"}).status_code == 200
        assert c.get("/api/models", headers={"Host": "evil.example"}).status_code == 400
    assert host_name("[::1]:80") == "::1" and host_name("Example.COM.:80") == "example.com"


def test_cors_only_for_named_origins(served):
    app = "http://app.example:3000"
    with make_client(served, Access(cors_origins=(app,))) as c:
        pre = c.options(PREDICT, headers={"Origin": app, "Access-Control-Request-Method": "POST",
                                          "Access-Control-Request-Headers": "content-type"})
        assert pre.status_code == 200 and pre.headers["access-control-allow-origin"] == app
        resp = c.post(PREDICT, json={"inputs": ["fine"]}, headers={"Origin": app})
        assert resp.status_code == 200 and resp.headers["access-control-allow-origin"] == app
        other = c.post(PREDICT, json={"inputs": ["fine"]}, headers={"Origin": "http://evil.example"})
        assert other.status_code == 403 and "access-control-allow-origin" not in other.headers


def test_the_api_key_is_required_except_for_the_page_and_probes(served):
    with make_client(served, Access(api_key="s3cret-key")) as c:
        for path in ("/api/models", "/metrics", "/health", "/openapi.json"):
            resp = c.get(path)
            assert resp.status_code == 401 and "Bearer" in resp.json()["error"], path
            assert resp.headers["www-authenticate"].startswith("Bearer")
        assert c.post(PREDICT, json={"inputs": ["x"]}, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.post(PREDICT, json={"inputs": ["x"]}, headers={"Authorization": "s3cret-key"}).status_code == 401
        ok = c.post(PREDICT, json={"inputs": ["fine"]}, headers={"Authorization": "Bearer s3cret-key"})
        assert ok.status_code == 200 and ok.json()["records"]
        for path in ("/", "/static/app.js", "/health/live", "/health/ready"):
            assert c.get(path).status_code == 200, path


def test_binding_beyond_loopback_needs_a_key_or_insecure(cli, runs):  # noqa: F811
    result = cli("serve", str(runs["reviews"]), "--host", "0.0.0.0", "--port", "0")
    assert result.exit_code == 2 and "--api-key" in result.output and "--insecure" in result.output
    assert "Traceback" not in result.output
    check_exposure("0.0.0.0", "k", False)
    check_exposure("0.0.0.0", None, True)
    check_exposure("127.0.0.1", None, False)
    assert allowed_hosts("10.1.2.3", ("zoo.lan",)) == ("zoo.lan", "10.1.2.3")
    assert allowed_hosts("0.0.0.0", ()) == ()


def test_the_page_carries_security_headers(client):
    for path in ("/", "/api/models", "/static/app.js"):
        headers = client.get(path).headers
        assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY"
        csp = headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp and "unsafe-inline" not in csp
    assert client.get("/", headers={"Host": "evil.example"}).headers["x-frame-options"] == "DENY"


# -- strict JSON: every odd body is a 4xx with a message, never a 500 --------------------------------------

STRICT = [
    (PREDICT, b'{"inputs": ["a"], "x": ' + b"9" * 5000 + b"}", 422, "5,000 digits"),
    (PREDICT, b'{"inputs": ' + b"[" * 900 + b"]" * 900 + b"}", 400, "deeper than"),
    (PREDICT, b'{"inputs": [' + b"{" * 5000 + b"}", 400, "deeper than"),
    (PREDICT, b'{"inputs": ["\\ud800 lone"]}', 400, "lone surrogate"),
    (PREDICT, b'{"inputs": ["ok"], "\\udfff": 1}', 400, "lone surrogate"),
    (PREDICT, b'{"inputs": ["a"], "x": 1e400}', 422, "out of range"),
    (PREDICT, b'{"inputs": ["a"], "x": -Infinity}', 422, "-Infinity is not a number"),
    ("/api/models/lm/generate", b'{"prompt": "a", "temperature": 1e-300}', 422, "between 0.001 and 100"),
    ("/api/models/lm/generate", b'{"prompt": "\\ud83d"}', 400, "lone surrogate"),
    ("/api/models/lm/generate", b'{"prompt": "a", "seed": ' + b"1" * 40 + b"}", 422, "digits"),
    ("/api/models/lm/predict", b'{"inputs": ["a"], "temperature": 1e-300}', 422, "between 0.001 and 100"),
    ("/api/models/lm/predict", b'{"inputs": ["a"], "temperature": 1e9}', 422, "between 0.001 and 100"),
    ("/api/models/lm/predict", b'{"inputs": ["a"], "seed": 1' + b"0" * 25 + b"}", 422, '"seed" must be between'),
    ("/api/models/lm/predict", b'{"inputs": ["a"], "seed": -1' + b"0" * 25 + b"}", 422, '"seed" must be between'),
]


@pytest.mark.parametrize(("url", "body", "status", "says"), STRICT)
def test_strict_json(client, url, body, status, says):
    resp = client.post(url, content=body, headers=JSON)
    assert resp.status_code == status, resp.text
    assert says in resp.json()["error"]


def test_a_tiny_temperature_that_is_allowed_gives_text_not_nan(client):
    resp = client.post("/api/models/lm/predict", json={"inputs": ["a"], "temperature": 1e-3, "max_new_tokens": 5})
    assert resp.status_code == 200 and len(resp.json()["records"][0]["text"]) == 5


# -- the work budget ---------------------------------------------------------------------------------------

def test_work_over_the_budget_is_refused_naming_the_option(served):
    with make_client(served, max_work=500, max_total_chars=50) as c:
        resp = c.post("/api/models/lm/predict", json={"inputs": ["a", "b"], "max_new_tokens": 600})
        assert resp.status_code == 422
        error = resp.json()["error"]
        assert "1,200 units of work" in error and "2 inputs x 600 tokens" in error and "--max-work" in error
        # the default of an option left out counts: the lm task generates 200 tokens an input
        resp = c.post("/api/models/lm/predict", json={"inputs": ["a"] * 6})
        assert resp.status_code == 422 and "1,200 units" in resp.json()["error"]
        assert c.post("/api/models/lm/predict", json={"inputs": ["a"] * 2, "max_new_tokens": 3}).status_code == 200
        resp = c.post("/api/models/lm/generate", json={"prompt": "a", "max_new_tokens": 1000})
        assert resp.status_code == 422 and "--max-work" in resp.json()["error"]
        resp = c.post(PREDICT, json={"inputs": ["x" * 30, "y" * 30]})
        assert resp.status_code == 422 and "--max-total-chars" in resp.json()["error"]


def test_a_queued_request_whose_client_left_is_dropped():
    import threading

    gate, calls = threading.Event(), []

    def predict(inputs, options):
        calls.append(list(inputs))
        gate.wait(10)
        return [{"x": x} for x in inputs]

    runner = BatchRunner(predict, max_batch=8, merge=False)
    first = runner.submit(["a"], {})
    time.sleep(0.05)
    left = runner.submit(["b"], {})
    runner.abandon(left)
    gate.set()
    assert first.result(10) == [{"x": "a"}]
    runner.close()
    assert left.cancelled() and calls == [["a"]]


def test_a_running_call_stops_at_the_next_step_once_its_client_left():
    import threading

    from zoo.serve.runner import Abandoned

    started, steps = threading.Event(), []
    holder = {}

    def predict(inputs, options):  # a decoder: one check a token, as the forward hook does
        started.set()
        for step in range(10_000):
            holder["runner"].check()
            steps.append(step)
            time.sleep(0.001)
        return [{}] * len(inputs)

    runner = holder["runner"] = BatchRunner(predict, max_batch=8)
    ticket = runner.submit(["a"], {})
    started.wait(10)
    runner.abandon(ticket)
    with pytest.raises(Abandoned):
        ticket.result(10)
    assert len(steps) < 10_000
    runner.check()  # another thread (a /generate stream) is never stopped by it
    runner.close()


# -- observability -----------------------------------------------------------------------------------------

def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text."""
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            got = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
            if all(got.get(k) == v for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {name} {labels} in:\n{text}")


def test_metrics_count_requests_latency_batches_and_tokens(client, served, caplog):
    route = "/api/models/{name}/predict"
    with caplog.at_level(logging.INFO, logger="zoo.serve.access"):
        assert client.post(PREDICT, json={"inputs": ["good", "bad", "fine"]}).status_code == 200
    assert client.post(PREDICT, json={"inputs": []}).status_code == 422
    assert client.post("/api/models/lm/generate", json={"prompt": "a", "max_new_tokens": 4}).status_code == 200
    text = client.get("/metrics").text
    assert metric(text, "zoo_serve_requests_total", model="reviews", route=route, status="200") == 1
    assert metric(text, "zoo_serve_requests_total", model="reviews", route=route, status="422") == 1
    assert metric(text, "zoo_serve_request_seconds_count", model="reviews", route=route) == 2
    assert metric(text, "zoo_serve_batch_inputs_sum", model="reviews") == 3
    assert metric(text, "zoo_serve_tokens_generated_total", model="lm") == 4
    assert metric(text, "zoo_serve_pending_requests") == 0
    lines = [r.getMessage() for r in caplog.records if r.name == "zoo.serve.access"]
    assert any(re.fullmatch(r"method=POST path=/api/models/reviews/predict status=200 ms=[\d.]+ model=reviews "
                            r"inputs=3", line) for line in lines), lines
    with make_client(served) as other:  # a registry per app: a fresh app counts from zero
        assert "zoo_serve_requests_total{" not in other.get("/metrics").text


def test_health_live_and_ready(client, served):
    assert client.get("/health/live").json() == {"status": "live"}
    ready = client.get("/health/ready")
    assert ready.status_code == 200 and ready.json()["models"] == ["reviews", "lm"]
    with make_client(served, max_pending=0) as full:
        resp = full.get("/health/ready")
        assert resp.status_code == 503 and "--max-pending" in resp.json()["why"]
        assert full.get("/health/live").status_code == 200


# -- what /api/models shows --------------------------------------------------------------------------------

def test_models_show_no_local_paths_unless_asked(client, served, runs):  # noqa: F811
    text = client.get("/api/models").text
    models = {m["name"]: m for m in json.loads(text)["models"]}
    assert models["reviews"]["path"] == "reviews/model.safetensors"
    assert models["reviews"]["config"]["dataset"]["train_file"] == "reviews.csv"
    root = str(Path(__file__).resolve().parent.parent)
    assert root not in text and str(runs["reviews"]) not in text and os.path.expanduser("~") + "/" not in text
    assert models["reviews"]["card"].startswith("# classify:text-rnn")
    with make_client(served, Access(show_paths=True)) as c:
        shown = {m["name"]: m for m in c.get("/api/models").json()["models"]}
        assert shown["reviews"]["path"] == str(runs["reviews"] / "model.safetensors")
        assert shown["reviews"]["config"]["dataset"]["train_file"].startswith(root)


def test_worker_threads_split_the_cores():
    cores = len(os.sched_getaffinity(0))
    assert worker_threads(1, None) is None and worker_threads(4, 3) == 3
    assert worker_threads(2, None) == max(1, cores // 2) and worker_threads(10 * cores, None) == 1


# -- under uvicorn, with raw sockets on 127.0.0.1 ------------------------------------------------------------

def raw(port: int, data: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    if data:
        sock.sendall(data)
    return sock


def closed_within(sock: socket.socket, seconds: float) -> bytes | None:
    """What the server sent before closing ``sock`` within ``seconds``; None if it is still open."""
    sock.settimeout(0.2)
    got, end = b"", time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return got
        if not chunk:
            return got
        got += chunk
    return None


def post(port: int, path: str, body: dict) -> bytes:
    data = json.dumps(body).encode()
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n").encode() + data


@pytest.mark.slow
def test_a_client_that_leaves_frees_the_worker_within_a_step(runs):  # noqa: F811
    import httpx

    proc, url = start_server([f"lm={runs['lm']}"], "--max-work", "1000000", "--max-new-tokens", "1000")
    port = int(url.rsplit(":", 1)[1])
    try:
        # 64 prompts x 1,000 tokens: tens of seconds of work for the one worker of this model
        sock = raw(port, post(port, "/api/models/lm/predict", {"inputs": ["a"] * 64, "max_new_tokens": 1000}))
        time.sleep(0.5)
        assert closed_within(sock, 0.1) is None  # still working on it
        sock.close()
        t0 = time.monotonic()
        resp = httpx.post(f"{url}/api/models/lm/predict", json={"inputs": ["b"], "max_new_tokens": 2}, timeout=60)
        waited = time.monotonic() - t0
        assert resp.status_code == 200 and len(resp.json()["records"][0]["text"]) == 2
        print(f"the next request was answered in {waited:.2f} s")
        assert waited < 5, f"the next request waited {waited:.1f} s behind an abandoned one"
        text = httpx.get(f"{url}/metrics").text
        assert metric(text, "zoo_serve_requests_abandoned_total", model="lm") == 1
        assert metric(text, "zoo_serve_requests_total", model="lm", route="/api/models/{name}/predict",
                      status="499") == 1
    finally:
        log = stop_server(proc)
    assert "Traceback" not in log, log


@pytest.mark.slow
def test_slow_and_half_open_requests_are_closed_and_connections_capped(runs):  # noqa: F811
    import httpx

    proc, url = start_server([str(runs["reviews"])], "--header-timeout", "1", "--body-timeout", "1",
                             "--keep-alive-timeout", "1", "--max-connections", "170")
    port = int(url.rsplit(":", 1)[1])
    try:
        head = raw(port, b"POST /api/models/reviews/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty")
        body = raw(port, post(port, PREDICT, {"inputs": ["x" * 40]})[:-20])  # the head and half the body
        idle = raw(port, b"")
        many = [raw(port, b"GET /health/live HTTP/1.1\r\nHost: 1") for _ in range(150)]
        got = closed_within(head, 5)
        assert got is not None and got.startswith(b"HTTP/1.1 408") and b"--header-timeout" in got
        assert closed_within(body, 5) is not None
        assert closed_within(idle, 5) is not None
        assert all(closed_within(s, 5) is not None for s in many)
        for s in (head, body, idle, *many):
            s.close()
        held = [raw(port, b"") for _ in range(170)]
        refused = closed_within(raw(port, b""), 0.9)
        assert refused is not None and refused.startswith(b"HTTP/1.1 503") and b"--max-connections" in refused
        for s in held:
            s.close()
        time.sleep(0.3)
        assert httpx.get(f"{url}/health/live", timeout=10).status_code == 200
        keep = raw(port, b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert closed_within(keep, 5).startswith(b"HTTP/1.1 200")  # answered, then closed once idle
    finally:
        log = stop_server(proc)
    assert "Traceback" not in log, log


def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


@pytest.mark.slow
def test_several_workers_serve_one_port_with_the_key_from_the_environment(runs, monkeypatch):  # noqa: F811
    import httpx

    monkeypatch.setenv("ZOO_SERVE_API_KEY", "k3y-from-env")
    proc, url = start_server([str(runs["reviews"])], "--workers", "2")
    key = {"Authorization": "Bearer k3y-from-env"}
    try:
        assert httpx.get(f"{url}/health", timeout=30).status_code == 401
        workers = [p for p in _children(proc.pid) if "zoo" in Path(f"/proc/{p}/cmdline").read_text()
                   or "multiprocessing" in Path(f"/proc/{p}/cmdline").read_text()]
        assert len(workers) >= 2, workers
        assert httpx.post(f"{url}{PREDICT}", json={"inputs": ["fine"]}, headers=key, timeout=30).status_code == 200
        pids = set()
        for _ in range(200):  # a new connection each time: the kernel hands them to either worker
            pids.add(httpx.get(f"{url}/health", headers=key, timeout=30).json()["pid"])
            if len(pids) == 2:
                break
        assert len(pids) == 2 and pids <= set(workers), (pids, workers)
    finally:
        log = stop_server(proc)
    assert "Traceback" not in log, log


def test_work_counts_tokens_and_beam_at_each_tasks_defaults():
    from zoo_seq2py.task import CodeGenTask
    from zoo_seq2seq.task import Seq2SeqTask
    from zoo_tagging.task import TaggingTask

    from zoo.serve.budget import request_work

    def task(cls):  # the task's own predict signature and default config, without tokenizers
        made = object.__new__(cls)
        made.config = cls.Config()
        return made

    seq2py = task(CodeGenTask)
    beam, steps = seq2py.config.beam, seq2py.config.max_decode_len
    assert request_work(seq2py, 10, {})[0] == 10 * steps * beam
    work, how = request_work(seq2py, 10, {"n_best": beam + 3, "max_len": 50})
    assert work == 10 * 50 * (beam + 3) and "hypotheses (beam, n_best)" in how
    assert request_work(task(Seq2SeqTask), 4, {})[0] == 4 * Seq2SeqTask.Config().max_tgt_len
    assert request_work(task(TaggingTask), 7, {}) == (7, "7 inputs")
    assert request_work(seq2py, 2, {"max_len": 0, "beam": 1})[0] == 2  # none asked: still a pass an input
