"""The supervisor loop (RUN flow: pre-flight passed → **launch worker, watch, step down the OOM ladder** → report).

Launches `llamafactory_ext.run.worker` as a child (through torchrun with several GPUs or FORCE_TORCHRUN=1),
forwards Ctrl-C to it as a clean-stop request, reads how the attempt ended, and on an out-of-memory applies the next
ladder rung and resumes from the last checkpoint. Every attempt lands in run_record.json.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import ladder
from .preflight import LOCK
from .record import ALERTS, EVENTS, Attempt, RunRecord, save

EXIT = {"done": 0, "error": 1, "stopped": 3, "oom": 4, "interrupted": 130}


@dataclass
class Options:
    lang: str = "en"
    stop_on: str | None = None
    max_attempts: int = ladder.MAX_ATTEMPTS
    memory_budget_gb: float | None = None
    world: int = 1
    machine: ladder.Machine = ladder.Machine(gpu=False, liger=False, bitsandbytes=False)


def checkpoints(out: Path) -> list[int]:
    if not out.is_dir():
        return []
    return sorted(int(p.name.split("-")[1]) for p in out.iterdir() if re.fullmatch(r"checkpoint-\d+", p.name))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker_command(spec: Path, world: int) -> list[str]:
    """The worker directly, or as torchrun's entry (torch.distributed.run via this interpreter: no PATH lookup)."""
    entry = ["-m", "llamafactory_ext.run.worker", str(spec)]
    if world <= 1 and os.environ.get("FORCE_TORCHRUN", "0").lower() not in ("1", "true"):
        return [sys.executable, *entry]
    env = os.environ.get
    return [sys.executable, "-m", "torch.distributed.run", "--nnodes", env("NNODES", "1"),
            "--node_rank", env("NODE_RANK", "0"), "--nproc_per_node", env("NPROC_PER_NODE", str(world)),
            "--master_addr", env("MASTER_ADDR", "127.0.0.1"), "--master_port", env("MASTER_PORT", str(_free_port())),
            *entry]


def _forward_sigint(proc: subprocess.Popen, torchrun: bool) -> None:
    """Ctrl-C → a clean-stop request to the training processes (the ranks, not torchrun, which would kill them)."""
    targets = [proc.pid]
    if torchrun:
        import psutil

        targets = [c.pid for c in psutil.Process(proc.pid).children()]
    for pid in targets:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGINT)


def _run_worker(command: list[str], cwd: Path) -> int:
    # A session of its own: a terminal's Ctrl-C reaches the supervisor only, which forwards it exactly once.
    proc = subprocess.Popen(command, cwd=cwd, start_new_session=True)
    torchrun = "torch.distributed.run" in command
    # SIGTERM / SIGHUP (kill, a dropped ssh session) become the same clean stop: the worker must never outlive us
    # as an orphan still training into output_dir while a new run starts there.
    handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {s: signal.signal(s, lambda _s, _f: _forward_sigint(proc, torchrun)) for s in handled}
    try:
        while True:
            try:
                return proc.wait()
            except InterruptedError:
                continue
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _attempt(n: int, args: dict[str, Any], opts: Options, out: Path, cwd: Path,
             changes: dict[str, list[Any]]) -> Attempt:
    resumed = checkpoints(out)[-1] if checkpoints(out) and not args.get("overwrite_output_dir") else None
    attempt = Attempt(n=n, started=time.time(), changes=changes, resumed_from=resumed,
                      global_batch=ladder.global_batch(args, opts.world))
    with tempfile.TemporaryDirectory(prefix="lfx_run_") as tmp:
        spec, result = Path(tmp) / "spec.json", Path(tmp) / "result.json"
        spec.write_text(json.dumps({"args": args, "result": str(result), "lang": opts.lang,
                                    "stop_on": opts.stop_on, "attempt": n,
                                    "memory_budget_gb": opts.memory_budget_gb}), encoding="utf-8")
        attempt.command = worker_command(spec, opts.world)
        code = _run_worker(attempt.command, cwd)
        row = json.loads(result.read_text(encoding="utf-8")) if result.is_file() else \
            {"status": "error", "message": f"the worker exited {code} without a result (killed?)"}
    attempt.ended, attempt.status = time.time(), row["status"]
    attempt.reason, attempt.message = row.get("reason", ""), row.get("message", "")
    attempt.end_step = _last_step(out)
    return attempt


def _last_step(out: Path) -> int | None:
    try:
        return int(json.loads((out / "trainer_state.json").read_text(encoding="utf-8"))["global_step"])
    except (OSError, ValueError, KeyError):
        steps = checkpoints(out)
        return steps[-1] if steps else None


def _step_down(args: dict[str, Any], opts: Options) -> dict[str, list[Any]] | None:
    rung = ladder.next_rung(args, opts.machine)
    if rung is None:
        return None
    changes = {k: [args.get(k), v] for k, v in rung.changes.items()}
    if args.get("overwrite_output_dir"):  # a restart must resume, not wipe the checkpoints
        changes["overwrite_output_dir"] = [True, False]
    print(f"[lfx] out of memory → {rung.name}: {rung.why}; resuming from the last checkpoint", flush=True)
    return changes


def fresh_start(out: Path, args: dict[str, Any]) -> None:
    """A run from step 0 must not inherit a previous run's events and alerts."""
    if args.get("overwrite_output_dir") or not checkpoints(out):
        for name in (EVENTS, ALERTS):
            (out / name).unlink(missing_ok=True)


def supervise(args: dict[str, Any], record: RunRecord, opts: Options, cwd: Path) -> int:
    out = cwd / str(args["output_dir"])
    out.mkdir(parents=True, exist_ok=True)
    fresh_start(out, args)
    (out / LOCK).write_text(str(os.getpid()))
    try:
        status = _loop(dict(args), record, opts, out, cwd)
    finally:
        (out / LOCK).unlink(missing_ok=True)
    return EXIT.get(status, 1)


def _loop(args: dict[str, Any], record: RunRecord, opts: Options, out: Path, cwd: Path) -> str:
    changes: dict[str, list[Any]] = {}
    for i in range(opts.max_attempts):  # bounded: the first try plus max_attempts - 1 restarts
        attempt = _attempt(len(record.attempts) + 1, args, opts, out, cwd, changes)
        record.attempts.append(attempt)
        save(record, out)
        if attempt.status != "oom" or i == opts.max_attempts - 1:
            break
        changes = _step_down(args, opts) or {}
        if not changes:
            break
        args.update({k: new for k, (_, new) in changes.items()})
    record.status, record.ended = record.attempts[-1].status, time.time()
    record.resume_command = resume_command(record, args) if record.status != "done" else None
    save(record, out)
    return record.status


def resume_command(record: RunRecord, args: dict[str, Any]) -> str:
    """The command that continues this run: same recipe and overrides, the ladder's settings, never overwriting."""
    sets = dict(s.split("=", 1) for s in record.overrides)
    for attempt in record.attempts:
        sets.update({k: json.dumps(new) if not isinstance(new, str) else new for k, (_, new) in attempt.changes.items()})
    sets["overwrite_output_dir"] = "false"
    words = [sys.executable, "-m", "llamafactory_ext.train", record.recipe or "RECIPE.yaml",
             *(f"{k}={v}" for k, v in sets.items()), "--yes"]
    return shlex.join(words)
