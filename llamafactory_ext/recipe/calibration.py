"""GPTQ calibration text from a built dataset (pure): LF's export wants a ``text`` column whose every sampled
row is longer than ``export_quantization_maxlen`` tokens, so short samples are joined into long passages."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

MIN_CHARS = 3000  # why: > 1024 tokens for Chinese (~1.4 chars/token) with room; LF retries shorter rows 100× then fails


def row_text(row: dict) -> str:
    """Visible text of one sharegpt or alpaca row (reasoning included: the quantized model must keep it)."""
    if "messages" in row:
        return "\n".join(m.get("content", "") for m in row["messages"])
    parts = [p for pair in row.get("history", []) for p in pair]
    return "\n".join([*parts, row.get("instruction", ""), row.get("input", ""), row.get("output", "")]).strip()


def calibration_rows(rows: Iterable[dict], min_chars: int = MIN_CHARS) -> Iterator[dict]:
    """``{"text": …}`` passages of at least ``min_chars`` characters (a short tail joins the last passage)."""
    buf: list[str] = []
    size = 0
    pending = None
    for row in rows:
        text = row_text(row)
        buf.append(text)
        size += len(text)
        if size >= min_chars:
            if pending:
                yield pending
            pending, buf, size = {"text": "\n\n".join(buf)}, [], 0
    if pending and buf:
        pending = {"text": pending["text"] + "\n\n" + "\n\n".join(buf)}
    elif buf:
        pending = {"text": "\n\n".join(buf)}
    if pending:
        yield pending
