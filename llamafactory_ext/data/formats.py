"""Samples → LLaMA-Factory rows plus their dataset_info entry, from one function so they cannot drift.

Reasoning is serialized exactly as LF's reasoning templates expect: ``<think>\\n…\\n</think>\\n\\n`` + answer.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from ..dataset_info import Columns, DatasetInfoEntry, Tags
from ..errors import UsageError
from ..records import MEDIA, Sample, Turn

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
        messages.append({"role": t.role, "content": content})  # function_call / observation: LF's own role names
    return {"messages": messages}


def _alpaca_row(sample: Sample, mode: ReasoningMode) -> dict:
    if sample.has_tool_calls:
        raise UsageError(f"{sample.origin}: a conversation with tool calls cannot be written as alpaca rows "
                         "(they have no function_call/observation turns) — use --format sharegpt")
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
TOOL_TAGS = {"function_tag": "function_call", "observation_tag": "observation"}


def format_split(
    samples: Iterable[Sample], file_name: str, fmt: Format = "sharegpt", mode: ReasoningMode = "think",
    out_dir: str | Path | None = None,
) -> tuple[list[dict], dict]:
    """Rows for one data file and the dataset_info entry that reads them.

    Tools and media columns are added (to every row, same types) when some sample in the split has them.
    ``out_dir``: the dataset folder the rows go to; media paths are written relative to it (LF reads them from
    ``media_dir``, which defaults to that folder), else they stay absolute.
    """
    samples = list(samples)
    extra = [c for c in EXTRA_COLUMNS if any(c in needed_columns(s) for s in samples)]
    rows = [{**base_row(s, fmt, mode), **{c: column_value(s, c, out_dir) for c in extra}} for s in samples]
    return rows, split_entry(file_name, fmt, extra, any(s.has_tool_calls for s in samples))


EXTRA_COLUMNS = ("tools", *MEDIA)  # in the order they follow the row's own keys


def base_row(sample: Sample, fmt: Format, mode: ReasoningMode) -> dict:
    """The row without the optional columns (those depend on the whole split: see format_split)."""
    return _sharegpt_row(sample, mode) if fmt == "sharegpt" else _alpaca_row(sample, mode)


def needed_columns(sample: Sample) -> tuple[str, ...]:
    """The optional columns this sample needs: tools when it has tools or calls, each media kind it shows."""
    return (("tools",) if sample.tools or sample.has_tool_calls else ()) + tuple(k for k in MEDIA if getattr(sample, k))


def column_value(sample: Sample, column: str, out_dir: str | Path | None) -> object:
    """An optional column's value on this row ("" / [] when the sample has none: every row has the same types)."""
    return sample.tools if column == "tools" else [media_path(p, out_dir) for p in getattr(sample, column)]


def split_entry(file_name: str, fmt: Format, extra: Iterable[str], tool_calls: bool) -> dict:
    """The dataset_info entry for a split file with these optional columns (and tool tags when it has calls)."""
    spec = SHAREGPT_ENTRY if fmt == "sharegpt" else ALPACA_ENTRY
    columns = spec["columns"].model_copy(update={k: k for k in extra})  # type: ignore[attr-defined]
    tags = spec.get("tags")
    if tags is not None and tool_calls:
        tags = tags.model_copy(update=TOOL_TAGS)  # type: ignore[attr-defined]
    entry = DatasetInfoEntry(file_name=file_name, **{**spec, "columns": columns, **({"tags": tags} if tags else {})})
    return entry.to_json()


def media_path(path: str, out_dir: str | Path | None) -> str:
    """A media path as written: relative to the output folder when there is one (URLs unchanged).

    >>> media_path("/data/imgs/1.jpg", "/data/out")
    '../imgs/1.jpg'
    """
    if out_dir is None or not os.path.isabs(path):
        return path
    return os.path.relpath(path, os.path.abspath(out_dir))
