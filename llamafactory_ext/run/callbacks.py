"""The in-process callback (RUN flow: LF's Trainer → **SupervisorCallback** → events, alerts, clean stops).

Runs inside the worker, handed to `run_exp(args, callbacks=[...])`. The Trainer's `logs` carry `grad_norm` (LF's
trainer_log.jsonl does not); this adds a wall-clock time and the *current* memory, appends one event per log to
`run_events.jsonl`, feeds the alert rules, prints a live line, and stops at a clean point on request (Ctrl-C) or
on an alert named in `--stop-on`. Only rank 0 writes; the stop decision is agreed by all ranks.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from . import progress
from .alerts import Monitor
from .record import ALERTS, EVENTS


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # "nan" / "inf": JSON has no NaN; the report reads them back with float()
    return value


def append_jsonl(path: Path, row: dict[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps({k: _json_safe(v) for k, v in row.items()}, ensure_ascii=False) + "\n")


class Memory:
    """Current (not peak) memory: torch's allocated bytes + NVML utilisation on a GPU, the process RSS on CPU."""

    def __init__(self) -> None:
        import torch

        self.cuda = torch.cuda.is_available()
        self.nvml = None
        if self.cuda:
            try:
                import pynvml  # nvidia-ml-py

                pynvml.nvmlInit()
                self.nvml = pynvml.nvmlDeviceGetHandleByIndex(torch.cuda.current_device())
            except Exception:  # no NVML library or driver mismatch: torch's counters still work
                self.nvml = None

    def sample(self) -> dict[str, Any]:
        if self.cuda:
            import torch

            row: dict[str, Any] = {"memory_current": torch.cuda.memory_allocated(), "memory_kind": "cuda"}
            if self.nvml is not None:
                import pynvml

                row["gpu_util"] = pynvml.nvmlDeviceGetUtilizationRates(self.nvml).gpu
                row["gpu_used"] = pynvml.nvmlDeviceGetMemoryInfo(self.nvml).used
            return row
        import psutil

        return {"memory_current": psutil.Process().memory_info().rss, "memory_kind": "rss"}


class SupervisorCallback(TrainerCallback):
    def __init__(self, output_dir: str, lang: str = "en", stop_on: frozenset[str] = frozenset(),
                 attempt: int = 1) -> None:
        self.out = Path(output_dir)
        self.stop_on, self.attempt = stop_on, attempt
        self.monitor = Monitor(lang=lang)
        self.memory = Memory()
        self.stop_reason: str | None = None  # set by the SIGINT handler or an alert
        self.stopped: dict[str, Any] | None = None
        self.points: list[dict[str, Any]] = []
        self.after_pause = False
        self.main = int(os.environ.get("RANK", "0")) == 0

    # ---- Trainer hooks -------------------------------------------------------------------------------------
    def on_train_begin(self, args, state, control, **kwargs):
        self.max_steps = state.max_steps
        self._write(EVENTS, {"event": "start", "attempt": self.attempt, "step": state.global_step,
                             "max_steps": state.max_steps, "time": time.time(),
                             "per_device_batch": args.per_device_train_batch_size,
                             "accumulation": args.gradient_accumulation_steps,
                             "global_batch": args.per_device_train_batch_size * args.gradient_accumulation_steps
                             * args.world_size})

    def on_step_end(self, args, state, control, **kwargs):
        if self._agree(self.stop_reason is not None):
            self._stop(state, control, self.stop_reason or "stopped on another rank", save=True)

    def on_evaluate(self, args, state, control, **kwargs):
        self.after_pause = True

    def on_save(self, args, state, control, **kwargs):
        self.after_pause = True
        self._write(EVENTS, {"event": "save", "step": state.global_step, "time": time.time()})

    def on_log(self, args, state, control, logs=None, **kwargs):
        event = self._event(state, logs or {})
        alerts = self.monitor.feed(event)
        self._write(EVENTS, event)
        for alert in alerts:
            self._write(ALERTS, {**alert.as_dict(), "attempt": self.attempt})
            self._print(f"[lfx alert] {alert.message}  (LF key: {alert.lf_key})")
        if "loss" in event or "eval_loss" in event:
            self._print("[lfx] " + progress.line(event, self.points, self.max_steps))
        stopping = [a for a in alerts if a.kind in self.stop_on]
        if self._agree(bool(stopping)):
            # A NaN/inf checkpoint would become "the last checkpoint" a resume picks: do not save that one.
            save = not any(a.kind == "nonfinite" for a in stopping)
            self._stop(state, control, f"alert: {stopping[0].kind}" if stopping else "alert on another rank", save)

    # ---- helpers -------------------------------------------------------------------------------------------
    def _event(self, state, logs: dict[str, Any]) -> dict[str, Any]:
        event: dict[str, Any] = {"event": "log", "step": state.global_step, "time": time.time(),
                                 "epoch": state.epoch, "attempt": self.attempt}
        keep = ("loss", "grad_norm", "learning_rate", "eval_loss")
        event.update({k: float(v) for k, v in logs.items() if k in keep and isinstance(v, int | float)})
        tokens = getattr(state, "num_input_tokens_seen", None)
        if tokens:
            event["tokens"] = int(tokens)
        if state.best_model_checkpoint:
            event["best_checkpoint"] = state.best_model_checkpoint
        event.update(self.memory.sample())
        if self.after_pause:
            event["after_pause"], self.after_pause = True, False
        if "loss" in event:
            self.points.append(event)
        return event

    def _stop(self, state, control, reason: str, save: bool) -> None:
        control.should_training_stop = True
        control.should_save = save  # overrides a scheduled save too: never checkpoint non-finite weights
        if self.stopped is None:
            self.stopped = {"reason": reason, "step": state.global_step, "saved": save}
            self._write(EVENTS, {"event": "stop", "reason": reason, "step": state.global_step, "time": time.time()})
            self._print(f"[lfx] stopping at step {state.global_step} ({reason})"
                        + (", saving a checkpoint" if save else ", not saving (non-finite weights)"))

    def _agree(self, flag: bool) -> bool:
        """Any rank's flag, on every rank (one tiny all-reduce, only in a multi-process run)."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return flag
        import torch

        tensor = torch.tensor([1.0 if flag else 0.0], device="cuda" if torch.cuda.is_available() else "cpu")
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return bool(tensor.item())

    def _write(self, name: str, row: dict[str, Any]) -> None:
        if self.main:
            self.out.mkdir(parents=True, exist_ok=True)
            append_jsonl(self.out / name, row)

    def _print(self, text: str) -> None:
        if self.main:
            print(text, file=sys.stdout, flush=True)
