"""Domain term recall/precision: OpenCC-normalised, aliases folded, per term and category, provenance order."""

from __future__ import annotations

import json

import pytest

from llamafactory_ext.data.terms import load_lexicon
from llamafactory_ext.errors import DataError
from llamafactory_ext.eval.terms import read_provenance, term_scores, terms_of


@pytest.fixture(scope="module")
def lexicon():
    return load_lexicon()


def test_traditional_and_alias_spellings_count_as_the_same_term(lexicon):
    simplified = terms_of("对称加密使用同一个密钥，例如 AES。", lexicon)
    traditional = terms_of("對稱加密使用同一個密鑰，例如 aes。", lexicon)
    assert simplified == traditional and "对称加密" in simplified


def test_micro_and_per_term_recall_precision(lexicon):
    gold = [terms_of("对称加密使用同一个密钥", lexicon), terms_of("数字签名证明消息来源", lexicon)]
    preds = ["对称加密很快", "这句话没有术语"]
    r = term_scores(preds, gold, lexicon)
    ref_total = len(gold[0]) + len(gold[1])
    hits = len(gold[0] & terms_of(preds[0], lexicon))
    assert r["recall"] == pytest.approx(100 * hits / ref_total)
    assert r["terms"]["对称加密"]["recall"] == 100.0 and r["terms"]["数字签名"]["recall"] == 0.0
    assert r["terms"]["数字签名"]["precision"] is None  # never predicted: nothing to measure
    cat = {t.term: t.category for t in lexicon.terms}["数字签名"]
    assert r["categories"][cat]["ref"] >= 1


def test_provenance_rows_of_the_split_in_row_order(tmp_path):
    rows = [{"id": "b", "split": "test", "row": 1, "terms": ["哈希函数"]},
            {"id": "x", "split": "train", "row": 0, "terms": ["密钥"]},
            {"id": "a", "split": "test", "row": 0, "terms": ["对称加密", "密钥"]}]
    path = tmp_path / "crypto.provenance.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    assert read_provenance(path) == [{"对称加密", "密钥"}, {"哈希函数"}]


def test_broken_provenance_line_is_located(tmp_path):
    path = tmp_path / "p.provenance.jsonl"
    path.write_text('{"split": "test", "terms": []}\n{oops\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"p\.provenance\.jsonl:2: not JSON"):
        read_provenance(path)
