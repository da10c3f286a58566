"""report.html and report.md (RUN flow: RunData → plots (matplotlib, base64 PNG) → **one self-contained page**).

Every value that comes from data (names, paths, messages) goes through html.escape; the page loads nothing.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
from pathlib import Path
from typing import Any

from ..io import write_files
from .report_data import RunData, final_metrics, load, restarts, series

CSS = ("body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}table{border-collapse:collapse}"
       "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}img{max-width:100%}"
       ".error{color:#b00}.warning{color:#a60}pre{background:#f4f4f4;padding:6px;white-space:pre-wrap}")


def plot_png(title: str, points: list[tuple[float, float]], unit: str, marks: list[tuple[float, str]]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")  # no display: the report is built on servers
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3), dpi=90)
    xs, ys = zip(*points, strict=True)
    ax.plot(xs, ys, marker="." if len(xs) < 50 else None, linewidth=1)
    for step, label in marks:
        ax.axvline(step, color="red", linestyle="--", linewidth=1)
        ax.annotate(label, (step, 1), xycoords=("data", "axes fraction"), color="red", fontsize=8,
                    va="top", rotation=90)
    ax.set(title=title, xlabel="step", ylabel=unit)
    ax.grid(alpha=0.3)
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _table(header: list[str], rows: list[list[Any]], css: list[str] | None = None) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join(f"<tr class='{_e((css or [''] * len(rows))[i])}'>" + "".join(f"<td>{_e(c)}</td>" for c in row)
                   + "</tr>" for i, row in enumerate(rows))
    return f"<table><tr>{head}</tr>{body}</table>"


def _when(ts: Any) -> str:
    return dt.datetime.fromtimestamp(float(ts)).strftime("%Y-%m-%d %H:%M:%S") if ts else ""


def recipe_rows(data: RunData) -> list[list[Any]]:
    args = data.record.get("args", {})
    keys = ("model_name_or_path", "stage", "finetuning_type", "dataset", "eval_dataset", "template", "cutoff_len",
            "per_device_train_batch_size", "gradient_accumulation_steps", "learning_rate", "num_train_epochs",
            "max_steps", "output_dir")
    rows = [[k, args[k]] for k in keys if k in args]
    if data.record.get("recipe"):
        rows.insert(0, ["recipe", data.record["recipe"]])
    for name, split in (data.manifest.get("splits") or {}).items():
        if isinstance(split, dict):
            rows.append([f"data: {name}", f"{split.get('samples')} samples, tokens p50/p99 "
                         f"{(split.get('tokens_est') or {}).get('p50')}/{(split.get('tokens_est') or {}).get('p99')}"])
    return rows


def attempt_rows(data: RunData) -> list[list[Any]]:
    return [[a.get("n"), a.get("status"), a.get("reason") or a.get("message", "")[:300],
             ", ".join(f"{k}: {old} → {new}" for k, (old, new) in (a.get("changes") or {}).items()),
             a.get("resumed_from"), a.get("end_step"), a.get("global_batch"), _when(a.get("started"))]
            for a in data.record.get("attempts", [])]


def next_commands(data: RunData) -> list[str]:
    status = data.record.get("status")
    if status and status != "done":  # a stopped (e.g. NaN) or failed run's weights are nothing to export
        return [f"# the run ended '{status}': fix what the alerts say, then resume or retrain before evaluating",
                f"python -m llamafactory_ext.train {data.record.get('recipe') or 'RECIPE.yaml'}"]
    recipe, out = data.record.get("recipe"), str(data.out)
    if recipe and recipe.endswith(".yaml"):
        stem = recipe[: -len(".yaml")]
        return [f"llamafactory-cli train {stem}_predict.yaml   # evaluate: predictions on the test split",
                f"llamafactory-cli export {stem}_merge.yaml    # merge the adapter into the base model",
                f"llamafactory-cli export {stem}_gptq.yaml     # export a GPTQ-quantized model",
                f"llamafactory-cli chat {stem}_chat.yaml       # chat with the trained adapter"]
    return [f"llamafactory-cli chat --model_name_or_path BASE_MODEL --adapter_name_or_path {out} --template TEMPLATE",
            f"llamafactory-cli export --model_name_or_path BASE_MODEL --adapter_name_or_path {out} "
            "--template TEMPLATE --export_dir merged"]


def build_html(data: RunData) -> str:
    marks = restarts(data)
    plots = "".join(
        f"<figure><figcaption>{_e(title)}</figcaption><img alt='{_e(title)}' src='data:image/png;base64,"
        f"{base64.b64encode(plot_png(title, s['points'], s['unit'], marks)).decode()}'></figure>"
        for title, s in series(data).items())
    alerts = _table(["step", "kind", "message", "LF key"],
                    [[a.get("step"), a.get("kind"), a.get("message"), a.get("lf_key")] for a in data.alerts],
                    [a.get("severity", "") for a in data.alerts]) if data.alerts else "<p>No alerts.</p>"
    metrics = _table(["metric", "value"], [[k, v] for k, v in final_metrics(data).items()])
    parts = [f"<h1>Training report: {_e(data.out.name)}</h1><p>{_e(data.out)}</p>",
             "<h2>Recipe and data</h2>" + (_table(["key", "value"], recipe_rows(data)) if recipe_rows(data)
                                           else "<p>No run record: recipe unknown.</p>"),
             f"<h2>Final metrics</h2>{metrics}", f"<h2>Plots</h2>{plots or '<p>No logged values.</p>'}",
             f"<h2>Alerts</h2>{alerts}",
             "<h2>Attempts</h2>" + (_table(["#", "status", "reason", "changed", "resumed from", "end step",
                                            "global batch", "started"], attempt_rows(data))
                                    if attempt_rows(data) else "<p>No run record.</p>"),
             "<h2>Missing data</h2>" + ("<ul>" + "".join(f"<li>{_e(m)}</li>" for m in data.missing) + "</ul>"
                                        if data.missing else "<p>None.</p>"),
             "<h2>Next commands</h2><pre>" + _e("\n".join(next_commands(data))) + "</pre>"]
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{_e(data.out.name)} report</title>"
            f"<style>{CSS}</style></head><body>{''.join(parts)}</body></html>\n")


def _md_table(header: list[str], rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows])


def build_md(data: RunData) -> str:
    sec = [f"# Training report: {data.out.name}", "", "Plots: see report.html (same folder).", "",
           "## Recipe and data", _md_table(["key", "value"], recipe_rows(data)), "",
           "## Final metrics", _md_table(["metric", "value"], [[k, v] for k, v in final_metrics(data).items()]), "",
           "## Alerts", _md_table(["step", "kind", "message"], [[a.get("step"), a.get("kind"), a.get("message")]
                                                               for a in data.alerts]) if data.alerts else "None.", "",
           "## Attempts", _md_table(["#", "status", "reason", "changed", "resumed from", "end step", "global batch",
                                     "started"], attempt_rows(data)) if attempt_rows(data) else "No run record.", "",
           "## Missing data", "\n".join(f"- {m}" for m in data.missing) or "None.", "",
           "## Next commands", "```", *next_commands(data), "```", ""]
    return "\n".join(sec)


def write_report(out: Path) -> Path:
    data = load(out)
    write_files({out / "report.html": build_html(data), out / "report.md": build_md(data)})
    return out / "report.html"
