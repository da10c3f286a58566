"""One parser for the five places OpenAI-compatible servers put reasoning (pure; streamed or not).

``message.reasoning`` (recent vLLM, OpenRouter), ``message.reasoning_content`` (DeepSeek, sglang, older vLLM),
OpenRouter's ``reasoning_details`` list, inline ``<think>…</think>`` in ``content`` (LF's API, transformers), and
only ``…</think>`` when the chat template pre-fills the opening tag (Qwen3-Thinking-2507 under vLLM).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Parsed:
    """Reasoning apart from the answer; ``form`` names where the reasoning was found.

    ``closed`` is False when a thought was opened and never closed (cut off at max_tokens): the answer is then ''."""

    reasoning: str | None
    answer: str
    form: str
    closed: bool = True


def parse_message(message: Mapping) -> Parsed:
    """A chat-completions ``message`` (or an accumulated stream) → Parsed."""
    content = message.get("content") or ""
    for key in ("reasoning_content", "reasoning"):
        value = message.get(key)
        if isinstance(value, str) and value.strip():
            return Parsed(value.strip(), _strip_leading(content), key)
    details = _details_text(message.get("reasoning_details"))
    if details:
        return Parsed(details, _strip_leading(content), "reasoning_details")
    return parse_text(content)


def parse_text(text: str) -> Parsed:
    """Inline reasoning in generated text: ``<think>R</think>A``, pre-filled ``R</think>A``, unclosed ``<think>R``.

    One rule set with the evaluation's compliance check (eval/thinking.py), so the app, synthesis and the metrics
    agree on where a thought ends; a doubled or misplaced thought keeps its first block as the reasoning."""
    from ..eval.thinking import split_reasoning

    split = split_reasoning(text)
    if split.form == "missing":
        return Parsed(None, split.answer, "none")
    form = "prefilled" if split.form == "prefilled" else "inline"
    return Parsed(split.thought, split.answer, form, closed=split.form != "unclosed")


def _strip_leading(content: str) -> str:
    """Some servers echo an empty ``<think></think>`` in content beside the reasoning field: drop it."""
    parsed = parse_text(content)
    return parsed.answer if parsed.form != "none" and not parsed.reasoning else content.strip()


def _details_text(details: object) -> str:
    if not isinstance(details, list):
        return ""
    parts = [d.get("text") or d.get("summary") or "" for d in details if isinstance(d, Mapping)]
    return "".join(p for p in parts if isinstance(p, str)).strip()


class StreamAccumulator:
    """Collects streamed ``delta`` dicts into one message dict that parse_message reads."""

    FIELDS = ("content", "reasoning", "reasoning_content")

    def __init__(self) -> None:
        self.parts: dict[str, list[str]] = {f: [] for f in self.FIELDS}
        self.details: list = []
        self.finish_reason: str | None = None

    def add(self, delta: Mapping, finish_reason: str | None = None) -> None:
        for field in self.FIELDS:
            value = delta.get(field)
            if isinstance(value, str):
                self.parts[field].append(value)
        if isinstance(delta.get("reasoning_details"), list):
            self.details.extend(delta["reasoning_details"])
        self.finish_reason = finish_reason or self.finish_reason

    def message(self) -> dict:
        merged: dict = {f: "".join(p) for f, p in self.parts.items() if p}
        if self.details:
            merged["reasoning_details"] = self.details
        return merged


def parse_stream(deltas: Iterable[Mapping]) -> Parsed:
    """Convenience: parse a sequence of ``delta`` dicts."""
    acc = StreamAccumulator()
    for delta in deltas:
        acc.add(delta)
    return parse_message(acc.message())
