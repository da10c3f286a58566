"""Answer metrics against hand-computed values, and LF parity: our numbers equal LF's own ComputeSimilarity."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from eval_support import FIXTURES
from tiny_models import _save_fast, _train_bpe

from llamafactory_ext.eval.metrics import (
    char_prf,
    lf_bleu4,
    lf_rouge,
    sacrebleu_zh,
    sample_scores,
    score_rows,
)
from llamafactory_ext.eval.thinking import answer_only

ROWS = [json.loads(x) for x in (FIXTURES / "predictions_zh.jsonl").read_text(encoding="utf-8").splitlines()]


def test_bleu4_is_character_level_with_brevity_penalty():
    # Every n-gram of the 5-char hypothesis is in the 6-char reference: precisions 1, BP = exp(1 - 6/5).
    assert lf_bleu4("甲乙丙丁戊", "甲乙丙丁戊己") == pytest.approx(round(100 * math.exp(-0.2), 4))
    assert lf_bleu4("对称加密算法", "对称加密算法") == 100.0


def test_rouge_counts_jieba_words():
    # jieba: 我/爱/北京 vs 我/爱/上海 → unigrams 2 of 3, bigrams (我 爱) 1 of 2, LCS 2 of 3.
    assert lf_rouge("我爱北京", "我爱上海") == {"rouge-1": 66.6667, "rouge-2": 50.0, "rouge-l": 66.6667}


def test_empty_side_scores_zero_like_lf():
    assert lf_rouge("", "密钥") == {"rouge-1": 0.0, "rouge-2": 0.0, "rouge-l": 0.0}
    assert sample_scores("", "密钥")["char_f1"] == 0.0


def test_char_prf_on_multisets_ignores_whitespace():
    # 对称加密 vs 对称 密码: overlap 对 称 密 = 3 of 4 on both sides.
    assert char_prf("对称加密", "对称 密码") == {"char_precision": 75.0, "char_recall": 75.0, "char_f1": 75.0}
    # 密密 vs 密: overlap 1 (multiset), precision 1/2, recall 1/1, F1 2/3.
    got = char_prf("密密", "密")
    assert (got["char_precision"], got["char_recall"]) == (50.0, 100.0)
    assert got["char_f1"] == pytest.approx(200 / 3)


def test_exact_match_and_sacrebleu_zh():
    assert sample_scores(" 对称加密 ", "对称加密")["exact_match"] == 100.0
    assert sacrebleu_zh(["对称加密使用同一个密钥"], ["对称加密使用同一个密钥"]) == pytest.approx(100.0)
    assert sacrebleu_zh(["完全无关"], ["对称加密使用同一个密钥"]) == 0.0


def test_answer_view_strips_the_reasoning():
    per, totals = score_rows([{"predict": "<think>\n乱想\n</think>\n\n答案甲", "label": "<think>\n推理\n</think>\n\n答案甲"}])
    assert per[0]["answer"]["exact_match"] == 100.0 and per[0]["full"]["exact_match"] == 0.0
    assert set(totals) == {"full", "answer"} and "sacrebleu-zh" in totals["answer"]


# ---- parity with LLaMA-Factory's own ComputeSimilarity ------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    """A real byte-level BPE tokenizer whose only special token is the pad: decode(encode(t)) == t for our texts,
    as for LF's own generated_predictions.jsonl, which LF decoded with skip_special_tokens=True."""
    path = tmp_path_factory.mktemp("parity_tok")
    return _save_fast(_train_bpe(["<|endoftext|>"]), path, pad_token="<|endoftext|>", eos_token="<|endoftext|>")


def lf_similarity(tokenizer, preds: list[str], labels: list[str]) -> dict[str, float]:
    """LF's ComputeSimilarity on token ids, padded with IGNORE_INDEX exactly like LF's predict loop."""
    from llamafactory.extras.constants import IGNORE_INDEX
    from llamafactory.train.sft.metric import ComputeSimilarity
    from transformers import EvalPrediction

    def ids(texts):
        enc = [tokenizer(t, add_special_tokens=False).input_ids for t in texts]
        width = max(1, *(len(e) for e in enc))
        return np.array([e + [IGNORE_INDEX] * (width - len(e)) for e in enc])

    for t in preds + labels:  # the comparison is only meaningful if the tokenizer round-trips every text
        assert tokenizer.decode(tokenizer(t, add_special_tokens=False).input_ids, skip_special_tokens=True) == t
    return ComputeSimilarity(tokenizer=tokenizer)(EvalPrediction(predictions=ids(preds), label_ids=ids(labels)))


@pytest.mark.lf
@pytest.mark.parametrize("view", ["full", "answer"])
def test_lf_parity_on_fixture_predictions(tokenizer, view):
    pick = (lambda t: t) if view == "full" else answer_only
    preds, labels = [pick(r["predict"]) for r in ROWS], [pick(r["label"]) for r in ROWS]
    theirs = lf_similarity(tokenizer, preds, labels)
    _, totals = score_rows(ROWS)
    for key in ("bleu-4", "rouge-1", "rouge-2", "rouge-l"):
        assert totals[view][key] == pytest.approx(theirs[key], abs=1e-4), key
