"""The web app for real: the tiny base and two freshly trained adapters served on loopback, driven through
gradio_client and headless Chromium; planted faults refused by the self-test; bad inputs shown in the page."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from endpoint_server import free_port
from webapp_support import dataset, foreign_adapter, train_adapter, untrained_adapter

from llamafactory_ext.serve.app import AppState, start
from llamafactory_ext.serve.engine import Engine
from llamafactory_ext.serve.votes import read_votes
from llamafactory_ext.webapp import parse_args, serve

pytestmark = [pytest.mark.lf, pytest.mark.slow]
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", "test-artifacts"))


@pytest.fixture(scope="module")
def adapters(tiny_qwen3, run_lf, tmp_path_factory):
    work = tmp_path_factory.mktemp("adapters")
    data = dataset(work / "data")
    a1 = train_adapter(run_lf, tiny_qwen3, data, work / "a1", lr=5e-2, seed=1)
    a2 = train_adapter(run_lf, tiny_qwen3, data, work / "a2", lr=1e-1, seed=2)
    return {"data": data, "a1": a1, "a2": a2, "work": work}


def _shown(pane) -> bool:
    """A pane the page shows with content (a hidden pane comes back as an update dict)."""
    return bool(pane.get("value") if isinstance(pane, dict) else pane)


def _wait(state: AppState, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while state.loading and time.monotonic() < deadline:
        time.sleep(0.3)
    assert not state.loading, f"models not loaded in {timeout} s: {state.engine.state}"


@pytest.fixture(scope="module")
def app(tiny_qwen3, adapters, tmp_path_factory):
    work = tmp_path_factory.mktemp("app")
    alien = foreign_adapter(adapters["a1"], work / "alien", "Qwen/Qwen2.5-7B-Instruct")
    port = free_port()
    args = parse_args(["--model-path", str(tiny_qwen3), "--template", "qwen3", "--adapter", f"a1={adapters['a1']}",
                       "--adapter", f"a2={adapters['a2']}", "--adapter", f"alien={alien}",
                       "--dataset-dir", str(adapters["data"]), "--name", "d", "--votes-dir", str(work / "votes"),
                       "--port", str(port)])
    demo, state = serve(args, block=False)
    _wait(state)
    yield f"http://127.0.0.1:{port}/", state, work
    demo.close()


def test_columns_fill_and_the_self_test_passed(app):
    from gradio_client import Client

    url, state, _ = app
    assert state.problem is None and state.engine.columns == ["base", "a1", "a2"]
    out = Client(url, verbose=False).predict("什么是对称加密？", 8, 0.6, 0.95, True, True, False, api_name="/compare")
    panes, stats = out[:4], out[4:8]
    assert [_shown(p) for p in panes] == [True, True, True, False]  # three answered columns, the fourth slot empty
    assert all("TTFT" in s for s in stats[:3])


def test_foreign_adapter_is_a_message_and_the_app_keeps_serving(app):
    from gradio_client import Client

    url, state, _ = app
    assert "trained on 'Qwen/Qwen2.5-7B-Instruct'" in state.engine.errors["alien"]
    notice = Client(url, verbose=False).predict(api_name="/notice")
    assert "alien" in notice and "自检通过" in notice


@pytest.mark.parametrize(("prompt", "message"), [("", "请输入提示"), ("长" * 5000, "提示过长")])
def test_bad_prompts_are_messages(app, prompt, message):
    from gradio_client import Client

    out = Client(app[0], verbose=False).predict(prompt, 8, 0.6, 0.95, True, True, False, api_name="/compare")
    assert message in out[8]


def test_blind_votes_land_in_the_review_files_and_rank(app):
    from gradio_client import Client

    url, _, work = app
    client = Client(url, verbose=False)
    for outcome in ("a", "b", "tie"):
        out = client.predict("什么是对称加密？", 8, 0.6, 0.95, True, True, True, api_name="/compare")
        assert [_shown(p) for p in out[:4]] == [True, True, False, False]  # two hidden columns only
        ranking, note = client.predict(api_name=f"/vote_{outcome}")
        assert "已记录" in note and "Bradley–Terry" in ranking
    votes = read_votes(work / "votes")
    assert len(votes) == 3 and all({v.a, v.b} <= {"base", "a1", "a2"} for v in votes)


def test_status_panel_refreshes_with_values(app):
    from gradio_client import Client

    text = Client(app[0], verbose=False).predict(api_name="/status")
    assert "CPU" in text and "GiB" in text and "loaded: base + 2 adapter(s)" in text


def test_browser_types_a_prompt_and_every_column_fills(app):
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    opts = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1500,1400"):
        opts.add_argument(flag)
    opts.binary_location = "/usr/bin/chromium"
    driver = webdriver.Chrome(service=webdriver.ChromeService("/usr/bin/chromedriver"), options=opts)
    try:
        driver.get(app[0])
        box = WebDriverWait(driver, 60).until(lambda d: d.find_element(By.CSS_SELECTOR, "#prompt textarea"))
        box.send_keys("什么是对称加密？")
        driver.find_element(By.ID, "go").click()
        WebDriverWait(driver, 180).until(
            lambda d: all("TTFT" in d.find_element(By.ID, f"stats{i}").text for i in range(3)))
        assert "GiB" in driver.find_element(By.ID, "status").text
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "webapp.png"))
    finally:
        driver.quit()


def test_planted_fault_untrained_adapter_refuses_comparison(tiny_qwen3, adapters):
    fake = untrained_adapter(tiny_qwen3, adapters["work"] / "fake")
    state = AppState(Engine({"model_name_or_path": str(tiny_qwen3), "template": "qwen3"},
                            {"tuned": str(fake)}), adapters["work"] / "v1")
    start(state)
    assert "'base' and 'tuned' answer identically" in state.problem


def test_same_adapter_twice_refuses_comparison(tiny_qwen3, adapters):
    state = AppState(Engine({"model_name_or_path": str(tiny_qwen3), "template": "qwen3"},
                            {"x": str(adapters["a1"]), "y": str(adapters["a1"])}), adapters["work"] / "v2")
    start(state)
    assert "'x' and 'y'" in state.problem


def test_wrong_template_is_a_message_not_a_crash(tiny_qwen3, adapters):
    state = AppState(Engine({"model_name_or_path": str(tiny_qwen3), "template": "llama3"},
                            {"a1": str(adapters["a1"])}), adapters["work"] / "v3")
    start(state)
    assert state.engine.state == "load failed" and "not this model's template" in state.problem


def test_missing_adapter_path_is_named(tiny_qwen3, adapters):
    state = AppState(Engine({"model_name_or_path": str(tiny_qwen3), "template": "qwen3"},
                            {"a1": str(adapters["a1"]), "gone": "/nonexistent/lora"}), adapters["work"] / "v4")
    start(state)
    assert "no such folder" in state.engine.errors["gone"] and state.problem is None
