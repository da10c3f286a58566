"""Domain term recall and precision: lexicon terms in the reference vs in the prediction, per term and category.

Reference terms come from the dataset's provenance file (``NAME.provenance.jsonl``: one row per sample with
``split`` and ``terms``) when present, else from tagging the reference answer. Both sides are OpenCC-normalised
to simplified Chinese, then tagged by data/terms.py (a private jieba that knows every lexicon term).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from ..data.normalize.chinese import chinese
from ..data.terms import Lexicon, tag_terms
from ..errors import DataError

DEFINITIONS = {
    "term_recall": "Σ over samples |T(ref) ∩ T(pred)| / Σ |T(ref)| ×100, T = lexicon terms (aliases folded to the "
                   "canonical term) in the OpenCC-t2s text; per term: share of samples whose reference has it "
                   "where the prediction has it too",
    "term_precision": "Σ |T(ref) ∩ T(pred)| / Σ |T(pred)| ×100; per term: share of predictions naming it whose "
                      "reference names it too",
}


def terms_of(text: str, lexicon: Lexicon) -> set[str]:
    return set(tag_terms(chinese(text, "t2s"), lexicon)[0])


def read_provenance(path: Path, split: str = "test") -> list[set[str]]:
    """Term sets of the ``split`` rows of a provenance file, in the split file's row order (LF's order)."""
    out: list[tuple[int, set[str]]] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(str(path), n, f"not JSON: {e.msg}", "rebuild the dataset with build_dataset") from None
        if row.get("split") == split:
            out.append((row.get("row", len(out)), set(row.get("terms") or ())))
    return [terms for _, terms in sorted(out, key=lambda x: x[0])]  # "row": position in the split file


def term_scores(preds: list[str], ref_terms: list[set[str]], lexicon: Lexicon) -> dict:
    """Micro recall/precision, and per term / per category: {ref, pred, hit, recall, precision}."""
    by_term: dict[str, Counter] = {}
    per_sample = []
    for pred, gold in zip(preds, ref_terms, strict=True):
        got = terms_of(pred, lexicon)
        per_sample.append({"ref_terms": sorted(gold), "pred_terms": sorted(got), "hit": sorted(gold & got)})
        for t in gold | got:
            c = by_term.setdefault(t, Counter())
            c["ref"] += t in gold
            c["pred"] += t in got
            c["hit"] += t in gold and t in got
    category = {t.term: t.category for t in lexicon.terms}
    by_cat: dict[str, Counter] = {}
    for t, c in by_term.items():
        by_cat.setdefault(category.get(t, "unknown"), Counter()).update(c)
    total = sum(by_term.values(), Counter())
    return {"recall": _ratio(total["hit"], total["ref"]), "precision": _ratio(total["hit"], total["pred"]),
            "terms": {t: _row(c) for t, c in sorted(by_term.items())},
            "categories": {k: _row(c) for k, c in sorted(by_cat.items())}, "samples": per_sample}


def _ratio(a: int, b: int) -> float | None:
    return 100 * a / b if b else None  # None: nothing to measure (no reference / predicted term)


def _row(c: Counter) -> dict:
    return {"ref": c["ref"], "pred": c["pred"], "hit": c["hit"],
            "recall": _ratio(c["hit"], c["ref"]), "precision": _ratio(c["hit"], c["pred"])}
