"""sharegpt (``conversations`` of from/value) and OpenAI ``messages`` (role/content) rows → Sample.

Row checks follow the OpenAI fine-tuning cookbook: missing messages, unknown keys, unrecognized role, missing or
non-string content, no assistant turn, roles not alternating. Reasoning comes inline as a leading
``<think>…</think>`` or in a ``reasoning_content`` field.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ...errors import DataError
from ...records import Sample, Turn
from .common import check_turns, convert_rows, split_reasoning


@dataclass(frozen=True)
class Dialect:
    """Where a chat format keeps its messages and how it names roles."""

    name: str
    list_key: str
    role_key: str
    content_key: str
    roles: dict[str, str]  # format role → user/assistant/system
    extra_keys: frozenset[str]


SHAREGPT = Dialect("sharegpt", "conversations", "from", "value",
                   {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"},
                   frozenset({"weight"}))
OPENAI = Dialect("openai", "messages", "role", "content",
                 {"user": "user", "assistant": "assistant", "system": "system"},
                 frozenset({"name", "weight", "reasoning_content"}))


def convert_chat(records: Iterable[tuple[int, object] | DataError], source: str, dialect: Dialect) -> Iterator[Sample | DataError]:
    """Yield one Sample per conversation, or a DataError for a row that cannot be used."""
    return convert_rows(records, source, lambda row, path, line: _row(row, path, line, dialect))


def _row(row: object, path: str, line: int, d: Dialect) -> Sample:
    if not isinstance(row, dict) or d.list_key not in row:
        found = ", ".join(map(str, row)) if isinstance(row, dict) else type(row).__name__
        raise DataError(path, line, f"missing '{d.list_key}' (found: {found or 'nothing'})",
                        f"each row needs a '{d.list_key}' list of {{{d.role_key}, {d.content_key}}} messages")
    msgs = row[d.list_key]
    if not isinstance(msgs, list) or not msgs:
        raise DataError(path, line, f"'{d.list_key}' must be a non-empty list", f"write '{d.list_key}': [{{…}}, …]")
    parsed = [_message(m, i, path, line, d) for i, m in enumerate(msgs, 1)]
    system = ""
    if parsed and parsed[0].role == "system":  # type: ignore[comparison-overlap]
        system = parsed.pop(0).content
    if any(t.role == "system" for t in parsed):  # type: ignore[comparison-overlap]
        raise DataError(path, line, "a system message after the first message", "keep one system message, first")
    check_turns(parsed, path, line)
    return Sample(tuple(parsed), system=system.strip(), kind="chat" if len(parsed) > 2 else "instruction",
                  source=path, line=line)


def _message(m: object, i: int, path: str, line: int, d: Dialect) -> Turn:
    if not isinstance(m, dict):
        raise DataError(path, line, f"message {i} is a {type(m).__name__}, expected an object",
                        f"write {{\"{d.role_key}\": …, \"{d.content_key}\": …}}")
    unknown = set(m) - {d.role_key, d.content_key} - d.extra_keys
    if unknown:
        raise DataError(path, line, f"message {i} has unknown key(s) {', '.join(sorted(unknown))}",
                        f"keep only {d.role_key}, {d.content_key}" + (f", {', '.join(sorted(d.extra_keys))}" if d.extra_keys else ""))
    role = d.roles.get(m.get(d.role_key))  # type: ignore[arg-type]
    if role is None:
        raise DataError(path, line, f"message {i} has unrecognized {d.role_key} {m.get(d.role_key)!r}",
                        f"use one of {', '.join(d.roles)}")
    content = m.get(d.content_key)
    if isinstance(content, list):
        raise DataError(path, line, f"message {i} content is a list of parts; LLaMA-Factory needs a plain string",
                        "join the text parts into one string (images/tools are not supported here)")
    if not isinstance(content, str):
        what = "missing" if content is None else f"a {type(content).__name__}"
        raise DataError(path, line, f"message {i} content is {what}", f"give every message a string '{d.content_key}'")
    if role != "assistant":
        return Turn(role, content.strip())  # type: ignore[arg-type]
    reasoning, answer = split_reasoning(content, path, line)
    field = m.get("reasoning_content")
    if field is not None and not isinstance(field, str):
        raise DataError(path, line, f"message {i} reasoning_content is a {type(field).__name__}",
                        "make reasoning_content a string (or leave it out)")
    if field and field.strip():
        if reasoning and reasoning != field.strip():
            raise DataError(path, line, f"message {i} has reasoning both inline (<think>) and in reasoning_content, "
                            "and they differ", "keep one of them")
        reasoning = field.strip()
    return Turn("assistant", answer, reasoning)
