"""Thinking compliance on a fixture of every output form a thinking model produces."""

from __future__ import annotations

import json

import pytest
from eval_support import FIXTURES

from llamafactory_ext.eval.thinking import CHECKS, compliance, compliance_totals, split_reasoning

CASES = [json.loads(x) for x in (FIXTURES / "thinking_forms.jsonl").read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("case", CASES, ids=[f"{c['form']}-{i}" for i, c in enumerate(CASES)])
def test_each_form_gets_its_form_and_exactly_its_failures(case):
    got = compliance(case["text"], case["n_tokens"], case["max_new_tokens"])
    assert got["form"] == case["form"]
    assert got["failed"] == case["failed"]
    assert got["compliant"] is (not case["failed"])


def test_fixture_covers_every_form_and_every_check():
    assert {c["form"] for c in CASES} >= {"prefilled", "explicit", "missing", "doubled", "unclosed", "misplaced"}
    assert {k for c in CASES for k in c["failed"]} == set(CHECKS)


def test_prefilled_and_explicit_forms_give_the_same_thought_and_answer():
    explicit = split_reasoning("<think>\n比较密钥。\n</think>\n\n用同一把密钥。")
    prefilled = split_reasoning("比较密钥。\n</think>\n\n用同一把密钥。")
    assert (explicit.thought, explicit.answer) == (prefilled.thought, prefilled.answer) == ("比较密钥。", "用同一把密钥。")


def test_unterminated_thought_is_an_empty_answer():
    s = split_reasoning("<think>\n先分析，所以答案是 AES")
    assert (s.form, s.answer) == ("unclosed", "")


def test_unknown_token_count_leaves_truncation_unchecked_not_failed():
    got = compliance("<think>推理</think>答案")
    assert got["not_truncated"] is None and got["compliant"]


def test_totals_count_failures_per_check_and_form():
    results = [compliance(c["text"], c["n_tokens"], c["max_new_tokens"]) for c in CASES]
    totals = compliance_totals(results)
    compliant = sum(not c["failed"] for c in CASES)
    assert totals["compliance"] == pytest.approx(100 * compliant / len(CASES))
    assert totals["failures"]["not_truncated"] == sum("not_truncated" in c["failed"] for c in CASES)
    assert sum(totals["forms"].values()) == len(CASES)
