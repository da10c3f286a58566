"""Reasoning synthesis: for samples without reasoning, ask a stronger model for reasoning that leads to the given
answer (the answer is never rewritten), check what comes back, and attach it (DATASET flow, between convert and
dedup/split, so the split sees the final text).

Checks (a rejected reply is reported and the sample keeps no reasoning; malformed tags are never inserted):
- ``truncated``: the reply hit max_tokens; ``empty``: no text; ``tags``: think tags inside the reasoning; ``reference_phrasing``: "根据参考内容"-style
  phrases that give away that the answer was shown; ``shape``: the quality checks' analysis / conclusion missing
  or too short (data/quality.py); ``inconsistent``: under MIN_CONSISTENCY of the answer's key terms (numbers,
  Latin words, CJK bigrams of the answer's first 200 characters) appear in the reasoning.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ..records import Sample, Turn

PROMPT_VERSION = "reasoning-zh-v1"  # why: part of the cache key — a changed prompt asks again
SYSTEM = (
    "你是一名严谨的中文领域专家。给定一个问题和它的正确答案，请写出从问题推导到这个答案的完整思考过程。"
    "要求：先分析问题要求和已知条件，再分步骤推导（首先、然后、最后），最后用“因此”给出与答案一致的结论。"
    "只输出思考过程本身，不要复述整段答案，不要使用<think>等标签，不要提及“参考答案”“根据参考内容”“给定答案”之类的字样。"
)
USER = "问题：\n{question}\n\n正确答案：\n{answer}\n\n请写出得到这个答案的思考过程。"
REJECT_SHAPE = frozenset({"no_analysis", "no_conclusion", "too_short"})  # why: steps are optional in short answers
MIN_CONSISTENCY = 0.3  # why: a reasoning about the same answer shares well over a third of its key terms
_GIVEAWAY = re.compile(r"(根据|参考|依据)(给定|提供|所给|上述)?的?(参考)?(内容|答案|资料|材料)|参考答案|标准答案|正确答案|给定答案")
_TAGS = re.compile(r"</?think(?:ing)?>", re.I)
_KEY = re.compile(r"\d+(?:\.\d+)?|[A-Za-z][A-Za-z0-9_+-]{1,}")


@dataclass
class SynthesisReport:
    """Counts for the summary and the manifest; ``rejected`` maps a reason to its count."""

    asked: int = 0
    accepted: int = 0
    cached: int = 0
    rejected: Counter = field(default_factory=Counter)
    failed: list[str] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"asked": self.asked, "accepted": self.accepted, "from_cache": self.cached,
                "rejected": dict(self.rejected), "failed": len(self.failed), "prompt_version": PROMPT_VERSION}


def candidates(samples: Iterable[Sample]) -> list[int]:
    """Indexes of single-answer samples without reasoning (multi-turn chats keep their turns as they are)."""
    return [i for i, s in enumerate(samples) if not s.has_reasoning and _last_assistant(s) is not None]


def messages_for(sample: Sample) -> list[dict]:
    """The request for one sample: the system instruction and the question + answer."""
    idx = _last_assistant(sample)
    question = "\n\n".join(t.content for t in sample.turns[:idx] if t.role == "user")
    answer = sample.turns[idx].content
    return [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": USER.format(question=question, answer=answer)}]


def estimate_tokens(samples: Iterable[Sample], out_tokens: int = 400) -> int:
    """Rough request cost for the up-front notice: prompt characters / 1.4 (Chinese) + an expected reply length."""
    return int(sum(len(m["content"]) / 1.4 + out_tokens for s in samples for m in messages_for(s)[1:]))


def check(sample: Sample, reasoning: str) -> str | None:
    """Why a returned reasoning is rejected, or None when it is accepted."""
    from ..data.quality import check_reasoning

    text = reasoning.strip()
    if not text:
        return "empty"
    if _TAGS.search(text):
        return "tags"
    if _GIVEAWAY.search(text):
        return "reference_phrasing"
    if {i.code for i in check_reasoning(attach(sample, text, {}))} & REJECT_SHAPE:
        return "shape"
    if consistency(text, sample.turns[_last_assistant(sample)].content) < MIN_CONSISTENCY:
        return "inconsistent"
    return None


def consistency(reasoning: str, answer: str) -> float:
    """Share of the answer's key terms (numbers, Latin words, CJK bigrams of its opening) found in the reasoning."""
    head = answer[:200]
    keys = set(_KEY.findall(head)) | {head[i:i + 2] for i in range(len(head) - 1) if _cjk(head[i:i + 2])}
    return sum(k in reasoning for k in keys) / len(keys) if keys else 1.0


def attach(sample: Sample, reasoning: str, provenance: dict) -> Sample:
    """The sample with ``reasoning`` on its last assistant turn; the answer is untouched."""
    idx = _last_assistant(sample)
    turns = list(sample.turns)
    turns[idx] = Turn(turns[idx].role, turns[idx].content, reasoning)
    meta = {**sample.meta, "reasoning_synth": provenance} if provenance else sample.meta
    return sample.with_(turns=tuple(turns), meta=meta)


def synthesize(samples: list[Sample], client, *, limit: int | None = None, params: dict | None = None,
               progress: Callable[[int], None] = lambda n: None) -> tuple[list[Sample], SynthesisReport]:
    """Ask ``client`` (a ChatClient) for reasoning for up to ``limit`` candidates; returns the new samples + report."""
    from .client import EndpointError

    todo = candidates(samples)[:limit] if limit is not None else candidates(samples)
    report, out = SynthesisReport(asked=len(todo)), list(samples)
    provenance = {"model": client.config.model, "prompt_version": PROMPT_VERSION}
    jobs = [(messages_for(samples[i]), dict(params or {})) for i in todo]
    for n, (j, result) in enumerate(client.map(jobs, PROMPT_VERSION), 1):
        progress(n)
        i = todo[j]
        if isinstance(result, EndpointError):
            report.failed.append(f"{samples[i].origin}: {result}")
            continue
        report.cached += result.cached
        if result.finish_reason == "length":  # cut off at max_tokens: the conclusion may be missing
            _reject(out, i, "truncated", result.parsed.answer, report)
            continue
        # a teacher that wrapped everything in think tags left no visible reply: check the raw text (→ "tags")
        text = result.parsed.answer or str(result.message.get("content") or "")
        _take(out, i, text, provenance, report)
    return out, report


def _take(out: list[Sample], i: int, text: str, provenance: dict, report: SynthesisReport) -> None:
    reason = check(out[i], text)
    if reason:
        _reject(out, i, reason, text, report)
        return
    report.accepted += 1
    out[i] = attach(out[i], text.strip(), provenance)


def _reject(out: list[Sample], i: int, reason: str, text: str, report: SynthesisReport) -> None:
    report.rejected[reason] += 1
    if len(report.examples) < 5:
        report.examples.append(f"{out[i].origin}: rejected ({reason}): {text[:60]!r}")


def _last_assistant(sample: Sample) -> int | None:
    """Index of the only assistant turn (synthesis is for single-answer samples)."""
    idx = [i for i, t in enumerate(sample.turns) if t.role == "assistant"]
    return idx[0] if len(idx) == 1 and idx[0] == len(sample.turns) - 1 else None


def _cjk(pair: str) -> bool:
    return all("\u4e00" <= ch <= "\u9fff" for ch in pair)
