"""The supervisor on real LLaMA-Factory runs of the tiny Qwen3 on CPU: report, NaN alert, Ctrl-C + resume, a real
out-of-memory recovered by the ladder, and the HTML report in headless Chromium."""

from __future__ import annotations

import json
import math
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from run_support import (
    Lines,
    jsonl,
    lf_env,
    recipe_args,
    rows,
    run_train,
    train_command,
    write_dataset,
    write_recipe,
)

pytestmark = [pytest.mark.lf, pytest.mark.slow]

ODD_NAME = "tiny<script>alert(1)</script>"  # a dataset name the report must escape


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hf_datasets_cache")


def _state(out: Path) -> dict:
    return json.loads((out / "trainer_state.json").read_text(encoding="utf-8"))


def _record(out: Path) -> dict:
    return json.loads((out / "run_record.json").read_text(encoding="utf-8"))


def _logs(out: Path) -> list[dict]:
    return [e for e in jsonl(out / "run_events.jsonl") if e.get("event") == "log"]


@pytest.fixture(scope="module")
def normal(tmp_path_factory, tiny_qwen3, cache) -> tuple[Path, subprocess.CompletedProcess]:
    work = tmp_path_factory.mktemp("normal")
    data = write_dataset(work / "data", name=ODD_NAME)
    recipe = write_recipe(work / "r.yaml", recipe_args(tiny_qwen3, data, Path("out"), dataset=ODD_NAME))
    return work / "out", run_train(recipe, "--yes", cache=cache, cwd=work)


def test_normal_run_trains_without_alerts_and_writes_the_report(normal):
    out, proc = normal
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "global 2" in proc.stdout and "[lfx] step 6/6" in proc.stdout  # summary, then live progress
    logs = [e for e in _logs(out) if "loss" in e]
    assert [e["step"] for e in logs] == [1, 2, 3, 4, 5, 6]
    assert all(math.isfinite(e["grad_norm"]) and e["memory_current"] > 0 and e["time"] > 0 for e in logs)
    assert jsonl(out / "alerts.jsonl") == []  # no false alert on a clean run
    record = _record(out)
    assert record["status"] == "done" and [a["status"] for a in record["attempts"]] == ["done"]
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "## Alerts\nNone." in md and f"| final loss | {logs[-1]['loss']} |" in md


def test_report_opens_in_headless_chromium_with_plots_alerts_and_escaped_names(normal, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.common.by import By

    out, _ = normal
    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1100,4000"):
        options.add_argument(flag)
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    driver = webdriver.Chrome(options=options)
    try:
        driver.get((out / "report.html").as_uri())
        text = driver.find_element(By.TAG_NAME, "body").text
        shot = tmp_path / "report.png"
        assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
        images = driver.find_elements(By.TAG_NAME, "img")
        scripts = driver.find_elements(By.TAG_NAME, "script")
        loaded = driver.execute_script("return Array.from(document.images).every(i => i.naturalWidth > 0)")
    finally:
        driver.quit()
    for title in ("Training loss", "Learning rate", "Gradient norm", "Memory", "Throughput", "Alerts", "Attempts"):
        assert title in text
    final = [e for e in _logs(out) if "loss" in e][-1]["loss"]
    assert str(final) in text and "No alerts." in text
    assert ODD_NAME in text and scripts == []  # shown as text, never run
    assert len(images) >= 5 and loaded  # embedded PNGs render: nothing is fetched


def test_report_cli_rebuilds_a_plain_lf_output_dir(normal, tmp_path):
    out, _ = normal
    plain = tmp_path / "plain"
    shutil.copytree(out, plain)
    for name in ("run_events.jsonl", "alerts.jsonl", "run_record.json", "report.html", "report.md"):
        (plain / name).unlink(missing_ok=True)  # what llamafactory-cli leaves: LF's own logs only
    proc = subprocess.run([sys.executable, "-m", "llamafactory_ext.report", str(plain)], capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    md = (plain / "report.md").read_text(encoding="utf-8")
    assert "run_events.jsonl: no timestamps" in md and "run_record.json: no attempts" in md
    html = (plain / "report.html").read_text(encoding="utf-8")
    assert "Gradient norm" in html and "Training loss" in html  # grad_norm from trainer_state.json


def test_absurd_learning_rate_raises_a_nan_alert_and_stops_without_saving_it(tmp_path, tiny_qwen3, cache):
    data = write_dataset(tmp_path / "data")
    recipe = write_recipe(tmp_path / "r.yaml", recipe_args(tiny_qwen3, data, tmp_path / "out", learning_rate=1.0e30,
                                                           save_steps=1))
    proc = run_train(recipe, "--yes", "--stop-on", "nonfinite", "--lang", "zh", cache=cache, cwd=tmp_path)
    assert proc.returncode == 3, proc.stdout[-3000:] + proc.stderr[-3000:]
    alerts = jsonl(tmp_path / "out" / "alerts.jsonl")
    assert alerts and alerts[0]["kind"] == "nonfinite" and "learning_rate" in alerts[0]["message"]
    assert "训练发散" in alerts[0]["message"] and "[lfx alert]" in proc.stdout
    history = _state(tmp_path / "out")["log_history"]
    first_bad = next(r["step"] for r in history
                     if not math.isfinite(r.get("grad_norm", 0.0)) or not math.isfinite(r.get("loss", 0.0))
                     or (r.get("loss") == 0.0))
    assert alerts[0]["step"] == first_bad  # within one logging interval (logging_steps: 1)
    saved = sorted(int(p.name.split("-")[1]) for p in (tmp_path / "out").glob("checkpoint-*"))
    assert saved and saved[-1] < first_bad  # the NaN step was not checkpointed: resume starts before it
    assert _record(tmp_path / "out")["status"] == "stopped"


# After the step-3 line, 46 steps remain for the Ctrl-C to land in (>= 2 s at the fastest, ~0.05 s a step; steps slow
# down with load just as the test's reaction does), so it stops the run mid-way; measured: it lands at step 4.
CTRL_C_STEPS = 50


def test_ctrl_c_stops_cleanly_and_the_printed_command_resumes_to_the_same_final_step(tmp_path, tiny_qwen3, cache):
    data = write_dataset(tmp_path / "data", data=rows(64))
    recipe = write_recipe(tmp_path / "r.yaml", recipe_args(tiny_qwen3, data, Path("out"), max_steps=CTRL_C_STEPS,
                                                           save_steps=1000, overwrite_output_dir=True))
    out = tmp_path / "out"
    proc = subprocess.Popen(train_command(recipe, "--yes"), cwd=tmp_path, env=lf_env(cache), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    lines = Lines(proc.stdout)
    try:  # the live line of step 3, printed by the worker's callback: training is under way, Ctrl-C now
        assert lines.wait_for(f"[lfx] step 3/{CTRL_C_STEPS}", timeout=600), f"no step 3 (exit {proc.poll()})"
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    stdout = lines.text()
    assert proc.returncode == 130, stdout[-3000:]
    first = _record(out)["attempts"][0]
    stop = first["end_step"]
    # the Ctrl-C landed mid-run (not after the last step), and the worker saved where it stopped
    assert first["status"] == "interrupted" and 3 <= stop < CTRL_C_STEPS and (out / f"checkpoint-{stop}").is_dir()
    stops = [e for e in jsonl(out / "run_events.jsonl") if e.get("event") == "stop"]
    assert [(e["step"], e["reason"].startswith("interrupted")) for e in stops] == [(stop, True)]
    command = shlex.split(stdout.split("resume with:\n", 1)[1].strip().splitlines()[0])
    assert "overwrite_output_dir=false" in command
    resumed = subprocess.run(command, cwd=tmp_path, env=lf_env(cache), capture_output=True, text=True,
                             timeout=600, check=False, stdin=subprocess.DEVNULL)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    state, record = _state(out), _record(out)
    assert state["global_step"] == state["max_steps"] == CTRL_C_STEPS
    assert [a["status"] for a in record["attempts"]] == ["interrupted", "done"]
    assert record["attempts"][1]["resumed_from"] == stop
    starts = [e["step"] for e in jsonl(out / "run_events.jsonl") if e.get("event") == "start"]
    assert starts == [0, stop]


# A REAL out-of-memory: the worker runs under RLIMIT_AS. Measured on this tiny model (VmPeak above the address
# space after imports, one step of 2048-token rows): ~1.19 GiB at batch 32, ~0.69 GiB at batch 16, ~0.71 GiB at 8;
# a resumed attempt also holds the loaded checkpoint. With 1.05 GiB, batch 32 fails in the allocator on the first
# long step and a smaller batch fits (16, or 8 when the resume overhead pushes 16 over: ≤2 restarts either way).
OOM_BUDGET_GB = "1.05"


def test_real_cpu_oom_steps_down_the_ladder_and_keeps_the_global_batch(tmp_path, tiny_qwen3, cache):
    # 64 short rows first (steps 1-2 fit at batch 32, checkpoint-2 saved), then 64 long rows (step 3 does not)
    data = write_dataset(tmp_path / "data", data=rows(64) + rows(64, repeat=90))
    recipe = write_recipe(tmp_path / "r.yaml", recipe_args(
        tiny_qwen3, data, tmp_path / "out", per_device_train_batch_size=32, cutoff_len=2048, max_steps=4,
        save_steps=2, disable_shuffling=True))
    proc = run_train(recipe, "--yes", "--memory-budget-gb", OOM_BUDGET_GB, cache=cache, cwd=tmp_path, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = tmp_path / "out"
    attempts = _record(out)["attempts"]
    assert 2 <= len(attempts) <= 3 and [a["status"] for a in attempts] == ["oom"] * (len(attempts) - 1) + ["done"]
    assert all("can't allocate memory" in a["message"] for a in attempts[:-1])  # the CPU allocator, for real
    batch, accum = 32, 1
    for a in attempts[1:]:  # each restart: half the batch, twice the accumulation, resumed at checkpoint-2
        assert a["changes"] == {"per_device_train_batch_size": [batch, batch // 2],
                                "gradient_accumulation_steps": [accum, accum * 2]}
        batch, accum = batch // 2, accum * 2
        assert a["resumed_from"] == 2
    assert {a["global_batch"] for a in attempts} == {32}
    state = _state(out)
    # (trainer_state's own train_batch_size is restored from checkpoint-2 on resume, so it keeps saying 32)
    assert state["global_step"] == state["max_steps"] == 4
    starts = [e for e in jsonl(out / "run_events.jsonl") if e.get("event") == "start"]  # what the Trainer ran with
    assert [(e["step"], e["global_batch"], e["max_steps"]) for e in starts] == [(0, 32, 4)] + [(2, 32, 4)] * (
        len(attempts) - 1)
    assert (starts[-1]["per_device_batch"], starts[-1]["accumulation"]) == (batch, accum)
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "| 1 | oom |" in md and f"| {len(attempts)} | done |" in md
