"""Expert review loop: blind sheets out (CSV + HTML view), filled sheets in, agreement and an adjudication queue.

One item = one (sample, system) answer. With two systems, item ids are random and the order shuffled; the
item → system mapping is returned separately so it can be stored apart from what reviewers see.
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import random
import re
from pathlib import Path

from ..errors import DataError

DIMENSIONS = ("准确性", "流畅性", "专业性")  # accuracy, fluency, professionalism: the seed's three scores
ALIASES = {"accuracy": "准确性", "fluency": "流畅性", "professionalism": "专业性"}
META = ("run_id", "item_id", "sample", "prompt", "reference", "response")
COLUMNS = (*META, *DIMENSIONS, "comment")
SCORES = range(1, 6)
DISAGREE = 2  # adjudicate when two reviewers differ by ≥2 points on a 1–5 scale (1 point is ordinary noise)
_USER_TURN = re.compile(r"<\|im_start\|>user\n(.*?)<\|im_end\|>", re.S)  # ChatML, as LF's prompt column shows it


def readable_prompt(prompt: str) -> str:
    """The last user turn of a decoded ChatML prompt (what a reviewer needs), else the prompt as it is."""
    turns = _USER_TURN.findall(prompt)
    return turns[-1].strip() if turns else prompt.strip()


def make_items(rows_by_system: dict[str, list[dict]], run_id: str, seed: int = 0) -> tuple[list[dict], dict]:
    """Sheet rows and the hidden {item_id: system} mapping; shuffled and blind when there are ≥2 systems."""
    rng = random.Random(seed)
    items, mapping = [], {}
    for system, rows in rows_by_system.items():
        for i, r in enumerate(rows):
            item_id = f"{run_id}-{rng.getrandbits(40):010x}"
            mapping[item_id] = {"system": system, "sample": i}
            items.append({"run_id": run_id, "item_id": item_id, "sample": i, "prompt": readable_prompt(r["prompt"]),
                          "reference": r["label"], "response": r["predict"]})
    if len(rows_by_system) > 1:
        rng.shuffle(items)
    else:
        items.sort(key=lambda it: it["sample"])
    return items, mapping


def sheet_csv(items: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    for it in items:
        w.writerow({**it, **dict.fromkeys(DIMENSIONS, ""), "comment": ""})
    return buf.getvalue()


def sheet_html(items: list[dict], run_id: str) -> str:
    """A self-contained, escaped read-only view of the sheet (scores go into the CSV)."""
    e = html.escape
    rows = "".join(
        f"<tr><td>{e(it['item_id'])}</td><td><pre>{e(it['prompt'])}</pre></td><td><pre>{e(it['reference'])}</pre>"
        f"</td><td><pre>{e(it['response'])}</pre></td></tr>" for it in items)
    dims = "、".join(DIMENSIONS)
    return (f"<!doctype html><html lang='zh'><meta charset='utf-8'><title>评审表 {e(run_id)}</title>"
            "<style>pre{white-space:pre-wrap;max-width:40em}td{vertical-align:top;border:1px solid #ccc}</style>"
            f"<h1>评审表 {e(run_id)}</h1><p>在 CSV 中为每条回答给出 {dims} 1–5 分，并可写评语。</p>"
            f"<table><tr><th>item_id</th><th>prompt</th><th>reference</th><th>response</th></tr>{rows}</table>")


def read_sheet(path: Path, items: dict[str, dict], run_id: str) -> dict[str, dict]:
    """{item_id: {dimension: score | None, comment}} of one filled sheet; DataError at the first bad cell."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError(str(path), None, f"not UTF-8 (byte {err.start})", "save the sheet as CSV UTF-8") from None
    reader = csv.DictReader(io.StringIO(text))
    header = [ALIASES.get(h.strip(), h.strip()) for h in reader.fieldnames or ()]
    missing = [c for c in ("run_id", "item_id", *DIMENSIONS) if c not in header]
    if missing:
        raise DataError(str(path), 1, f"missing column(s) {', '.join(missing)}",
                        f"keep the header of the exported sheet: {','.join(COLUMNS)}")
    reader.fieldnames = header
    out: dict[str, dict] = {}
    end = reader.line_num  # line_num is where a record ends; cells with newlines span lines, so start = end + 1
    for row in reader:
        line, end = end + 1, reader.line_num
        out[_check_id(row, path, line, items, run_id, out)] = _scores(row, path, line)
    if not out:
        raise DataError(str(path), None, "no rows", "export the sheet again and fill it in")
    return out


def _check_id(row: dict, path: Path, line: int, items: dict, run_id: str, seen: dict) -> str:
    if (row.get("run_id") or "").strip() != run_id:
        raise DataError(str(path), line, f"run_id '{row.get('run_id')}' is not this run's '{run_id}'",
                        "import the sheet into the review folder it was exported from")
    item_id = (row.get("item_id") or "").strip()
    if item_id not in items:
        raise DataError(str(path), line, f"unknown item_id '{item_id}'", "do not edit the item_id column")
    if item_id in seen:
        raise DataError(str(path), line, f"item_id '{item_id}' appears twice", "keep one row per item")
    return item_id


def _scores(row: dict, path: Path, line: int) -> dict:
    out: dict = {"comment": (row.get("comment") or "").strip()}
    for dim in DIMENSIONS:
        cell = (row.get(dim) or "").strip()
        if not cell:
            out[dim] = None  # not rated: a missing value for alpha, not an error
        elif cell in {str(s) for s in SCORES}:
            out[dim] = int(cell)
        else:
            raise DataError(str(path), line, f"column {dim}: '{cell}' is not a score",
                            "use a whole number 1–5, or leave the cell empty")
    return out


def import_sheets(paths: list[Path], items: dict[str, dict], run_id: str) -> dict[str, dict]:
    """{reviewer (file stem): sheet scores}; all sheets are validated before anything is returned."""
    out: dict[str, dict] = {}
    for p in paths:
        if p.stem in out:
            raise DataError(str(p), None, f"reviewer '{p.stem}' imported twice", "give each reviewer one file")
        out[p.stem] = read_sheet(p, items, run_id)
    return out


def alpha(reviews: dict[str, dict], item_ids: list[str], dim: str) -> float | None:
    """Krippendorff's alpha, ordinal, values 1–5, over reviewers × items (None if < 2 reviewers rated)."""
    import krippendorff
    import numpy as np

    data = np.array([[_value(reviews[r].get(i, {}).get(dim)) for i in item_ids] for r in reviews], dtype=float)
    if data.shape[0] < 2 or (~np.isnan(data)).sum(axis=0).max(initial=0) < 2:
        return None
    if len(set(data[~np.isnan(data)].tolist())) < 2:
        return 1.0  # every rating identical: perfect agreement (the formula divides 0 by 0)
    return float(krippendorff.alpha(reliability_data=data, level_of_measurement="ordinal",
                                    value_domain=list(SCORES)))


def _value(v: int | None) -> float:
    return float("nan") if v is None else float(v)


def summarize(reviews: dict[str, dict], mapping: dict[str, dict]) -> dict:
    """Per dimension: alpha, mean per system; plus the adjudication queue (items with a spread ≥ DISAGREE)."""
    ids = sorted(mapping)
    dims = {}
    for dim in DIMENSIONS:
        by_sys: dict[str, list[int]] = {}
        for r in reviews.values():
            for i, s in r.items():
                if s.get(dim) is not None:
                    by_sys.setdefault(mapping[i]["system"], []).append(s[dim])
        dims[dim] = {"alpha": alpha(reviews, ids, dim), "mean": {k: sum(v) / len(v) for k, v in by_sys.items()}}
    return {"dimensions": dims, "adjudicate": adjudication(reviews, mapping), "reviewers": sorted(reviews)}


def adjudication(reviews: dict[str, dict], mapping: dict[str, dict]) -> list[dict]:
    queue = []
    for i in sorted(mapping):
        for dim in DIMENSIONS:
            got = {r: s[i][dim] for r, s in reviews.items() if i in s and s[i][dim] is not None}
            if len(got) >= 2 and max(got.values()) - min(got.values()) >= DISAGREE:
                queue.append({"item_id": i, "dimension": dim, "scores": got, **mapping[i]})
    return queue


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
