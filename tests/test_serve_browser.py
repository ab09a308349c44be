"""zoo serve's page in a real browser: Debian's headless Chromium driven through Selenium.

Skipped, saying why, when Selenium, /usr/bin/chromium or /usr/bin/chromedriver is missing
(.ci/run installs Chromium). The screenshot goes to the test's tmp_path, and also to
``$ZOO_SERVE_SCREENSHOT`` when that is set (``benchmarks/results/serve_page.png`` for the README).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="zoo serve needs the serve extra: pip install 'zoo[serve]'")
pytest.importorskip("uvicorn", reason="zoo serve needs the serve extra: pip install 'zoo[serve]'")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")

from test_serve import TINY_GPT, TINY_RNN, events, start_server, stop_server  # noqa: E402

import zoo  # noqa: E402
from zoo import api

CHROMIUM = os.environ.get("ZOO_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("ZOO_CHROMEDRIVER", "/usr/bin/chromedriver")
REVIEWS = ["A warm, funny film; I loved every minute of it.", "Wooden acting and a dull plot. Avoid."]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    need_chromium()
    out = tmp_path_factory.mktemp("browser")
    api.reset()
    zoo.train("text-rnn", TINY_RNN, out=out / "reviews")
    zoo.train("text-gpt", TINY_GPT, out=out / "lm")
    api.reset()
    proc, url = start_server([str(out / "reviews"), f"lm={out / 'lm'}"], "--max-input-chars", "200")
    yield url
    stop_server(proc)


def need_chromium() -> None:
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not Path(path).is_file():
            pytest.skip(f"{path} is missing: apt-get install {package} (.ci/run installs it)")


@pytest.fixture(scope="module")
def browser():
    need_chromium()
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="zoo-chromium-")
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run", "--disable-sync", f"--user-data-dir={profile}",
                "--window-size=1280,900"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def wait_for(driver, css: str, timeout: float = 30):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(lambda d: d.find_elements(By.CSS_SELECTOR, css))


def open_model(driver, url: str, name: str):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    driver.get(f"{url}/")
    wait_for(driver, "#model option")
    Select(driver.find_element(By.ID, "model")).select_by_value(name)
    box = driver.find_element(By.ID, "input")
    box.clear()
    return box


def test_the_page_shows_class_probabilities_as_bars(server, browser, tmp_path):
    import httpx
    from selenium.webdriver.common.by import By

    expected = httpx.post(f"{server}/api/models/reviews/predict", json={"inputs": REVIEWS}).json()["records"]
    open_model(browser, server, "reviews").send_keys("\n".join(REVIEWS))
    browser.find_element(By.ID, "run").click()
    views = wait_for(browser, "[data-view=bars]")
    assert len(views) == 2
    for view, rec in zip(views, expected):
        assert view.find_element(By.CSS_SELECTOR, ".verdict").text == rec["label"]
        labels = [e.text for e in view.find_elements(By.CSS_SELECTOR, ".bar-label")]
        values = [e.text for e in view.find_elements(By.CSS_SELECTOR, ".bar-value")]
        assert labels == [p["label"] for p in rec["probabilities"]]
        assert values == [f"{100 * p['probability']:.1f}%" for p in rec["probabilities"]]
        widths = [e.size["width"] for e in view.find_elements(By.CSS_SELECTOR, ".bar-fill")]
        assert widths[0] >= widths[-1] > 0  # the likeliest class has the longest bar
    card = browser.find_element(By.ID, "card-facts").text
    assert "classify:text-rnn" in card and "accuracy" in card
    shot = tmp_path / "serve_page.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    if os.environ.get("ZOO_SERVE_SCREENSHOT"):
        target = Path(os.environ["ZOO_SERVE_SCREENSHOT"])
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, target)


def test_generated_text_streams_into_the_page(server, browser):
    import httpx
    from selenium.webdriver.common.by import By

    body = {"prompt": "The ", "max_new_tokens": 40, "seed": 7}
    last = events(httpx.post(f"{server}/api/models/lm/generate", json=body).text)[-1]
    assert last[0] == "done"
    open_model(browser, server, "lm").send_keys("The ")
    for name in ("max_new_tokens", "seed"):
        field = browser.find_element(By.CSS_SELECTOR, f"[data-option={name}]")
        field.clear()
        field.send_keys(str(body[name]))
    browser.find_element(By.ID, "run").click()
    stream = wait_for(browser, "[data-view=stream][data-done=true]")[0]
    shown = browser.execute_script("return arguments[0].textContent", stream)
    assert shown == "The " + last[1]["text"]  # the prompt, then every streamed piece


def test_a_refused_input_shows_the_servers_error(server, browser):
    from selenium.webdriver.common.by import By

    open_model(browser, server, "reviews").send_keys("x" * 250)
    browser.find_element(By.ID, "run").click()
    error = wait_for(browser, "#error:not([hidden])")[0]
    assert "inputs[0] has 250 characters" in error.text and "--max-input-chars" in error.text
    assert not browser.find_elements(By.CSS_SELECTOR, "[data-view=bars]")


def test_a_server_with_a_key_asks_for_it_once(tmp_path_factory, browser, monkeypatch):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    out = tmp_path_factory.mktemp("keyed")
    api.reset()
    zoo.train("text-rnn", TINY_RNN, out=out / "reviews")
    api.reset()
    monkeypatch.setenv("ZOO_SERVE_API_KEY", "page-key")
    proc, url = start_server([str(out / "reviews")])
    try:
        browser.get(f"{url}/")
        alert = WebDriverWait(browser, 30).until(lambda d: d.switch_to.alert)
        assert "API key" in alert.text
        alert.send_keys("page-key")
        alert.accept()
        wait_for(browser, "#model option")  # the models listed once the key was given
        box = browser.find_element(By.ID, "input")
        box.clear()
        box.send_keys(REVIEWS[0])
        browser.find_element(By.ID, "run").click()
        assert len(wait_for(browser, "[data-view=bars]")) == 1  # the predict carried the key too
    finally:
        stop_server(proc)
