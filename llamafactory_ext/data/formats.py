"""Samples → LLaMA-Factory rows plus their dataset_info entry, from one function so they cannot drift.

Reasoning is serialized exactly as LF's reasoning templates expect: ``<think>\\n…\\n</think>\\n\\n`` + answer.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from ..dataset_info import Columns, DatasetInfoEntry, Tags
from ..records import Sample, Turn

Format = Literal["sharegpt", "alpaca"]
# think: tags for reasoning templates (qwen3); drop: reasoning removed; text: reasoning kept as visible prose.
ReasoningMode = Literal["think", "drop", "text"]
FORMATS = ("sharegpt", "alpaca")
REASONING_MODES = ("think", "drop", "text")

THINK_OPEN, THINK_CLOSE = "<think>\n", "\n</think>\n\n"  # LF 0.9.5 default thought_words, matched by exact regex
TEXT_LABEL = "思考过程：\n"  # why: plain-template models see the reasoning as an ordinary, labelled paragraph
ANSWER_LABEL = "\n\n回答：\n"


def assistant_text(turn: Turn, mode: ReasoningMode) -> str:
    """The assistant message as LF should see it.

    >>> assistant_text(Turn("assistant", "答案", "推理"), "think")
    '<think>\\n推理\\n</think>\\n\\n答案'
    """
    reasoning = (turn.reasoning or "").strip()
    if not reasoning or mode == "drop":
        return turn.content
    if mode == "think":
        return f"{THINK_OPEN}{reasoning}{THINK_CLOSE}{turn.content.strip()}"
    return f"{TEXT_LABEL}{reasoning}{ANSWER_LABEL}{turn.content.strip()}"


def _sharegpt_row(sample: Sample, mode: ReasoningMode) -> dict:
    messages = [{"role": "system", "content": sample.system}] if sample.system else []
    for t in sample.turns:
        content = assistant_text(t, mode) if t.role == "assistant" else t.content
        messages.append({"role": t.role, "content": content})
    return {"messages": messages}


def _alpaca_row(sample: Sample, mode: ReasoningMode) -> dict:
    turns = sample.turns
    pairs = [(turns[i].content, assistant_text(turns[i + 1], mode)) for i in range(0, len(turns) - 2, 2)]
    # Every key on every row, same types: the HF json loader's schema inference fails on mixed rows.
    return {
        "instruction": turns[-2].content,
        "input": "",
        "output": assistant_text(turns[-1], mode),
        "system": sample.system,
        "history": [list(p) for p in pairs],
    }


SHAREGPT_ENTRY = {
    "formatting": "sharegpt",
    "columns": Columns(messages="messages"),
    "tags": Tags(role_tag="role", content_tag="content", user_tag="user", assistant_tag="assistant", system_tag="system"),
}
ALPACA_ENTRY = {
    "formatting": "alpaca",
    "columns": Columns(prompt="instruction", query="input", response="output", system="system", history="history"),
}


def format_split(
    samples: Iterable[Sample], file_name: str, fmt: Format = "sharegpt", mode: ReasoningMode = "think"
) -> tuple[list[dict], dict]:
    """Rows for one data file and the dataset_info entry that reads them."""
    build = _sharegpt_row if fmt == "sharegpt" else _alpaca_row
    rows = [build(s, mode) for s in samples]
    spec = SHAREGPT_ENTRY if fmt == "sharegpt" else ALPACA_ENTRY
    entry = DatasetInfoEntry(file_name=file_name, **spec)
    return rows, entry.to_json()
