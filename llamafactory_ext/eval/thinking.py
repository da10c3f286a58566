"""Thinking compliance of one generated text: does a thinking model still think, and answer after it?

Accepts both forms a Qwen3 thinking model prints: ``<think>T</think>A`` (LF's own serving) and the pre-filled
``T</think>A`` (vLLM with Qwen3-Thinking-2507's chat template, which puts ``<think>`` into the prompt).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

OPEN, CLOSE = "<think>", "</think>"
_ANY_TAG = re.compile(r"</?think(?:ing)?>")  # <thinking> too: a leaked raw-notes tag is as wrong as <think>

# form → meaning; the two first are the only well-formed ones.
FORMS = {
    "explicit": "<think>T</think>A: one closed block at the start",
    "prefilled": "T</think>A: <think> was in the prompt, one closing tag",
    "missing": "no think tag at all: the whole text is the answer",
    "unclosed": "<think> never closed: all thought, the answer is empty",
    "doubled": "more than one <think> or </think>",
    "misplaced": "text before <think>, or <think> after </think>",
}
CHECKS = {
    "one_thought": "exactly one well-formed thought (explicit or prefilled form)",
    "thought_nonempty": "the thought has non-whitespace text",
    "answer_nonempty": "non-whitespace answer after the thought (an unterminated thought counts as empty)",
    "no_leaked_tags": "no <think>/</think>/<thinking> tag left in the answer",
    "not_truncated": "generation stopped before max_new_tokens (unchecked when the token count is unknown)",
}


@dataclass(frozen=True)
class Split:
    form: str
    thought: str
    answer: str


def split_reasoning(text: str) -> Split:
    """(form, thought, answer) of one generated text; the answer is what a user would see."""
    opens, closes = text.count(OPEN), text.count(CLOSE)
    if closes == 0:
        if opens == 0:
            return Split("missing", "", text.strip())
        return Split("unclosed" if opens == 1 else "doubled", text.split(OPEN, 1)[1].strip(), "")
    head, _, answer = text.partition(CLOSE)  # after the first </think>: a second one shows up as a leaked tag
    if closes > 1 or opens > 1:
        return Split("doubled", _strip_open(head), answer.strip())
    if opens == 0:
        return Split("prefilled", head.strip(), answer.strip())
    before, _, thought = head.partition(OPEN)
    if OPEN not in head or before.strip():
        return Split("misplaced", _strip_open(head), answer.strip())
    return Split("explicit", thought.strip(), answer.strip())


def _strip_open(text: str) -> str:
    return text.split(OPEN, 1)[-1].strip()


def answer_only(text: str) -> str:
    """The text with the reasoning removed, as the answer-only metrics see it."""
    return split_reasoning(text).answer


def compliance(text: str, n_tokens: int | None = None, max_new_tokens: int | None = None) -> dict:
    """Every check of CHECKS for one output (True = passed), its form and ``compliant`` = all passed.

    ``not_truncated`` is None (unchecked, not counted as a failure) when the token count or limit is unknown."""
    s = split_reasoning(text)
    truncated = None if n_tokens is None or not max_new_tokens else n_tokens >= max_new_tokens
    checks = {
        "one_thought": s.form in ("explicit", "prefilled"),
        "thought_nonempty": bool(s.thought),
        "answer_nonempty": bool(s.answer),
        "no_leaked_tags": not _ANY_TAG.search(s.answer),
        "not_truncated": None if truncated is None else not truncated,
    }
    failed = [k for k, ok in checks.items() if ok is False]
    return {"form": s.form, **checks, "compliant": not failed, "failed": failed}


def compliance_totals(results: list[dict]) -> dict:
    """Share of compliant outputs (0–100), pass rate per check, and failure counts per check and per form."""
    n = len(results) or 1
    rate = {k: 100 * sum(r[k] is not False for r in results) / n for k in CHECKS}
    return {
        "compliance": 100 * sum(r["compliant"] for r in results) / n,
        "checks": rate,
        "failures": {k: sum(k in r["failed"] for r in results) for k in CHECKS},
        "forms": {f: sum(r["form"] == f for r in results) for f in FORMS if any(r["form"] == f for r in results)},
    }
