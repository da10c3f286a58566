"""Answer metrics on (prediction, reference) pairs, each with its exact definition (DEFINITIONS).

The ``lf_*`` metrics reproduce LLaMA-Factory 0.9.5 ``train/sft/metric.py:ComputeSimilarity`` to the digit:
BLEU-4 on character lists with nltk smoothing method3, ROUGE-1/2/L F on jieba words with rouge-chinese, each ×100,
rounded to 4 decimals per sample, averaged over samples. Heavy imports (jieba, nltk, rouge_chinese) are lazy.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import cache

from .thinking import answer_only

LF_KEYS = ("bleu-4", "rouge-1", "rouge-2", "rouge-l")
SAMPLE_KEYS = ("char_precision", "char_recall", "char_f1", "exact_match")

DEFINITIONS = {
    "bleu-4": "LF parity: nltk sentence_bleu([list(reference)], list(prediction), weights 0.25×4, "
              "SmoothingFunction().method3) ×100, rounded to 4 decimals per sample; mean over samples",
    "rouge-1": "LF parity: rouge_chinese Rouge F1 of unigrams on jieba.cut words (default dictionary) ×100, "
               "rounded to 4 decimals; 0 when either side has no word; mean over samples",
    "rouge-2": "LF parity: as rouge-1, on word bigrams",
    "rouge-l": "LF parity: as rouge-1, rouge_chinese's longest-common-subsequence F on words",
    "sacrebleu-zh": "corpus BLEU (sacrebleu, tokenize='zh': each CJK character a token, other text by 13a), "
                    "one reference, brevity penalty over the whole corpus; 0–100",
    "char_precision": "multiset character overlap / prediction characters (whitespace ignored) ×100; mean",
    "char_recall": "multiset character overlap / reference characters (whitespace ignored) ×100; mean",
    "char_f1": "harmonic mean of char_precision and char_recall per sample ×100; mean over samples",
    "exact_match": "100 if prediction == reference after strip(), else 0; mean over samples",
}
# Which text a metric saw: "full" is the raw generated text (reasoning included, as LF scores it),
# "answer" is the text after the thought on both sides (thinking.split_reasoning).
VIEWS = {"full": "the whole generated text and label, reasoning included (what LF's predict_* scores)",
         "answer": "the answer only: text after </think> on both sides (reasoning stripped)"}


@cache
def _jieba():
    import jieba

    jieba.setLogLevel(logging.WARNING)
    return jieba


def lf_rouge(pred: str, ref: str) -> dict[str, float]:
    """ROUGE-1/2/L F ×100 exactly as LF computes it for one sample."""
    from rouge_chinese import Rouge

    hyp, gold = list(_jieba().cut(pred)), list(_jieba().cut(ref))
    if not " ".join(hyp).split() or not " ".join(gold).split():
        return {"rouge-1": 0.0, "rouge-2": 0.0, "rouge-l": 0.0}
    scores = Rouge().get_scores(" ".join(hyp), " ".join(gold))[0]
    return {k: round(v["f"] * 100, 4) for k, v in scores.items()}


def lf_bleu4(pred: str, ref: str) -> float:
    """Character BLEU-4 ×100 exactly as LF computes it for one sample."""
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    return round(sentence_bleu([list(ref)], list(pred), smoothing_function=SmoothingFunction().method3) * 100, 4)


def char_prf(pred: str, ref: str) -> dict[str, float]:
    """Character precision/recall/F1 ×100 on multisets, whitespace ignored (0 on an empty side)."""
    from collections import Counter

    p, r = Counter("".join(pred.split())), Counter("".join(ref.split()))
    overlap = sum((p & r).values())
    prec = 100 * overlap / sum(p.values()) if p else 0.0
    rec = 100 * overlap / sum(r.values()) if r else 0.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    return {"char_precision": prec, "char_recall": rec, "char_f1": f1}


def sample_scores(pred: str, ref: str) -> dict[str, float]:
    """All per-sample metrics of one view."""
    return {"bleu-4": lf_bleu4(pred, ref), **lf_rouge(pred, ref), **char_prf(pred, ref),
            "exact_match": 100.0 if pred.strip() == ref.strip() else 0.0}


def view_texts(pred: str, ref: str, view: str) -> tuple[str, str]:
    return (pred, ref) if view == "full" else (answer_only(pred), answer_only(ref))


def sacrebleu_zh(preds: Sequence[str], refs: Sequence[str]) -> float:
    """Corpus BLEU with sacrebleu's zh tokenizer (a second opinion, not comparable to bleu-4)."""
    import sacrebleu

    if not preds:
        return 0.0
    return float(sacrebleu.corpus_bleu(list(preds), [list(refs)], tokenize="zh").score)


def score_rows(rows: Sequence[dict]) -> tuple[list[dict], dict]:
    """Per-sample {view: scores} and totals {view: {metric: mean}} for LF predict rows (predict, label)."""
    per = [{v: sample_scores(*view_texts(r["predict"], r["label"], v)) for v in VIEWS} for r in rows]
    totals = {}
    for v in VIEWS:
        keys = per[0][v] if per else {}
        totals[v] = {k: sum(p[v][k] for p in per) / len(per) for k in keys}
        pairs = [view_texts(r["predict"], r["label"], v) for r in rows]
        totals[v]["sacrebleu-zh"] = sacrebleu_zh([p for p, _ in pairs], [g for _, g in pairs])
    return per, totals
