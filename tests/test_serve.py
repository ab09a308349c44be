"""zoo serve: the JSON API, server-sent events, every 4xx the server answers, the 503 bound.

Two tiny models are trained once for the module (a text-rnn classifier on the example
reviews and a character GPT on the CHANGELOG, about three seconds together); the app
runs in-process under Starlette's TestClient, and once for real under uvicorn.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="zoo serve needs the serve extra: pip install 'zoo[serve]'")
pytest.importorskip("uvicorn", reason="zoo serve needs the serve extra: pip install 'zoo[serve]'")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

import zoo  # noqa: E402
from zoo import api
from zoo.serve import Limits  # noqa: E402
from zoo.serve.app import create_app  # noqa: E402
from zoo.serve.models import default_name, load_models, split_spec  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TINY_RNN = {"dataset": {"train_file": str(ROOT / "examples/text_classification/reviews.csv"), "val_fraction": 0.25},
            "model": {"hidden": 8, "emb_dim": 8}, "tokenizer": {"text": {"min_freq": 1}},
            "train": {"epochs": 1, "batch_size": 4, "progress": False, "threads": 1}}
TINY_GPT = {"dataset": {"files": [str(ROOT / "CHANGELOG.md")]}, "model": {"n_layer": 1, "n_head": 2, "n_embd": 32},
            "task": {"block_size": 16, "eval_blocks": 16},
            "train": {"epochs": 1, "steps_per_epoch": 3, "batch_size": 4, "eval_batch_size": 16, "progress": False,
                      "threads": 1}}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """name -> run folder of the two tiny models, trained once."""
    out = tmp_path_factory.mktemp("serve")
    api.reset()
    zoo.train("text-rnn", TINY_RNN, out=out / "reviews")
    zoo.train("text-gpt", TINY_GPT, out=out / "lm")
    api.reset()
    return {"reviews": out / "reviews", "lm": out / "lm"}


@pytest.fixture
def served(runs):
    return load_models([str(runs["reviews"]), f"lm={runs['lm']}"], zoo.load)


JSON = {"Content-Type": "application/json"}


def make_client(served, access=None, **limits) -> TestClient:
    return TestClient(create_app(served, Limits(**limits), access), base_url="http://127.0.0.1:8000")


@pytest.fixture
def client(served):
    with make_client(served, max_body_bytes=4000, max_input_chars=300, max_inputs=8) as c:
        yield c


def events(text: str) -> list[tuple[str, dict]]:
    """(event, data) of a server-sent event stream."""
    out = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        out.append((fields["event"], json.loads(fields["data"])))
    return out


# -- the endpoints ------------------------------------------------------------------------------------

def test_models_lists_what_zoo_info_shows_and_the_model_card(client):
    models = {m["name"]: m for m in client.get("/api/models").json()["models"]}
    assert list(models) == ["reviews", "lm"]
    rnn = models["reviews"]
    assert rnn["entry"] == "classify:text-rnn" and rnn["task"].endswith("classification")
    assert rnn["model"].endswith("rnn-classifier") and rnn["parameters"] > 0
    assert 0.0 <= rnn["metrics"]["val"]["accuracy"] <= 1.0
    assert rnn["card"].startswith("# classify:text-rnn") and "| split | metric | value |" in rnn["card"]
    assert rnn["predicts"] and not rnn["generates"] and "text" in rnn["input"]
    assert models["lm"]["generates"] and set(models["lm"]["options"]) >= {"max_new_tokens", "temperature", "seed"}
    assert client.get("/api/models/lm").json()["entry"] == "lm:text-gpt"


def test_predict_returns_the_records_of_the_python_api(client, served):
    texts = ["Loved every minute of it, a wonderful cast.", "Dull, wooden and far too long."]
    resp = client.post("/api/models/reviews/predict", json={"inputs": texts})
    assert resp.status_code == 200
    records = resp.json()["records"]
    assert records == served["reviews"].loaded.predict(texts)
    for rec in records:
        probs = [p["probability"] for p in rec["probabilities"]]
        assert probs == sorted(probs, reverse=True) and abs(sum(probs) - 1) < 1e-4
        assert rec["label"] == rec["probabilities"][0]["label"]


def test_predict_passes_options_to_a_language_model(client):
    resp = client.post("/api/models/lm/predict", json={"inputs": ["The", "A"], "max_new_tokens": 7, "seed": 3})
    assert resp.status_code == 200
    texts = [r["text"] for r in resp.json()["records"]]
    assert len(texts) == 2 and all(len(t) == 7 for t in texts)  # a character model: one character a token


def test_generate_streams_server_sent_events(client, served):
    resp = client.post("/api/models/lm/generate", json={"prompt": "The ", "max_new_tokens": 12, "seed": 5})
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
    got = events(resp.text)
    assert got[0] == ("start", {"model": "lm", "prompt": "The ", "warnings": []})
    tokens = [d["text"] for e, d in got if e == "token"]
    assert len(tokens) == 12 and got[-1][0] == "done" and got[-1][1]["text"] == "".join(tokens)
    lm = served["lm"].loaded
    same = "".join(lm.task.generate(lm.model, "The ", max_new_tokens=12, temperature=0.8, seed=5))
    assert got[-1][1]["text"] == same  # the same sampler as zoo generate
    warned = events(client.post("/api/models/lm/generate", json={"prompt": "\u2603", "max_new_tokens": 1}).text)
    assert "never saw" in warned[0][1]["warnings"][0]


def test_health_page_static_files_and_openapi(client):
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["models"] == ["reviews", "lm"] and health["pending"] == 0
    page = client.get("/")
    assert page.status_code == 200 and 'id="model"' in page.text and "/static/app.js" in page.text
    assert client.get("/static/app.js").status_code == 200 and client.get("/static/style.css").status_code == 200
    schema = client.get("/openapi.json").json()
    assert schema["openapi"].startswith("3.")
    assert set(schema["paths"]) == {"/health", "/api/models", "/api/models/{name}", "/api/models/{name}/predict",
                                    "/api/models/{name}/generate", "/health/live", "/health/ready", "/metrics"}
    predict = schema["paths"]["/api/models/{name}/predict"]["post"]
    assert {"200", "400", "401", "403", "404", "413", "415", "422", "503"} <= set(predict["responses"])
    assert schema["components"]["schemas"]["Model"]["properties"]["name"]["enum"] == ["reviews", "lm"]


# -- every refusal is a 4xx JSON error saying what was wrong ----------------------------------------------

BAD_PREDICT = [
    (b"{", 400, "malformed JSON"),
    (b"", 400, "empty request body"),
    (b"\xff\xfe", 400, "not UTF-8"),
    (b'["a"]', 422, "must be a JSON object"),
    (b'{"texts": ["a"]}', 422, 'missing field "inputs"'),
    (b'{"inputs": "a good film"}', 422, '"inputs" must be a list'),
    (b'{"inputs": []}', 422, "empty list"),
    (b'{"inputs": ["fine", 42]}', 422, "inputs[1] is a number"),
    (b'{"inputs": ["fine", "   "]}', 422, "inputs[1]: the text is empty"),
    (b'{"inputs": ["a"], "temprature": 1}', 422, 'unknown field "temprature"'),
    (b'{"inputs": ["' + b"x" * 301 + b'"]}', 422, "--max-input-chars"),
    (json.dumps({"inputs": ["a"] * 9}).encode(), 422, "--max-inputs"),
    (b'{"inputs": ["' + b"x" * 5000 + b'"]}', 413, "--max-body-bytes"),
]


@pytest.mark.parametrize(("body", "status", "says"), BAD_PREDICT)
def test_bad_predict_requests_get_a_json_error(client, body, status, says):
    resp = client.post("/api/models/reviews/predict", content=body, headers=JSON)
    assert resp.status_code == status, resp.text
    assert says in resp.json()["error"]


def test_a_body_without_content_length_is_cut_at_the_limit(client):
    def chunks():  # chunked transfer: the server counts as it reads
        yield b'{"inputs": ["'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"]}'

    resp = client.post("/api/models/reviews/predict", content=chunks(), headers=JSON)
    assert resp.status_code == 413 and "--max-body-bytes" in resp.json()["error"]


@pytest.mark.parametrize(("body", "says"), [
    ({"inputs": ["a"], "temperature": "hot"}, "temperature must be a number"),
    ({"inputs": ["a"], "max_new_tokens": 10**6}, "--max-new-tokens"),
    ({"inputs": ["a"], "top_k": [3]}, '"top_k" must be a number'),
    ({"inputs": [None]}, "inputs[0] is null"),
])
def test_bad_language_model_options_get_422(client, body, says):
    resp = client.post("/api/models/lm/predict", json=body)
    assert resp.status_code == 422 and says in resp.json()["error"]


@pytest.mark.parametrize(("body", "says"), [
    ({"prompt": 3}, '"prompt" must be a string'),
    ({"prompt": "x", "max_new_tokens": 5000}, "between 0 and 1000"),
    ({"prompt": "x", "temperature": -1}, '"temperature" must be a number >= 0'),
    ({"prompt": "x", "top_k": 0}, '"top_k" must be >= 1'),
    ({"prompt": "x", "seed": 1.5}, '"seed" must be a whole number'),
    ({"prompt": "x", "beam": 2}, 'unknown field "beam"'),
    ({"prompt": "x" * 301}, "--max-input-chars"),
])
def test_bad_generate_requests_get_422(client, body, says):
    resp = client.post("/api/models/lm/generate", json=body)
    assert resp.status_code == 422 and says in resp.json()["error"]


def test_unknown_models_routes_and_methods_get_json_errors(client):
    resp = client.post("/api/models/nope/predict", json={"inputs": ["a"]})
    assert resp.status_code == 404 and "no model named 'nope'" in resp.json()["error"]
    assert "reviews, lm" in resp.json()["error"]
    assert client.get("/api/nothing").status_code == 404 and "no such endpoint" in client.get("/api/x").json()["error"]
    resp = client.get("/api/models/reviews/predict")
    assert resp.status_code == 405 and "GET is not allowed" in resp.json()["error"]
    resp = client.post("/api/models/reviews/generate", json={"prompt": "x"})
    assert resp.status_code == 422 and "does not generate text" in resp.json()["error"]
    resp = client.post("/api/models/lm/predict", content=b'{"inputs": ["a"], "seed": NaN}', headers=JSON)
    assert resp.status_code == 422 and "finite" in resp.json()["error"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(
    st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                 lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                 max_leaves=12),
    st.fixed_dictionaries({"inputs": st.lists(st.one_of(st.text(max_size=40), st.integers(),
                                                        st.lists(st.text(max_size=5), max_size=3)), max_size=4)})))
def test_no_json_body_makes_a_server_error(client, body):
    for url in ("/api/models/reviews/predict", "/api/models/lm/generate"):
        resp = client.post(url, content=json.dumps(body).encode(), headers=JSON)
        assert resp.status_code < 500, resp.text
        assert resp.status_code == 200 or "error" in resp.json()


# -- the bound on pending requests: 503 beyond it ----------------------------------------------------------

def test_a_server_admitting_nothing_answers_503(served):
    with make_client(served, max_pending=0) as c:
        resp = c.post("/api/models/reviews/predict", json={"inputs": ["fine"]})
        assert resp.status_code == 503 and "--max-pending 0" in resp.json()["error"]
        assert c.post("/api/models/lm/generate", json={"prompt": "a"}).status_code == 503
        assert c.get("/health").status_code == 200  # the cheap endpoints stay up


class Gate:
    """A predict that waits for :meth:`open`, counting its calls, in front of the real one."""

    def __init__(self, real):
        self.real, self.event, self.calls, self.entered = real, threading.Event(), [], threading.Event()

    def __call__(self, inputs, options, batch_size=64):
        self.calls.append(list(inputs))
        self.entered.set()
        self.event.wait(10)
        return self.real(inputs, options, batch_size)


def _post_in_thread(client, url, body, results, key):
    thread = threading.Thread(target=lambda: results.__setitem__(key, client.post(url, json=body)))
    thread.start()
    return thread


def _wait_for(cond, timeout=10.0):
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError("timed out")
        time.sleep(0.01)


def test_requests_beyond_the_bound_get_503_while_the_worker_is_busy(served):
    gate = Gate(served["reviews"].predict)
    served["reviews"].predict = gate
    url = "/api/models/reviews/predict"
    with make_client(served, max_pending=1) as c:
        results = {}
        first = _post_in_thread(c, url, {"inputs": ["a fine film"]}, results, "first")
        gate.entered.wait(10)
        busy = c.post(url, json={"inputs": ["another"]})
        assert busy.status_code == 503 and "busy" in busy.json()["error"]
        assert c.get("/health").json()["pending"] == 1
        gate.event.set()
        first.join(10)
        assert results["first"].status_code == 200
        assert c.post(url, json={"inputs": ["now there is room"]}).status_code == 200


def test_queued_requests_are_merged_and_a_bad_one_fails_alone(served):
    gate = Gate(served["reviews"].predict)
    served["reviews"].predict = gate
    url = "/api/models/reviews/predict"
    with make_client(served, max_pending=8) as c:
        results, threads = {}, []
        threads.append(_post_in_thread(c, url, {"inputs": ["first"]}, results, 0))
        gate.entered.wait(10)
        for k, text in enumerate(["good film", "   ", "bad film"], start=1):
            threads.append(_post_in_thread(c, url, {"inputs": [text]}, results, k))
        _wait_for(lambda: c.app.state.server.admission.held == 4)
        gate.event.set()
        for t in threads:
            t.join(10)
    assert [results[k].status_code for k in range(4)] == [200, 200, 422, 200]
    assert "inputs[0]: the text is empty" in results[2].json()["error"]
    merged = [call for call in gate.calls if len(call) == 3]
    assert merged and sorted(merged[0]) == sorted(["good film", "   ", "bad film"])  # one call for three requests
    direct = served["reviews"].loaded.predict(["good film", "bad film"])
    assert [results[1].json()["records"][0], results[3].json()["records"][0]] == direct


# -- names, the CLI, import cost ------------------------------------------------------------------------

def test_model_names(tmp_path):
    assert split_spec("reviews=runs/x") == ("reviews", "runs/x")
    assert split_spec("runs/x") == (None, "runs/x")
    odd = tmp_path / "a=b"
    odd.mkdir()
    assert split_spec(str(odd)) == (None, str(odd))  # an existing path is never split
    assert default_name(Path("runs/imdb-rnn/model.safetensors")) == "imdb-rnn"
    assert default_name(Path("exports/my model.safetensors")) == "my-model"


def test_the_same_run_twice_gets_two_names_and_a_clash_is_refused(runs):
    served = load_models([str(runs["reviews"]), str(runs["reviews"])], zoo.load)
    assert list(served) == ["reviews", "reviews-2"]
    with pytest.raises(zoo.ZooUsageError, match="two models are named 'x'"):
        load_models([f"x={runs['reviews']}", f"x={runs['lm']}"], zoo.load)


def test_serve_without_the_extra_says_what_to_install(cli, runs, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "uvicorn" else real(name, *a))
    result = cli("serve", str(runs["reviews"]))
    assert result.exit_code == 1 and "pip install 'zoo[serve]'" in result.output
    assert "Traceback" not in result.output


def test_serve_refuses_a_missing_model_in_one_line(cli, tmp_path):
    result = cli("serve", str(tmp_path / "nothing.safetensors"))
    assert result.exit_code != 0 and "nothing.safetensors" in result.output and "Traceback" not in result.output


def test_zoo_cli_does_not_import_the_server_stack():
    code = "import sys, zoo.cli; print(sorted(m for m in ('starlette', 'uvicorn', 'torch') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(models: list[str], *extra: str) -> tuple[subprocess.Popen, str]:
    """``zoo serve`` in a real process on a free loopback port; returns it and its base URL once healthy."""
    import httpx

    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "zoo", "serve", *models, "--port", str(port),
                             "--log-level", "warning", *extra], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    end = time.monotonic() + 60
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"zoo serve exited {proc.returncode}: {proc.stdout.read()}")
        try:
            if httpx.get(f"{url}/health/live", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("zoo serve did not answer /health/live within 60 s")


def stop_server(proc: subprocess.Popen) -> str:
    proc.terminate()
    try:
        out, _ = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out


@pytest.mark.slow
def test_zoo_serve_runs_under_uvicorn_and_a_dropped_stream_frees_its_slot(runs):
    import httpx

    proc, url = start_server([str(runs["reviews"]), f"lm={runs['lm']}"], "--max-pending", "4")
    try:
        resp = httpx.post(f"{url}/api/models/reviews/predict", json={"inputs": ["great", "awful"]}, timeout=30)
        assert resp.status_code == 200 and len(resp.json()["records"]) == 2
        with httpx.stream("POST", f"{url}/api/models/lm/generate", json={"prompt": "a", "max_new_tokens": 1000},
                          timeout=30) as stream:
            first = next(stream.iter_lines())
            assert first == "event: start"
        _wait_for(lambda: httpx.get(f"{url}/health").json()["pending"] == 0)  # the client left: slot given back
        resp = httpx.post(f"{url}/api/models/reviews/predict", content=b"{oops", headers=JSON, timeout=30)
        assert resp.status_code == 400 and "malformed JSON" in resp.json()["error"]
    finally:
        log = stop_server(proc)
    assert "Traceback" not in log, log
