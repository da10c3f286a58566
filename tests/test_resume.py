"""End to end on CPU with the tiny Qwen3: a run killed after its first checkpoint resumes from it to the same final
step when the same recipe is run again, and a second dataset's recipe trains into its own folder, leaving the first
run's files byte-identical. The recipes are the planner's (CPU dry run + the step counts a test can afford)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import LF_ENV, lf_command

from llamafactory_ext.build_dataset import main as build_dataset
from llamafactory_ext.build_recipe import main as build_recipe

pytestmark = [pytest.mark.lf, pytest.mark.slow]

MAX_STEPS = 10  # short enough for 2 shared cores
# One checkpoint mid-way: after checkpoint-5 is complete, 5 more steps (~1 s unloaded, longer under load) run before
# the next save even begins, so the kill lands between the two saves, never inside one (a half-written checkpoint is
# what a resume would then pick, and fail on).
SAVE = 5
WORDS = ["对称加密", "哈希函数", "数字签名", "密钥交换", "消息认证码", "随机数", "椭圆曲线", "分组密码"]


def rows(tag: str) -> list[dict]:
    return [{"instruction": f"{tag}：请解释第{i}个概念“{w}”。", "input": "",
             "output": f"{w}是密码学中的基本概念之一，第{i}条说明：它保护数据的机密性或完整性。"}
            for i, w in enumerate(WORDS * 6)]


def make_dataset(work: Path, name: str) -> None:
    src = work / f"{name}.jsonl"
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows(name)), encoding="utf-8")
    assert build_dataset(["alpaca", str(src), "--name", name, "--out", str(work / "dataset_info"), "--quiet",
                          "--no-near-dedup"]) == 0


def plan(work: Path, name: str, tiny: Path, *extra: str) -> int:
    cwd = os.getcwd()
    os.chdir(work)  # recipes point at saves/ and dataset_info/ relative to the launch folder, as from a project root
    try:
        return build_recipe(["--model", "qwen3-4b-instruct", "--dataset", name, "--gpu", "cpu",
                             "--set", f"model_name_or_path={tiny}", f"max_steps={MAX_STEPS}", f"save_steps={SAVE}",
                             f"eval_steps={SAVE}", "save_total_limit=3", *extra])
    finally:
        os.chdir(cwd)


def lf(work: Path, recipe: Path, cache: Path, log: Path) -> subprocess.Popen:
    """`llamafactory-cli train RECIPE` in its own process group, its output in `log` (a pipe nobody reads could fill
    up and stall the training)."""
    env = {**os.environ, **LF_ENV, "HF_DATASETS_CACHE": str(cache)}
    with log.open("w", encoding="utf-8") as sink:
        return subprocess.Popen(lf_command(["train", str(recipe)]), cwd=work, env=env, stdout=sink,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)


def finish(proc: subprocess.Popen, log: Path, timeout: float = 900) -> str:
    try:
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    text = log.read_text(encoding="utf-8", errors="replace")
    assert proc.returncode == 0, text[-4000:]
    return text


def saved_step(state: Path) -> int | None:
    """The step of a checkpoint whose trainer_state.json (written last in a checkpoint) is complete, else None."""
    try:
        return json.loads(state.read_text(encoding="utf-8"))["global_step"]
    except (OSError, ValueError, KeyError):  # not there yet, or still being written
        return None


def kill_after_first_checkpoint(proc: subprocess.Popen, out: Path, log: Path, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while saved_step(out / f"checkpoint-{SAVE}" / "trainer_state.json") != SAVE:
        assert proc.poll() is None, f"training ended before its first checkpoint:\n{log.read_text()[-4000:]}"
        assert time.monotonic() < deadline, f"no checkpoint-{SAVE} within {timeout} s:\n{log.read_text()[-4000:]}"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # at once: this test's own process group, LF and nothing else
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "training finished before the kill"


def tree_hash(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_killed_run_resumes_and_a_second_dataset_never_touches_the_first(tmp_path, tiny_qwen3):
    work, cache = tmp_path / "work", tmp_path / "cache"
    work.mkdir()
    make_dataset(work, "alpha")
    assert plan(work, "alpha", tiny_qwen3) == 0
    recipe = work / "recipes" / "qwen3_instruct_lora.yaml"
    out = work / yaml.safe_load(recipe.read_text(encoding="utf-8"))["output_dir"]
    assert out.parts[-2:] == ("alpha", "sft") and "overwrite_output_dir" not in recipe.read_text(encoding="utf-8")

    proc = lf(work, recipe, cache, tmp_path / "first.log")
    kill_after_first_checkpoint(proc, out, tmp_path / "first.log")
    done = sorted(int(p.name.split("-")[1]) for p in out.glob("checkpoint-*"))
    # killed mid-run, between the first save and the next one: only the first checkpoint, no final adapter
    assert done == [SAVE] and not (out / "adapter_model.safetensors").exists(), done

    log = finish(lf(work, recipe, cache, tmp_path / "again.log"), tmp_path / "again.log")  # same recipe, unchanged
    assert f"Resuming training from {out.relative_to(work).as_posix()}/checkpoint-{done[-1]}" in log.replace(
        str(work) + "/", "")
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == MAX_STEPS and (out / "adapter_model.safetensors").is_file()

    # the same plan again is this run (it would resume); another rank into the same folder is refused
    before = tree_hash(out)
    assert plan(work, "alpha", tiny_qwen3, "lora_rank=4") == 2
    assert tree_hash(out) == before

    # a second dataset: refused under the first one's recipe file name, then planned and trained apart
    make_dataset(work, "beta")
    assert plan(work, "beta", tiny_qwen3) == 2  # recipes/qwen3_instruct_lora.yaml holds alpha's recipe
    assert plan(work, "beta", tiny_qwen3, "max_steps=2", "--stem", "beta_lora") == 0
    beta = work / "recipes" / "beta_lora.yaml"
    beta_out = work / yaml.safe_load(beta.read_text(encoding="utf-8"))["output_dir"]
    assert beta_out != out and not beta_out.is_relative_to(out) and not out.is_relative_to(beta_out)
    finish(lf(work, beta, cache, tmp_path / "beta.log"), tmp_path / "beta.log")
    assert (beta_out / "adapter_model.safetensors").is_file() and tree_hash(out) == before
    assert recipe.read_text(encoding="utf-8").count("alpha_train") == 1  # alpha's recipe file untouched


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
