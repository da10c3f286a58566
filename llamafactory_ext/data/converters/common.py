"""Helpers shared by the structured converters: text fields, inline reasoning, turn checks."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator

from ...errors import DataError
from ...records import TOOL_ROLES, Note, Sample, Turn
from ..normalize.segments import prose
from .detect import wrong_kind

# A reasoning block at the start of an assistant message, in either tag spelling.
_LEADING_THINK = re.compile(r"^\s*<(think|thinking)>(.*?)</\1>\s*", re.S)
_ANY_TAG = re.compile(r"</?think(?:ing)?>")


def split_reasoning(text: str, path: str, line: int) -> tuple[str | None, str]:
    """``"<think>R</think>A"`` → ``("R", "A")``; text without tags → ``(None, text)``.

    >>> split_reasoning("<think>\\n先算\\n</think>\\n\\n答案", "f", 1)
    ('先算', '答案')
    """
    m = _LEADING_THINK.match(text)
    reasoning, answer = (m.group(2).strip(), text[m.end() :]) if m else (None, text)
    if _ANY_TAG.search(prose(answer)):  # a tag named inside `code` or a fence is content, not reasoning
        raise DataError(path, line, "reasoning tag outside a leading <think>…</think> block (or unclosed)",
                        "put the reasoning first as <think>…</think> followed by the answer, and close every tag")
    if m and not reasoning:
        raise DataError(path, line, "empty <think></think> block", "write the reasoning inside it or remove the tags")
    if m and not answer.strip():
        raise DataError(path, line, "reasoning with no answer after </think>", "add the final answer after the block")
    return reasoning, answer.strip()


def text_field(value: object, key: str, path: str, line: int) -> str:
    """A string field, repairing the nested ``{"instruction": {"text": …}}`` shape seen in Chinese sets."""
    if isinstance(value, dict):
        inner = [value[k] for k in (key, "text", "content", "value") if isinstance(value.get(k), str)]
        if inner:
            return inner[0]
        raise DataError(path, line, f"'{key}' is an object without a text field (keys: {', '.join(map(str, value))})",
                        f"make '{key}' a string")
    if value is None:
        return ""
    if isinstance(value, float) and not math.isfinite(value):  # JSON's NaN / Infinity would become "nan"
        raise DataError(path, line, f"'{key}' is {value} (not a number), expected a string", f"write '{key}' as text")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise DataError(path, line, f"'{key}' is a {type(value).__name__}, expected a string", f"make '{key}' a string")
    return value


ASKS, ANSWERS = ("user", "observation"), ("assistant", "function_call")  # LF's odd / even positions


def check_turns(turns: list[Turn], path: str, line: int) -> None:
    """Roles alternate user/assistant, start with user and end with an answer; with tools, a function_call
    takes an assistant's place and an observation a user's (exactly LF's positional sharegpt rule: LF's own
    glaive demo has observations after a plain assistant turn, and LF trains them)."""
    if not any(t.role in ANSWERS for t in turns):
        raise DataError(path, line, "no assistant turn", "add the assistant's answer as the last message")
    for i, t in enumerate(turns):
        _check_position(i, t, path, line)
    if turns[-1].role not in ANSWERS:
        raise DataError(path, line, "conversation ends with a user turn", "add the assistant's answer or drop the last user message")


def _check_position(i: int, t: Turn, path: str, line: int) -> None:
    allowed = ASKS if i % 2 == 0 else ANSWERS
    if t.role in allowed:
        return
    if t.role in TOOL_ROLES:
        reason = (f"message {i + 1} is '{t.role}' in a '{allowed[0]}' place (a function_call takes an assistant's "
                  "place, an observation a user's)")
    else:
        reason = (f"message {i + 1} is '{t.role}' but '{allowed[0]}' was expected (roles must alternate "
                  "user/assistant after an optional system message)")
    raise DataError(path, line, reason, "merge consecutive messages of the same role, or insert the missing turn")


Converted = Sample | DataError | Note


def convert_rows(records: Iterable[tuple[int, object] | DataError], source: str,
                 row: Callable[[object, str, int], Sample], kind: str = "",
                 used: Callable[[dict], set[str]] | None = None) -> Iterator[Converted]:
    """Apply a row converter to (line, row) records; reader errors and row errors are yielded, not raised.

    ``kind`` (a source kind): a first row that is clearly another kind ends the file with one error naming it.
    ``used(row)``: the row keys the converter read; every other key of a converted row is a Note.
    """
    checked = not kind
    for item in records:
        if isinstance(item, DataError):
            yield item
            continue
        line, value = item
        if not checked:
            checked, wrong = True, wrong_kind(value, kind, source, line)
            if wrong is not None:
                yield wrong
                return
        yield from _one(value, source, line, row, used)


def _one(value: object, source: str, line: int, row: Callable[[object, str, int], Sample],
         used: Callable[[dict], set[str]] | None) -> Iterator[Converted]:
    try:
        sample = row(value, source, line)
    except DataError as err:
        yield err
        return
    yield sample
    if used is not None and isinstance(value, dict):
        yield from unused_keys(value, used(value), source, line)


def unused_keys(row: dict, used: set[str], source: str, line: int) -> Iterator[Note]:
    """One Note per row key the converter did not read (the pipeline counts them by code)."""
    for key in sorted(set(map(str, row)) - used):
        yield Note(source, line, f"unused_key:{key}", f"row key '{key}' is not used and is not in the output")
