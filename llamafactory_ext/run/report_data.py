"""What a report is made of (RUN flow: output dir files → **RunData** → plots, report.html, report.md).

Reads any LF output dir: our run_events.jsonl / alerts.jsonl / run_record.json when the run was supervised, else
LF's own trainer_state.json (which has grad_norm) and trainer_log.jsonl, and says which sources were missing.
`series` is pure on the loaded rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..io import read_jsonl_tolerant
from .alerts import Monitor
from .progress import RATE_WINDOW

SOURCES = {
    "run_events.jsonl": "timestamps, current memory and windowed throughput (the run was not supervised)",
    "alerts.jsonl": "alerts (the run was not supervised, so nothing watched it)",
    "run_record.json": "attempts and restarts (the run was not supervised)",
    "trainer_state.json": "grad-norm and the full log history (the run did not finish or save a state)",
    "trainer_log.jsonl": "LF's progress log (LF writes it on rank 0 during training)",
    "all_results.json": "final metrics (training did not finish)",
}


def _json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def num(value: Any) -> float | None:
    """Numbers, including the "nan"/"inf" strings our events use for non-finite values."""
    try:
        return float(value) if value is not None and not isinstance(value, bool) else None
    except (TypeError, ValueError):
        return None


@dataclass
class RunData:
    out: Path
    events: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    record: dict[str, Any] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)
    lf_log: list[dict[str, Any]] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)


def load(out: Path) -> RunData:
    data = RunData(out, read_jsonl_tolerant(out / "run_events.jsonl"), read_jsonl_tolerant(out / "alerts.jsonl"),
                   _json(out / "run_record.json"), _json(out / "trainer_state.json"),
                   read_jsonl_tolerant(out / "trainer_log.jsonl"), _json(out / "all_results.json"))
    if data.record.get("manifest"):
        data.manifest = _json(Path(data.record["manifest"]))
    data.missing = [f"{name}: no {why}" for name, why in SOURCES.items() if not (out / name).is_file()]
    if not (out / "alerts.jsonl").is_file():  # an unsupervised run: apply the same rules to its log history
        monitor = Monitor()
        data.alerts = [{**a.as_dict(), "message": a.message + " (found after the run)"}
                       for row in _history(data) for a in monitor.feed(row)]
    return data


def _history(data: RunData) -> list[dict[str, Any]]:
    """Per-log rows with a `step`: our events, else trainer_state's log_history, else LF's trainer_log.jsonl."""
    logs = [e for e in data.events if e.get("event") == "log"]
    if logs:
        return logs
    if data.state.get("log_history"):
        return data.state["log_history"]
    return [{**r, "step": r.get("current_steps"), "learning_rate": r.get("lr")} for r in data.lf_log]


def _points(rows: list[dict[str, Any]], key: str) -> list[tuple[float, float]]:
    found = [(num(r.get("step")), num(r.get(key))) for r in rows]
    return [(s, v) for s, v in found if s is not None and v is not None]


def _throughput(data: RunData) -> tuple[list[tuple[float, float]], str]:
    logs = [e for e in data.events if e.get("event") == "log" and e.get("tokens") is not None]
    if len(logs) > 1:
        pts = []
        for i in range(1, len(logs)):
            a, b = logs[max(0, i - RATE_WINDOW)], logs[i]
            if b["time"] > a["time"] and b.get("attempt") == a.get("attempt"):
                pts.append((float(b["step"]), (b["tokens"] - a["tokens"]) / (b["time"] - a["time"])))
        return pts, f"tokens/s over the last {RATE_WINDOW} logs"
    return _points(data.lf_log and [{**r, "step": r.get("current_steps")} for r in data.lf_log] or [],
                   "throughput"), "tokens/s, LF's cumulative average (trainer_log.jsonl)"


def _memory(data: RunData) -> tuple[list[tuple[float, float]], str]:
    logs = [e for e in data.events if e.get("event") == "log"]
    pts = [(s, v / 2**20) for s, v in _points(logs, "memory_current")]
    if pts:
        kind = next((e.get("memory_kind") for e in logs if e.get("memory_kind")), "")
        return pts, f"MiB, current ({'GPU allocated' if kind == 'cuda' else 'process RSS'})"
    rows = [{**r, "step": r.get("current_steps")} for r in data.lf_log]
    return [(s, v * 1024) for s, v in _points(rows, "vram_allocated")], "MiB, LF's peak (RECORD_VRAM)"


def restarts(data: RunData) -> list[tuple[float, str]]:
    """(step, label) of every restart: attempts after the first, and resumes recorded in the events."""
    marks = [(float(e.get("step") or 0), f"attempt {e.get('attempt')}")
             for e in data.events if e.get("event") == "start" and (e.get("attempt") or 1) > 1]
    starts = [e for e in data.events if e.get("event") == "start"]
    marks += [(float(e["step"]), "resume") for e in starts[1:] if (e.get("attempt") or 1) == 1]
    return sorted(set(marks))


def series(data: RunData) -> dict[str, dict[str, Any]]:
    """Plot title → {points, unit}; a title with no points is left out."""
    rows = _history(data)
    tput, tput_unit = _throughput(data)
    mem, mem_unit = _memory(data)
    found = {
        "Training loss": {"points": _points(rows, "loss"), "unit": "loss"},
        "Evaluation loss": {"points": _points(rows, "eval_loss"), "unit": "eval loss"},
        "Learning rate": {"points": _points(rows, "learning_rate"), "unit": "learning rate"},
        "Gradient norm": {"points": _points(rows, "grad_norm"), "unit": "grad norm (before clipping)"},
        "Memory": {"points": mem, "unit": mem_unit},
        "Throughput": {"points": tput, "unit": tput_unit},
    }
    return {k: v for k, v in found.items() if v["points"]}


def final_metrics(data: RunData) -> dict[str, Any]:
    rows = _history(data)
    losses = [v for _, v in _points(rows, "loss")]
    found: dict[str, Any] = {"final loss": losses[-1] if losses else None,
                             "final step": data.state.get("global_step") or (rows[-1].get("step") if rows else None),
                             "total steps": data.state.get("max_steps")}
    found.update({k: v for k, v in data.results.items() if isinstance(v, int | float)})
    return {k: v for k, v in found.items() if v is not None}  # a NaN final loss is news, keep it
