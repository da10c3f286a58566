"""sharegpt (``conversations`` of from/value) and OpenAI ``messages`` (role/content) rows → Sample.

Row checks follow the OpenAI fine-tuning cookbook: missing messages, unknown keys, unrecognized role, missing or
non-string content, no assistant turn, roles not alternating. Reasoning comes inline as a leading
``<think>…</think>`` or in a ``reasoning_content`` field. Tool calls (sharegpt ``function_call`` / ``observation``
turns, OpenAI ``tool_calls`` / ``tool`` messages), the row's ``tools`` and its media columns are kept.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ...errors import DataError
from ...records import MEDIA, Sample, Turn
from .common import Converted, check_turns, convert_rows, split_reasoning
from .structured import check_call, check_placeholders, media_columns, openai_calls, tools_text


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
                   {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system",
                    "function_call": "function_call", "observation": "observation"},
                   frozenset({"weight"}))
# OpenAI: an assistant message with tool_calls becomes a function_call turn, role "tool" an observation
# (legacy "function_call" / role "function" likewise).
OPENAI = Dialect("openai", "messages", "role", "content",
                 {"user": "user", "assistant": "assistant", "system": "system", "tool": "observation",
                  "function": "observation"},
                 frozenset({"name", "weight", "reasoning_content", "tool_calls", "tool_call_id", "function_call"}))
ROW_KEYS = frozenset({"system", "tools", *MEDIA})  # row keys read beside the message list
# LF's own OpenAI converter joins consecutive tool results this way; we match it so both readings agree.
TOOL_RESULTS_JOIN = "\n</tool_response>\n<tool_response>\n"


def convert_chat(records: Iterable[tuple[int, object] | DataError], source: str, dialect: Dialect, *,
                 media_root: Path | None = None, allow_media: bool = True) -> Iterator[Converted]:
    """Yield one Sample per conversation, a DataError for a row that cannot be used, a Note per unused row key.

    ``media_root``: where relative media paths are read from (default: the data file's folder).
    ``allow_media``: False when the target model is text-only; a row with media is then a located error.
    """
    root = Path(media_root) if media_root is not None else Path(source).parent
    used = ROW_KEYS | {dialect.list_key}
    return convert_rows(records, source, lambda row, path, line: _row(row, path, line, dialect, root, allow_media),
                        dialect.name, lambda row: used)


def _row(row: object, path: str, line: int, d: Dialect, root: Path, allow_media: bool) -> Sample:
    if not isinstance(row, dict) or d.list_key not in row:
        found = ", ".join(map(str, row)) if isinstance(row, dict) else type(row).__name__
        raise DataError(path, line, f"missing '{d.list_key}' (found: {found or 'nothing'})",
                        f"each row needs a '{d.list_key}' list of {{{d.role_key}, {d.content_key}}} messages")
    msgs = row[d.list_key]
    if not isinstance(msgs, list) or not msgs:
        raise DataError(path, line, f"'{d.list_key}' must be a non-empty list", f"write '{d.list_key}': [{{…}}, …]")
    parsed = _merge_results([_message(m, i, path, line, d) for i, m in enumerate(msgs, 1)])
    system = _system(parsed, row.get("system"), path, line)
    check_turns(parsed, path, line)
    media = media_columns(row, path, line, root, allow_media)
    check_placeholders(parsed, media, path, line)
    kind = "tool_call" if any(t.role == "function_call" for t in parsed) else "chat" if len(parsed) > 2 else "instruction"
    return Sample(tuple(parsed), system=system.strip(), kind=kind, source=path, line=line,
                  tools=tools_text(row.get("tools"), path, line), **media)


def _system(parsed: list[Turn], column: object, path: str, line: int) -> str:
    """The first system message, else the row's ``system`` column; a later system message is an error."""
    system = parsed.pop(0).content if parsed and parsed[0].role == "system" else ""  # type: ignore[comparison-overlap]
    if any(t.role == "system" for t in parsed):  # type: ignore[comparison-overlap]
        raise DataError(path, line, "a system message after the first message", "keep one system message, first")
    if column not in (None, "") and not isinstance(column, str):
        raise DataError(path, line, f"'system' is a {type(column).__name__}", "make 'system' a string")
    if column and system and column.strip() != system.strip():  # type: ignore[union-attr]
        raise DataError(path, line, "both a system message and a different 'system' column", "keep one of them")
    return system or column or ""  # type: ignore[return-value]


def _merge_results(turns: list[Turn]) -> list[Turn]:
    """Consecutive observations (parallel tool results) become one observation turn, as LF reads them."""
    out: list[Turn] = []
    for t in turns:
        if out and t.role == "observation" and out[-1].role == "observation":
            out[-1] = Turn("observation", out[-1].content + TOOL_RESULTS_JOIN + t.content)
        else:
            out.append(t)
    return out


def _message(m: object, i: int, path: str, line: int, d: Dialect) -> Turn:
    if not isinstance(m, dict):
        raise DataError(path, line, f"message {i} is a {type(m).__name__}, expected an object",
                        f"write {{\"{d.role_key}\": …, \"{d.content_key}\": …}}")
    unknown = set(m) - {d.role_key, d.content_key} - d.extra_keys
    if unknown:
        raise DataError(path, line, f"message {i} has unknown key(s) {', '.join(sorted(unknown))}",
                        f"keep only {d.role_key}, {d.content_key}" + (f", {', '.join(sorted(d.extra_keys))}" if d.extra_keys else ""))
    if m.get("weight") == 0:  # OpenAI's "do not train this turn": LF 0.9.5 would train it anyway
        raise DataError(path, line, f"message {i} has weight 0, but LLaMA-Factory 0.9.5 trains every assistant turn "
                        "(no per-message weights)", "remove that turn (or the row), or drop the weight key to train it")
    role = d.roles.get(m.get(d.role_key))  # type: ignore[arg-type]
    if role is None:
        raise DataError(path, line, f"message {i} has unrecognized {d.role_key} {m.get(d.role_key)!r}",
                        f"use one of {', '.join(d.roles)}")
    calls = m.get("tool_calls") or m.get("function_call")
    if role == "assistant" and calls:
        return _call_turn(m, calls, i, path, line, d)
    content = _content(m.get(d.content_key), i, path, line, d)
    if role == "function_call":
        return Turn("function_call", check_call(content.strip(), path, line, i))
    if role == "observation":
        return Turn("observation", content.strip())  # why: tool output is data; only the edges are trimmed
    if role != "assistant":
        return Turn(role, content.strip())  # type: ignore[arg-type]
    return _assistant(m, content, i, path, line)


def _content(content: object, i: int, path: str, line: int, d: Dialect) -> str:
    if isinstance(content, list):
        raise DataError(path, line, f"message {i} content is a list of parts; LLaMA-Factory needs a plain string",
                        "join the text parts into one string (put images in the row's 'images' with <image> "
                        "placeholders)")
    if not isinstance(content, str):
        what = "missing" if content is None else f"a {type(content).__name__}"
        raise DataError(path, line, f"message {i} content is {what}", f"give every message a string '{d.content_key}'")
    return content


def _call_turn(m: dict, calls: object, i: int, path: str, line: int, d: Dialect) -> Turn:
    """An OpenAI assistant message with tool_calls (or the legacy function_call) → a function_call turn."""
    text = m.get(d.content_key)
    if isinstance(m.get("reasoning_content"), str) and m["reasoning_content"].strip():
        raise DataError(path, line, f"message {i} has reasoning_content on a tool call; LLaMA-Factory's "
                        "function_call turn does not carry it here", "remove reasoning_content from the call message")
    if isinstance(text, str) and text.strip():
        raise DataError(path, line, f"message {i} has both text and tool_calls; LLaMA-Factory's function_call turn "
                        "holds only the calls", "move the text to the assistant message before or after the call, "
                        "or remove it")
    calls = calls if m.get("tool_calls") else [{"type": "function", "function": calls}]  # legacy function_call
    return Turn("function_call", openai_calls(calls, path, line, i))


def _assistant(m: dict, content: str, i: int, path: str, line: int) -> Turn:
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
