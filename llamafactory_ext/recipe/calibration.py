"""GPTQ calibration text from a built dataset (pure): LF's export samples ``export_quantization_nsamples`` texts and
needs each one to tokenize LONGER than ``export_quantization_maxlen`` (else, after 100 tries, "Cannot find
satisfying example"), so short samples are joined into passages that are long enough for any tokenizer."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

CALIB_MAXLEN = 1024  # LF's default export_quantization_maxlen
CALIB_NSAMPLES = 128  # LF's default export_quantization_nsamples
# why 6.0: the most characters one token of a Qwen / Llama / Gemma BPE covers on average over real text is ~4.5-5
# (English prose of common whole words; Chinese runs ~1.4, digits and symbols ~2). A passage of 6 characters per
# needed token is long enough even if it were all such English.
CHARS_PER_TOKEN_MAX = 6.0
MIN_CHARS = math.ceil((CALIB_MAXLEN + 1) * CHARS_PER_TOKEN_MAX)


def row_text(row: dict) -> str:
    """Visible text of one sharegpt or alpaca row (reasoning included: the quantized model must keep it)."""
    if "messages" in row:
        return "\n".join(m.get("content", "") for m in row["messages"])
    parts = [p for pair in row.get("history", []) for p in pair]
    return "\n".join([*parts, row.get("instruction", ""), row.get("input", ""), row.get("output", "")]).strip()


def calibration_rows(texts: Iterable[str], min_chars: int = MIN_CHARS) -> Iterator[dict]:
    """``{"text": …}`` passages of at least ``min_chars`` characters; a short tail joins the last passage, and data
    shorter than one passage yields nothing (LF could not calibrate on it)."""
    buf: list[str] = []
    size = 0
    pending = None
    for text in texts:
        buf.append(text)
        size += len(text)
        if size >= min_chars:
            if pending:
                yield pending
            pending, buf, size = {"text": "\n\n".join(buf)}, [], 0
    if pending and buf:
        pending = {"text": pending["text"] + "\n\n" + "\n\n".join(buf)}
    if pending:
        yield pending


def windows(passages: Iterable[dict], maxlen: int = CALIB_MAXLEN) -> int:
    """How many distinct ``maxlen``-token windows the passages hold at least (tokens counted conservatively)."""
    return sum(int(len(p["text"]) / CHARS_PER_TOKEN_MAX) // maxlen for p in passages)
