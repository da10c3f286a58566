"""Glue between files and the pure metric modules: read LF predict output, score it, write the eval folder.

Eval folder layout (default PRED_DIR/eval): eval_samples.jsonl (per sample), eval_totals.json (totals with
definitions), compare.json (base vs tuned), perplexity.json; eval_report.html is rendered from these.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from ..errors import DataError, UsageError
from . import metrics, stats, thinking
from . import terms as eval_terms

PRED_FILE = "generated_predictions.jsonl"


def read_predictions(path: Path) -> list[dict]:
    """Rows of LF's generated_predictions.jsonl (prompt, predict, label); DataError at the first bad line."""
    if path.is_dir():
        path = path / PRED_FILE
    if not path.is_file():
        raise UsageError(f"{path} not found: pass an LF predict output dir or its {PRED_FILE}")
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(str(path), n, f"not JSON: {e.msg}", f"use the {PRED_FILE} LF wrote") from None
        if not isinstance(row, dict) or not {"predict", "label"} <= row.keys():
            raise DataError(str(path), n, "needs the keys predict and label", f"use the {PRED_FILE} LF wrote")
        rows.append({"prompt": row.get("prompt", ""), "predict": str(row["predict"]), "label": str(row["label"])})
    return rows


def read_recipe(path: Path) -> dict:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as e:
        raise UsageError(f"{path}: cannot read the predict recipe ({e})") from None


def run_predict(recipe: Path, cwd: Path) -> Path:
    """Run ``llamafactory-cli train RECIPE`` (a do_predict recipe) and return its output_dir."""
    cfg = read_recipe(recipe)
    if not cfg.get("do_predict"):
        raise UsageError(f"{recipe}: not a predict recipe (do_predict is not true) — pass the *_predict.yaml")
    proc = subprocess.run([sys.executable, "-m", "llamafactory.cli", "train", str(recipe.resolve())], cwd=cwd,
                          check=False)
    if proc.returncode:
        raise UsageError(f"llamafactory-cli train {recipe} exited {proc.returncode}; see its output above")
    return cwd / cfg["output_dir"]


def token_counts(texts: list[str], tokenizer_path: str | None) -> list[int | None]:
    """Generated tokens per prediction (re-tokenized; LF does not store them), or None without a tokenizer."""
    if not tokenizer_path:
        return [None] * len(texts)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_path)
    return [len(tok(t, add_special_tokens=False).input_ids) for t in texts]


def reference_terms(rows: list[dict], provenance: Path | None, lexicon) -> tuple[list[set[str]], str]:
    """Reference term sets: the provenance file's test rows if it matches the predictions, else tagged labels."""
    if provenance and provenance.is_file():
        sets = eval_terms.read_provenance(provenance)
        if len(sets) >= len(rows):
            return sets[: len(rows)], f"provenance {provenance.name}"  # LF's max_samples takes the first rows
    return [eval_terms.terms_of(thinking.answer_only(r["label"]), lexicon) for r in rows], "tagged references"


def evaluate(rows: list[dict], *, counts: list[int | None], max_new_tokens: int | None,
             provenance: Path | None = None, lexicon=None) -> tuple[list[dict], dict]:
    """Per-sample records and totals (metrics per view, thinking compliance, domain terms)."""
    from ..data.terms import load_lexicon

    per, totals = metrics.score_rows(rows)
    comp = [thinking.compliance(r["predict"], n, max_new_tokens) for r, n in zip(rows, counts, strict=True)]
    lexicon = lexicon or load_lexicon()
    gold, source = reference_terms(rows, provenance, lexicon)
    term = eval_terms.term_scores([thinking.answer_only(r["predict"]) for r in rows], gold, lexicon)
    samples = [{"sample": i, **p, "thinking": c, "terms": t}
               for i, (p, c, t) in enumerate(zip(per, comp, term.pop("samples"), strict=True))]
    term["source"] = source
    return samples, {"samples": len(rows), "metrics": totals, "thinking": thinking.compliance_totals(comp),
                     "terms": term, "definitions": {**metrics.DEFINITIONS, **eval_terms.DEFINITIONS,
                                                    **{f"check {k}": v for k, v in thinking.CHECKS.items()}},
                     "views": metrics.VIEWS}


def compare_samples(base: list[dict], tuned: list[dict]) -> dict:
    """Paired comparison per view and metric: {"answer/char_f1": paired_bootstrap result, …}."""
    out = {}
    for view in metrics.VIEWS:
        keys = [k for k in base[0][view]] if base else []
        res = stats.compare([s[view] for s in base], [s[view] for s in tuned], keys)
        out.update({f"{view}/{k}": v for k, v in res.items()})
    comp = stats.paired_bootstrap([100.0 * s["thinking"]["compliant"] for s in base],
                                  [100.0 * s["thinking"]["compliant"] for s in tuned])
    return {**out, "thinking/compliance": comp}


def read_samples(eval_dir: Path) -> list[dict]:
    path = eval_dir / "eval_samples.jsonl"
    if not path.is_file():
        raise UsageError(f"{path} not found: run `python -m llamafactory_ext.evaluate metrics` on it first")
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def dumps(obj) -> str:
    return json.dumps(obj, ensure_ascii=False, indent=2) + "\n"
