"""Exact and near duplicates are removed before the split, every drop counted by reason and located."""

from __future__ import annotations

from llamafactory_ext.data.dedup import Drop, dedup
from llamafactory_ext.data.filters import filter_samples
from llamafactory_ext.records import Sample, Turn

ANSWER = ("对称加密使用同一把密钥完成加密和解密，常见算法包括 AES、SM4 和 ChaCha20。它的优点是速度快、适合大量数据，"
          "缺点是密钥分发困难，通常需要借助非对称加密或密钥协商协议来安全地交换会话密钥。")


def qa(q: str, a: str, line: int) -> Sample:
    return Sample((Turn("user", q), Turn("assistant", a)), source="data.jsonl", line=line)


def run(samples):
    out = list(dedup(samples))
    return [s for s in out if isinstance(s, Sample)], [d for d in out if isinstance(d, Drop)]


def test_exact_duplicate_ignores_whitespace_and_punctuation():
    kept, drops = run([qa("什么是对称加密？", ANSWER, 1), qa("什么是对称加密?", ANSWER.replace("，", ", "), 2)])
    assert [s.line for s in kept] == [1]
    assert drops[0].reason == "exact_duplicate" and drops[0].detail == "same text as data.jsonl:1"


def test_near_duplicate_with_small_edit_is_dropped():
    edited = ANSWER.replace("常见算法包括", "常用的算法有")
    kept, drops = run([qa("什么是对称加密？", ANSWER, 1), qa("什么是对称加密？", edited, 5)])
    assert [s.line for s in kept] == [1]
    assert drops[0].reason == "near_duplicate" and "data.jsonl:1" in drops[0].detail


def test_different_answers_to_similar_questions_are_kept():
    other = "哈希函数把任意长度的输入映射为固定长度的摘要，具有抗碰撞性、抗原像性，常见的有 SHA-256 和 SM3。"
    kept, drops = run([qa("什么是对称加密？", ANSWER, 1), qa("什么是哈希函数？", other, 2)])
    assert len(kept) == 2 and not drops


def test_filters_drop_empty_and_long_and_flag_long():
    samples = [qa("问题", "", 1), qa("", "回答", 2), qa("问题", "长" * 50, 3), qa("好问题", "好回答", 4)]
    out = list(filter_samples(samples, max_chars=20))
    reasons = {d.sample.line: d.reason for d in out if isinstance(d, Drop)}
    assert reasons == {1: "empty_response", 2: "empty_prompt", 3: "too_long"}
    flagged = [s for s in filter_samples(samples[2:3], max_chars=20, long="flag") if isinstance(s, Sample)]
    assert flagged and "too_long" in flagged[0].meta["flags"][0]


def test_exact_key_keeps_operators_and_signs():
    from llamafactory_ext.data.dedup import fingerprint

    assert fingerprint("x>0") != fingerprint("x<0")
    assert fingerprint("a+b") != fingerprint("a-b")
    assert fingerprint("-5") != fingerprint("5")
    assert fingerprint("你好，世界。") == fingerprint("你好 世界")  # formatting alone is still a duplicate
