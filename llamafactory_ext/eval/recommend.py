"""Recommendations tied to evidence: each fires when a measured number crosses a documented threshold."""

from __future__ import annotations

import json
from pathlib import Path

TERM_RECALL_MIN = 60.0  # % of reference mentions: below it the model misses most of the domain vocabulary
TERM_MIN_REFS = 2  # a term needs ≥2 reference mentions before its recall means anything
LOSS_GAP = 1.3  # eval_loss / train_loss above this: the adapter memorises the training set
COMPLIANCE_MIN = 90.0  # % compliant outputs: a thinking model should almost always think-then-answer
TRUNCATED_MAX = 10.0  # % outputs cut at max_new_tokens before it is the limit, not the model
REVIEW_MIN = 3.5  # mean 1–5 score: below "acceptable plus"
ALPHA_MIN = 0.667  # Krippendorff's lowest acceptable alpha for tentative conclusions

THRESHOLDS = {"term_recall_min": TERM_RECALL_MIN, "term_min_refs": TERM_MIN_REFS, "loss_gap": LOSS_GAP,
              "compliance_min": COMPLIANCE_MIN, "truncated_max": TRUNCATED_MAX, "review_min": REVIEW_MIN,
              "alpha_min": ALPHA_MIN}


def read_losses(train_dir: Path) -> dict:
    """{train_loss, eval_loss} from LF's all_results.json (missing keys are simply absent)."""
    path = train_dir / "all_results.json"
    data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    return {k: data[k] for k in ("train_loss", "eval_loss") if isinstance(data.get(k), int | float)}


def recommend(terms: dict | None = None, thinking: dict | None = None, losses: dict | None = None,
              review: dict | None = None) -> list[dict]:
    """[{"finding", "evidence", "action"}] for every threshold crossed."""
    out = []
    out += _terms(terms) if terms else []
    out += _thinking(thinking) if thinking else []
    out += _losses(losses) if losses else []
    out += _review(review) if review else []
    return out


def _terms(terms: dict) -> list[dict]:
    weak = {t: r for t, r in terms["terms"].items()
            if r["ref"] >= TERM_MIN_REFS and r["recall"] is not None and r["recall"] < TERM_RECALL_MIN}
    if not weak:
        return []
    ev = ", ".join(f"{t} {r['recall']:.0f}% of {r['ref']}" for t, r in sorted(weak.items())[:10])
    return [{"finding": f"weak term recall on {len(weak)} term(s) (< {TERM_RECALL_MIN:.0f}%)", "evidence": ev,
             "action": "add training samples that use these terms (build_dataset on more domain material)"}]


def _thinking(th: dict) -> list[dict]:
    out = []
    if th["compliance"] < COMPLIANCE_MIN:
        ev = ", ".join(f"{k}: {v}" for k, v in th["failures"].items() if v)
        out.append({"finding": f"thinking compliance {th['compliance']:.1f}% < {COMPLIANCE_MIN:.0f}%",
                    "evidence": ev, "action": "train on samples with reasoning (<think> blocks), "
                    "and check enable_thinking matches the model"})
    cut = 100 - th["checks"]["not_truncated"]
    if cut > TRUNCATED_MAX:
        out.append({"finding": f"{cut:.1f}% of outputs hit max_new_tokens", "evidence": "not_truncated check",
                    "action": "raise max_new_tokens in the predict recipe (thinking needs room)"})
    return out


def _losses(losses: dict) -> list[dict]:
    tr, ev = losses.get("train_loss"), losses.get("eval_loss")
    if not tr or ev is None or ev / tr <= LOSS_GAP:
        return []
    return [{"finding": f"eval_loss / train_loss = {ev / tr:.2f} > {LOSS_GAP}",
             "evidence": f"train_loss {tr:.4f}, eval_loss {ev:.4f}",
             "action": "overfitting: fewer epochs, a lower LoRA rank, or more training data"}]


def _review(review: dict) -> list[dict]:
    out = []
    for dim, d in review["dimensions"].items():
        if d["alpha"] is not None and d["alpha"] < ALPHA_MIN:
            out.append({"finding": f"reviewers disagree on {dim} (alpha {d['alpha']:.2f} < {ALPHA_MIN})",
                        "evidence": f"{sum(q['dimension'] == dim for q in review['adjudicate'])} items to adjudicate",
                        "action": "agree on scoring guidelines with examples, then adjudicate the queue"})
        low = {s: m for s, m in d["mean"].items() if m < REVIEW_MIN}
        if low:
            out.append({"finding": f"low {dim} score", "evidence": ", ".join(f"{s}: {m:.2f}" for s, m in low.items()),
                        "action": "read the lowest-scored answers and add corrective samples for them"})
    return out
