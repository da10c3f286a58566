"""Recognise a file of the wrong kind from its first row, so the user gets one message naming the right source
kind ("rows have 'messages': use `openai`") instead of one error per row."""

from __future__ import annotations

from ...errors import DataError

# The source kinds that read alpaca-shaped rows (instruction / input / output).
ALPACA_LIKE = ("alpaca", "belle")


def guess_kind(row: object) -> tuple[str, str] | None:
    """``(source kind, the key that tells)`` for a row whose shape is unmistakable, else None.

    >>> guess_kind({"messages": [{"role": "user", "content": "你好"}]})
    ('openai', 'messages')
    """
    if not isinstance(row, dict):
        return None
    if isinstance(row.get("messages"), list) and _first_message_has(row["messages"], "role"):
        return "openai", "messages"
    if isinstance(row.get("conversations"), list):
        return "sharegpt", "conversations"
    if "instruction" in row and "output" in row:
        return "alpaca", "instruction"
    return None


def _first_message_has(messages: list, key: str) -> bool:
    first = next((m for m in messages if isinstance(m, dict)), None)
    return first is None or key in first


def wrong_kind(row: object, expected: str, path: str, line: int) -> DataError | None:
    """A DataError for the whole file when its first row is clearly another source kind, else None."""
    guess = guess_kind(row)
    if guess is None:
        return None
    kind, key = guess
    if kind == expected or (kind == "alpaca" and expected in ALPACA_LIKE):
        return None
    return DataError(path, line, f"rows have '{key}': these are `{kind}` rows, not `{expected}` (checked on the first row)",
                     f"use `{kind}`: python -m llamafactory_ext.build_dataset {kind} {path} …")
