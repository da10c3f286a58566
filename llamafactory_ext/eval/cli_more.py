"""The review, export-verification and report sub-commands of ``python -m llamafactory_ext.evaluate``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import UsageError
from ..io import write_files
from . import pipeline as pl
from . import review as rv
from .recommend import read_losses, recommend


def review_export(args: argparse.Namespace) -> int:
    if len(args.preds) > 2:
        raise UsageError("review-export compares at most two systems: pass one or two predict dirs")
    names = args.names or (["base", "tuned"] if len(args.preds) == 2 else [args.preds[0].name])
    if len(names) != len(args.preds) or len(set(names)) != len(names):
        raise UsageError(f"--names needs {len(args.preds)} distinct names, got {names}")
    systems = {n: pl.read_predictions(p) for n, p in zip(names, args.preds, strict=True)}
    if len({len(r) for r in systems.values()}) > 1:
        raise UsageError(f"the systems have different sample counts {[len(r) for r in systems.values()]}")
    run_id = rv.digest(json.dumps(systems, ensure_ascii=False, sort_keys=True) + str(args.seed))[:8]
    items, mapping = rv.make_items(systems, run_id, args.seed)
    out = args.out
    write_files({out / "sheet.csv": rv.sheet_csv(items), out / "sheet.html": rv.sheet_html(items, run_id),
            out / "items.json": pl.dumps({"run_id": run_id, "items": items}),
            # kept apart from the sheets: whoever hands sheets to reviewers leaves private/ behind
            out / "private" / "mapping.json": pl.dumps(mapping)})
    print(f"wrote {out}/sheet.csv and sheet.html ({len(items)} items, run {run_id}); mapping in {out}/private/")
    return 0


def _load_review(folder: Path) -> tuple[str, dict, dict]:
    try:
        meta = json.loads((folder / "items.json").read_text(encoding="utf-8"))
        mapping = json.loads((folder / "private" / "mapping.json").read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise UsageError(f"{e.filename} missing: pass the folder written by review-export") from None
    return meta["run_id"], {it["item_id"]: it for it in meta["items"]}, mapping


def review_import(args: argparse.Namespace) -> int:
    run_id, items, mapping = _load_review(args.review)
    new = rv.import_sheets(args.sheets, items, run_id)  # raises before anything is written
    path = args.review / "reviews.json"
    stored = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    again = sorted(set(stored) & set(new))
    if again and not getattr(args, "replace", False):  # every reviewer returns "sheet.csv": name them apart
        raise UsageError(f"reviewer(s) {', '.join(again)} already imported into {path} — rename each filled sheet "
                         "after its reviewer (alice.csv, bob.csv), or pass --replace to overwrite their scores")
    reviews = {**stored, **new}
    summary = rv.summarize(reviews, mapping)
    write_files({path: pl.dumps(reviews), args.review / "summary.json": pl.dumps(summary)})
    for dim, d in summary["dimensions"].items():
        a = "—" if d["alpha"] is None else f"{d['alpha']:.3f}"
        print(f"{dim}: alpha {a}  mean " + ", ".join(f"{s} {m:.2f}" for s, m in d["mean"].items()))
    print(f"{len(summary['adjudicate'])} item-dimension(s) to adjudicate (spread ≥ {rv.DISAGREE})")
    for r in recommend(review=summary):
        print(f"recommendation: {r['finding']} — {r['evidence']} → {r['action']}")
    return 0


def verify(args: argparse.Namespace) -> int:
    from . import export
    from .perplexity import read_split

    rows = read_split(args.dataset_dir, args.dataset)
    meta = export.verify(args.model, args.adapter, args.export_dir, rows, args.template, n=args.n,
                         max_new_tokens=args.max_new_tokens, cutoff_len=args.cutoff_len,
                         data=f"{args.dataset_dir}/{args.dataset}")
    v = meta["verdict"]
    for k, c in v["checks"].items():
        print(f"{k}: {c['value']:.4f} (max {c['max']}) {'pass' if c['ok'] else 'FAIL'}")
    print(("VERIFIED" if v["verified"] else "NOT VERIFIED") + f": {args.export_dir}/export_metadata.json")
    for a in v["advice"]:
        print(f"  try: {a}")
    return 0 if v["verified"] else 1


def _json(path: Path | None):
    return json.loads(path.read_text(encoding="utf-8")) if path and path.is_file() else None


def _ranked_votes(folder):
    from ..serve.ranking import rank
    from ..serve.votes import read_votes

    votes = read_votes(folder)
    if not votes:
        raise UsageError(f"--votes {folder}: no blind votes there (votes.jsonl + blind_map.jsonl from the web app)")
    return rank(votes)


def report(args: argparse.Namespace) -> int:
    from . import report_html

    d = args.eval_dir
    totals = _json(d / "eval_totals.json")
    if totals is None:
        raise UsageError(f"{d}/eval_totals.json not found: run `evaluate metrics` first")
    per = pl.read_samples(d)
    rows = [json.loads(x) for x in (d / "predictions.jsonl").read_text(encoding="utf-8").splitlines() if x]
    review = _json(args.review / "summary.json") if args.review else None
    losses = read_losses(args.train_dir) if args.train_dir else None
    data = {"totals": totals["metrics"], "rows": rows, "per": per, "compare": _json(d / "compare.json"),
            "thinking": totals["thinking"], "terms": totals["terms"], "ppl": _json(d / "perplexity.json"),
            "review": review, "export": _json(args.export / "export_metadata.json") if args.export else None,
            "votes": _ranked_votes(args.votes) if args.votes else None,
            "recommendations": recommend(totals["terms"], totals["thinking"], losses, review)}
    out = args.out or d / "eval_report.html"
    write_files({out: report_html.render(data)})
    print(f"wrote {out}")
    return 0
