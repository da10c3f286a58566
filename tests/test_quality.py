"""Reasoning quality checks and the thinking-only gate, on realistic Chinese samples."""

from __future__ import annotations

import pytest

from llamafactory_ext.data.quality import (
    CODES,
    QualityIssue,
    check_reasoning,
    gate_thinking_only,
    reasoning_share,
    summarize,
)
from llamafactory_ext.errors import UsageError
from llamafactory_ext.records import Sample, Turn

HASH_REASONING = (
    "首先分析题目要求：用户需要用 Python 计算字符串的 SHA-256 哈希。\n"
    "1. 导入 hashlib 模块；\n"
    "2. 调用 hashlib.sha256 并传入 UTF-8 字节串；\n"
    "3. 用 hexdigest 得到十六进制结果。\n"
    "因此代码只需要一个很短的函数。"
)
HASH_ANSWER = (
    "可以直接用标准库 hashlib：\n\n"
    "```python\nimport hashlib\n\n\n"
    "def sha256_hex(text: str) -> str:\n"
    "    return hashlib.sha256(text.encode('utf-8')).hexdigest()\n```\n\n"
    "调用 `sha256_hex('abc')` 即可得到 64 位十六进制的哈希值。"
)
CRYPTO_REASONING = (
    "用户的问题是对称加密和非对称加密有什么区别。首先考虑密钥数量：对称加密只有一个密钥；"
    "然后比较速度：对称加密快得多；最后看用途：非对称加密多用于密钥交换和数字签名。"
    "综上，两者在实际系统中通常组合使用。"
)
CRYPTO_ANSWER = (
    "对称加密用同一个密钥加密和解密，速度快，适合大量数据；非对称加密使用公钥和私钥，"
    "适合密钥交换和数字签名。实际中（例如 TLS）先用非对称加密协商会话密钥，再用对称加密传输数据。"
)


def _sample(reasoning: str | None, answer: str, question: str = "请回答这个问题。", **kw: object) -> Sample:
    turns = (Turn("user", question), Turn("assistant", answer, reasoning))
    return Sample(turns=turns, source="notes/crypto.md", line=12, **kw)


def _codes(sample: Sample, **kw: float) -> list[str]:
    return [issue.code for issue in check_reasoning(sample, **kw)]


# --- passing samples -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reasoning", "answer"),
    [
        (HASH_REASONING, HASH_ANSWER),
        (CRYPTO_REASONING, CRYPTO_ANSWER),
        (
            "First, consider what the user needs: a list reversed in place. Then note that slicing copies "
            "the list, so call list.reverse() instead. Finally check the empty list. Therefore reverse() it is.",
            "Use `items.reverse()`: it reverses the list in place and returns None; `items[::-1]` makes a copy.",
        ),
    ],
)
def test_good_reasoning_has_no_issues(reasoning: str, answer: str) -> None:
    assert check_reasoning(_sample(reasoning, answer)) == []


def test_samples_without_reasoning_are_left_to_the_gate() -> None:
    assert check_reasoning(_sample(None, CRYPTO_ANSWER)) == []


# --- one code each ---------------------------------------------------------------------------------------


def test_no_analysis() -> None:
    reasoning = "先写出公式 E=mc²，然后代入质量 1 千克和光速，最后计算乘积。因此结果约为 9×10^16 焦耳。"
    issues = check_reasoning(_sample(reasoning, "约为 9×10^16 焦耳。"))
    assert [i.code for i in issues] == ["no_analysis"]
    assert issues[0].sample_origin == "notes/crypto.md:12"
    assert "restating what is asked" in issues[0].message
    assert not issues[0].message.startswith("notes/")  # the origin is a field, not a prefix


def test_no_steps() -> None:
    reasoning = (
        "这个问题需要判断 97 是否为质数。97 不能被 2、3、5、7 整除，而 10 的平方已大于 97，因此 97 是质数。"
    )
    issues = check_reasoning(_sample(reasoning, "97 是质数。"))
    assert [i.code for i in issues] == ["no_steps"]
    assert "step by step" in issues[0].message


def test_numbered_lines_count_as_steps() -> None:
    reasoning = "需要比较两种哈希算法：\n1. MD5 输出 128 位，已被碰撞攻破。\n2. SHA-256 输出 256 位。\n所以选 SHA-256。"
    assert _codes(_sample(reasoning, "推荐使用 SHA-256，MD5 已不安全。")) == []


def test_no_conclusion() -> None:
    reasoning = "首先分析题目：需要比较 MD5 和 SHA-256。然后看碰撞攻击：MD5 已被攻破。接着看输出长度：SHA-256 为 256 位。"
    issues = check_reasoning(_sample(reasoning, "推荐使用 SHA-256，MD5 已不安全。"))
    assert [i.code for i in issues] == ["no_conclusion"]
    assert "conclusion" in issues[0].message


def test_code_not_discussed_names_an_identifier_to_mention() -> None:
    reasoning = "首先分析题目要求：需要统计文本文件的行数。然后逐行读取并累加，最后输出结果。因此很简单。"
    answer = "```python\nwith open('data.txt', encoding='utf-8') as f:\n    line_count = sum(1 for _ in f)\nprint(line_count)\n```"
    issues = check_reasoning(_sample(reasoning, answer))
    assert [i.code for i in issues] == ["code_not_discussed"]
    assert "`open`" in issues[0].message
    assert "explain what the code does" in issues[0].message


@pytest.mark.parametrize(
    "mention", ["用 line_count 累加行数", "这段代码逐行读取", "the function reads lines"]
)
def test_code_discussed_by_word_or_identifier(mention: str) -> None:
    reasoning = f"首先分析题目要求：需要统计文本文件的行数。然后逐行读取，{mention}，最后输出。因此很简单。"
    answer = "```python\nwith open('data.txt', encoding='utf-8') as f:\n    line_count = sum(1 for _ in f)\nprint(line_count)\n```"
    assert _codes(_sample(reasoning, answer)) == []


def test_fence_language_is_not_an_identifier() -> None:
    reasoning = "首先分析题目：需要一个 python 示例。然后写出来，最后运行。因此完成。"
    issues = check_reasoning(_sample(reasoning, "```python\nresult = compute_total(items)\n```"))
    assert [i.code for i in issues] == ["code_not_discussed"]


def test_too_short() -> None:
    answer = CRYPTO_ANSWER * 8  # about 700 characters
    issues = check_reasoning(_sample("首先分析，然后作答，因此如下。", answer))
    assert [i.code for i in issues] == ["too_short"]
    assert "ratio 0.02" in issues[0].message


def test_too_long_and_the_short_answer_floor() -> None:
    reasoning = "首先分析问题。" + "然后考虑另一种情况，结果相同。" * 150 + "因此答案是 42。"
    assert _codes(_sample(reasoning, "42")) == ["too_long"]
    assert _codes(_sample(reasoning, "42"), max_ratio=100) == []
    # A 2-character answer is measured as 100 characters: 500 characters of reasoning are fine.
    assert _codes(_sample(reasoning[:480] + "因此答案是 42。", "42")) == []


def test_multi_turn_names_the_turn() -> None:
    turns = (
        Turn("user", "什么是 AES？"),
        Turn("assistant", CRYPTO_ANSWER, CRYPTO_REASONING),
        Turn("user", "那 RSA 呢？"),
        Turn(
            "assistant",
            "RSA 是非对称加密算法。",
            "首先分析问题：需要介绍 RSA。然后说明它基于大数分解，最后举例。",
        ),
    )
    issues = check_reasoning(Sample(turns=turns))
    assert [(i.code, i.sample_origin) for i in issues] == [("no_conclusion", "<memory>")]
    assert "assistant turn 2" in issues[0].message


def test_summarize_counts_by_code() -> None:
    issues = [QualityIssue("a:1", "no_steps", "m"), QualityIssue("a:2", "too_long", "m")]
    issues.append(QualityIssue("a:3", "no_steps", "m"))
    assert summarize(issues) == {"no_steps": 2, "too_long": 1}
    assert list(summarize(issues)) == [c for c in CODES if c in ("no_steps", "too_long")]
    assert summarize([]) == {}


# --- thinking-only gate --------------------------------------------------------------------------------


def _dataset(total: int, without: int) -> list[Sample]:
    with_ = [_sample(CRYPTO_REASONING, CRYPTO_ANSWER, question=f"问题 {i}") for i in range(total - without)]
    return with_ + [_sample(None, CRYPTO_ANSWER, question=f"问题 {i}") for i in range(without)]


def test_reasoning_share() -> None:
    assert reasoning_share(_dataset(4, 1)) == 0.75
    assert reasoning_share([]) == 0.0


def test_gate_refuses_too_many_samples_without_reasoning() -> None:
    gate = gate_thinking_only(_dataset(2000, 412))
    assert not gate.ok
    assert gate.share_without == pytest.approx(0.206)
    assert gate.message.startswith("412 of 2000 samples (20.6%) have no reasoning;")
    for fix in ("add reasoning", "--require-reasoning", "enable_thinking: null", "non-thinking model"):
        assert fix in gate.message


@pytest.mark.parametrize(
    ("without", "max_without", "ok"),
    [(100, 0.05, True), (101, 0.05, False), (0, 0.0, True), (1, 0.0, False), (412, 0.25, True)],
)
def test_gate_threshold_is_inclusive(without: int, max_without: float, ok: bool) -> None:
    gate = gate_thinking_only(_dataset(2000, without), max_without=max_without)
    assert gate.ok is ok


def test_gate_default_is_five_percent_and_empty_data_passes() -> None:
    assert gate_thinking_only(_dataset(20, 1)).ok
    assert not gate_thinking_only(_dataset(20, 2)).ok
    assert gate_thinking_only([]).ok


def test_gate_rejects_a_share_outside_zero_one() -> None:
    with pytest.raises(UsageError, match="max_without"):
        gate_thinking_only([], max_without=5)
