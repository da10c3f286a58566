"""Real distributed runs on CPU (gloo) with the tiny Qwen3, driven by the launch scripts launch.py generates for a
planner recipe: 2 processes on one node, two "nodes" on loopback, and elastic launches (DDP with one worker, DeepSpeed
ZeRO-2 with two) that lose a worker mid-run, restart and finish at the planned final step resumed from the last
checkpoint. The ZeRO-2 run needs `pip install deepspeed` (its CPU install works; DeepSpeed falls back to gloo)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml
from conftest import LF_ENV

from llamafactory_ext.build_dataset import main as build_dataset
from llamafactory_ext.build_recipe import main as build_recipe
from llamafactory_ext.recipe.hardware import describe
from llamafactory_ext.recipe.launch import artefacts
from llamafactory_ext.recipe.models import get_preset
from llamafactory_ext.recipe.strategies import config_texts, recipe_keys

pytestmark = [pytest.mark.lf, pytest.mark.slow]

STEPS = 4  # short: every LF start costs ~15 s per process on 2 shared cores
ELASTIC_STEPS = 8  # long enough that the kill lands well before the end
SAVE = 2
CPU = describe("cpu")
WORDS = ["对称加密", "哈希函数", "数字签名", "密钥交换", "消息认证码", "随机数"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def project(tmp_path_factory, tiny_qwen3) -> Path:
    """A project folder with the tiny dataset and the planner's CPU recipe (overwrite_output_dir stays false)."""
    work = tmp_path_factory.mktemp("dist")
    src = work / "crypto.jsonl"
    src.write_text("".join(json.dumps({"instruction": f"请解释第{i}个概念“{w}”。", "input": "",
                                       "output": f"{w}是密码学的基本概念，第{i}条说明。"}, ensure_ascii=False) + "\n"
                           for i, w in enumerate(WORDS * 8)), encoding="utf-8")
    assert build_dataset(["alpaca", str(src), "--name", "crypto", "--out", str(work / "dataset_info"), "--quiet",
                          "--no-near-dedup"]) == 0
    cwd = os.getcwd()
    os.chdir(work)
    try:
        assert build_recipe(["--model", "qwen3-4b-instruct", "--dataset", "crypto", "--gpu", "cpu", "--stem", "base",
                             "--set", f"model_name_or_path={tiny_qwen3}", f"save_steps={SAVE}", "logging_steps=1",
                             f"eval_steps={SAVE}", "save_total_limit=5"]) == 0
    finally:
        os.chdir(cwd)
    return work


def variant(work: Path, name: str, steps: int, nodes: int = 1, strategy: str = "ddp") -> tuple[Path, dict[str, Path]]:
    """The base recipe with its own output_dir and max_steps, the strategy's keys and configs (strategies.py), and
    its generated launch files."""
    rec = yaml.safe_load((work / "recipes" / "base.yaml").read_text(encoding="utf-8"))
    assert not rec.get("overwrite_output_dir"), "resume needs overwrite_output_dir false"
    shape = get_preset("qwen3-4b-instruct").shape  # the strategy's configs do not depend on the model on CPU
    rec |= {"output_dir": f"saves/{name}", "max_steps": steps} | recipe_keys(strategy, CPU, shape, "recipes")
    for rel, body in config_texts(strategy, CPU, shape).items():
        (work / "recipes" / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / "recipes" / rel).write_text(body, encoding="utf-8")
    path = work / "recipes" / f"{name}.yaml"
    text = yaml.safe_dump(rec, allow_unicode=True, sort_keys=False)
    path.write_text(text, encoding="utf-8")
    files = {}
    for fname, body in artefacts(f"recipes/{name}.yaml", strategy, CPU, nodes, text).items():
        files[fname] = work / "recipes" / fname
        files[fname].write_text(body, encoding="utf-8")
    return work / "saves" / name, files


def env(work: Path, **extra: str) -> dict[str, str]:
    path = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")  # LF calls torchrun by name
    return {**os.environ, **LF_ENV, "PATH": path, "HF_DATASETS_CACHE": str(work / "hf_cache"),
            "PYTHONPATH": str(Path(__file__).resolve().parents[1]), **extra}


def start(work: Path, script: Path, *args: str, **extra: str) -> subprocess.Popen:
    return subprocess.Popen(["bash", str(script), *args], cwd=work, env=env(work, **extra), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def finish(proc: subprocess.Popen, timeout: float = 400) -> str:
    try:
        log, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # this test's own process group
        log, _ = proc.communicate()
        pytest.fail(f"launch did not finish in {timeout}s:\n{log[-4000:]}")
    if proc.returncode:
        dump = Path(proc.args[1]).with_suffix(".log")
        dump.write_text(log, encoding="utf-8")
        pytest.fail(f"launch exited {proc.returncode} (whole log: {dump}):\n{log[-5000:]}")
    return log


def final_step(out: Path) -> int:
    return json.loads((out / "trainer_state.json").read_text(encoding="utf-8"))["global_step"]


def test_two_processes_train_with_gloo(project):
    out, files = variant(project, "ddp2", STEPS)
    log = finish(start(project, files["ddp2_launch.sh"], NPROC_PER_NODE="2", MASTER_PORT=str(free_port())))
    assert "world size 2 (1 node(s) x 2)" in log and "Initializing 2 distributed tasks" in log
    assert re.search(r"preflight: fingerprint [0-9a-f]{12}", log)
    assert final_step(out) == STEPS and (out / "adapter_model.safetensors").is_file()


def test_two_nodes_on_loopback_train_together(project):
    out, files = variant(project, "nodes2", STEPS, nodes=2)
    port = str(free_port())
    common = dict(NNODES="2", NPROC_PER_NODE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
    nodes = [start(project, files["nodes2_launch.sh"], str(rank), **common) for rank in (0, 1)]
    logs = [finish(p) for p in nodes]
    assert "Multi-node training enabled: num nodes: 2, node rank: 0" in logs[0]
    assert all("world size 2 (2 node(s) x 1)" in log for log in logs)
    assert "looks local to this node" in logs[0]  # a tmp folder: the shared-storage warning must show
    assert final_step(out) == STEPS and (out / "adapter_model.safetensors").is_file()


def workers_of(launcher: subprocess.Popen) -> list[psutil.Process]:
    """Training processes started by torchrun's elastic agent (its children), not the agent itself."""
    tree = psutil.Process(launcher.pid).children(recursive=True)
    agents = [p for p in tree if "--rdzv-id" in " ".join(p.cmdline())]
    return [c for a in agents for c in a.children() if "launcher.py" in " ".join(c.cmdline())]


def kill_a_worker_after_first_checkpoint(proc: subprocess.Popen, out: Path, workers: int) -> None:
    first = out / f"checkpoint-{SAVE}" / "trainer_state.json"  # written last in a checkpoint
    deadline = time.monotonic() + 300
    while not first.exists():
        assert proc.poll() is None, f"ended before its first checkpoint:\n{proc.stdout.read()[-4000:]}"
        assert time.monotonic() < deadline, "no checkpoint in time"
        time.sleep(0.1)
    victims = workers_of(proc)
    assert len(victims) == workers, [p.cmdline() for p in victims]
    victims[-1].send_signal(signal.SIGKILL)  # one worker of this test's own launch; its agent must restart the group


def assert_restarted_and_resumed(log: str, out: Path) -> None:
    killed = re.search(r"failed \(exitcode: -9\) local_rank: \d", log)  # torchrun's agent saw the SIGKILL …
    assert killed, log[-4000:]
    resumed = re.search(r"Resuming training from checkpoint with epoch \d+ and global step (\d+)", log[killed.end():])
    assert resumed and int(resumed[1]) >= SAVE, log[-4000:]  # … and the restarted group resumed, in the same launch
    assert final_step(out) == ELASTIC_STEPS and (out / "adapter_model.safetensors").is_file()


def test_elastic_run_survives_a_killed_worker_and_resumes(project):
    out, files = variant(project, "elastic", ELASTIC_STEPS)
    # One worker: on CPU a multi-process DDP run cannot resume its optimizer (transformers 5.6 Trainer loads
    # optimizer.pt with map_location=args.device, accelerate's torch.device("cpu", 0), which torch.load rejects); on
    # GPUs it is cuda:N. preflight_dist warns about it; the ZeRO-2 test below kills one of two workers.
    proc = start(project, files["elastic_launch_elastic.sh"], NPROC_PER_NODE="1", MAX_RESTARTS="2",
                 MASTER_PORT=str(free_port()), RDZV_ID="test-elastic")
    kill_a_worker_after_first_checkpoint(proc, out, workers=1)
    assert_restarted_and_resumed(finish(proc, timeout=500), out)


def test_elastic_zero2_group_loses_one_of_two_workers_and_resumes(project):
    """DeepSpeed ZeRO-2 (gloo on CPU) restores its own optimizer shards, so two workers resume on CPU too."""
    out, files = variant(project, "elastic_z2", ELASTIC_STEPS, strategy="zero2")
    proc = start(project, files["elastic_z2_launch_elastic.sh"], NPROC_PER_NODE="2", MAX_RESTARTS="2",
                 MASTER_PORT=str(free_port()), RDZV_ID="test-elastic-z2")
    kill_a_worker_after_first_checkpoint(proc, out, workers=2)
    log = finish(proc, timeout=500)
    assert "DeepSpeed" in log and (out / f"checkpoint-{ELASTIC_STEPS}" / f"global_step{ELASTIC_STEPS}").is_dir()
    assert_restarted_and_resumed(log, out)
