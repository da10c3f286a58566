"""Supervisor overhead: step time of `python -m llamafactory_ext.train` vs plain `llamafactory-cli train`.

Same recipe (the tiny Qwen3 of tests/tiny_models.py, LoRA SFT, logging every step — the worst case for a
per-log callback), runs alternated to spread machine noise. Step time = LF's own `train_runtime` (the training
loop only, from all_results.json) / steps, so process start-up and pre-flight are not counted.

    python bench/train_overhead.py [--steps 40] [--reps 3] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


def _env(cache: Path, device: str) -> dict[str, str]:
    env = {**os.environ, "DISABLE_VERSION_CHECK": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "WANDB_DISABLED": "true", "TOKENIZERS_PARALLELISM": "false", "MPLBACKEND": "Agg",
           "HF_DATASETS_CACHE": str(cache)}
    if device == "cpu":
        # one intra-op thread: on a shared CPU, spinning OpenMP threads turn other jobs' load into 20x step times
        env.update(CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")
    return env


def _one(kind: str, recipe_args: dict, work: Path, env: dict[str, str], n: int) -> float:
    from run_support import write_recipe

    out = work / f"{kind}_{n}"
    recipe = write_recipe(work / f"{kind}_{n}.yaml", {**recipe_args, "output_dir": str(out)})
    command = [sys.executable, "-m", "llamafactory.cli", "train", str(recipe)] if kind == "plain" else \
        [sys.executable, "-m", "llamafactory_ext.train", str(recipe), "--yes", "--skip-lf-check"]
    proc = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{kind} run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    runtime = json.loads((out / "all_results.json").read_text())["train_runtime"]
    shutil.rmtree(out)
    return runtime / recipe_args["max_steps"]


def callback_cost(calls: int = 2000) -> float:
    """Seconds per optimizer step that the callback adds (one on_log + one on_step_end), measured in-process."""
    import time

    from transformers import TrainerControl, TrainerState

    from llamafactory_ext.run.callbacks import SupervisorCallback

    with tempfile.TemporaryDirectory() as tmp:
        cb, state, control = SupervisorCallback(tmp), TrainerState(max_steps=calls), TrainerControl()
        cb.max_steps = calls
        start = time.perf_counter()
        for step in range(1, calls + 1):
            state.global_step, state.num_input_tokens_seen = step, 100 * step
            cb.on_step_end(None, state, control)
            cb.on_log(None, state, control, logs={"loss": 2.0, "grad_norm": 0.9, "learning_rate": 1e-4, "epoch": 0.1})
        return (time.perf_counter() - start) / calls


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--cutoff", type=int, default=256)
    opts = p.parse_args(argv)
    from run_support import recipe_args, rows, write_dataset
    from tiny_models import build_qwen3

    with tempfile.TemporaryDirectory(prefix="lfx_overhead_") as tmp:
        work = Path(tmp)
        model = build_qwen3(work / "model")
        data = write_dataset(work / "data", data=rows(256, repeat=4))
        args = recipe_args(model, data, work / "out", max_steps=opts.steps, save_steps=10**6, logging_steps=1,
                           per_device_train_batch_size=opts.batch, cutoff_len=opts.cutoff, save_strategy="no",
                           bf16=opts.device == "cuda")
        env, times = _env(work / "cache", opts.device), {"plain": [], "supervised": []}
        for n in range(opts.reps):
            for kind in ("plain", "supervised") if n % 2 == 0 else ("supervised", "plain"):
                times[kind].append(_one(kind, args, work, env, n))
                print(f"{kind:10s} rep {n}: {times[kind][-1] * 1000:.1f} ms/step", flush=True)
    plain, sup = min(times["plain"]), min(times["supervised"])  # the least-disturbed run of each
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):  # the callback prints a live line per log
        cost = callback_cost()
    print(json.dumps({"device": opts.device, "steps": opts.steps, "reps": opts.reps,
                      "plain_ms_per_step": [round(t * 1000, 2) for t in times["plain"]],
                      "supervised_ms_per_step": [round(t * 1000, 2) for t in times["supervised"]],
                      "min_plain_ms": round(plain * 1000, 2), "min_supervised_ms": round(sup * 1000, 2),
                      "wall_overhead_pct": round(100 * (sup / plain - 1), 2),
                      "callback_ms_per_step": round(cost * 1000, 3),
                      "callback_pct_of_min_plain_step": round(100 * cost / plain, 2)}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
