"""Honest progress (RUN flow: callback events → **rates and ETA** → live line, report).

Pure. LF's ETA divides time since the process started by `global_step`, which includes the steps done before a
resume, and its throughput is cumulative. Here the ETA uses only the steps of this (re)start and the token rate a
recent window of logs.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from typing import Any

RATE_WINDOW = 10  # logs: long enough to smooth one slow step, short enough to show a stall within seconds


def eta_seconds(points: Sequence[dict[str, Any]], max_steps: int) -> float | None:
    """Seconds left from the step rate since this (re)start's first log; None before two logs of it."""
    if len(points) < 2:
        return None
    first, last = points[0], points[-1]
    steps, seconds = last["step"] - first["step"], last["time"] - first["time"]
    if steps <= 0 or seconds <= 0:
        return None
    return max(0.0, (max_steps - last["step"]) * seconds / steps)


def window_rate(points: Sequence[dict[str, Any]], key: str, window: int = RATE_WINDOW) -> float | None:
    """Increase of `key` per second over the last `window` logs (tokens/s with key='tokens')."""
    tail = [p for p in points[-(window + 1):] if p.get(key) is not None]
    if len(tail) < 2 or tail[-1]["time"] <= tail[0]["time"]:
        return None
    return (tail[-1][key] - tail[0][key]) / (tail[-1]["time"] - tail[0]["time"])


def clock(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "?"
    return str(dt.timedelta(seconds=round(seconds)))


def line(event: dict[str, Any], points: Sequence[dict[str, Any]], max_steps: int) -> str:
    """One live status line."""
    parts = [f"step {event.get('step')}/{max_steps}"]
    for key, label in (("loss", "loss"), ("grad_norm", "grad_norm"), ("eval_loss", "eval_loss")):
        if event.get(key) is not None:
            parts.append(f"{label} {event[key]:.4g}")
    rate = window_rate(points, "tokens")
    parts.append(f"{rate:.0f} tok/s" if rate is not None else f"{window_rate(points, 'step') or 0:.2f} step/s")
    parts.append(f"ETA {clock(eta_seconds(points, max_steps))}")
    if event.get("memory_current") is not None:
        parts.append(f"mem {event['memory_current'] / 2**20:.0f} MiB ({event.get('memory_kind')})")
    if event.get("gpu_util") is not None:
        parts.append(f"gpu {event['gpu_util']}%")
    return " | ".join(parts)
