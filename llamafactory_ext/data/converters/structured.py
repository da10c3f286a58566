"""Row parts beside the text, shared by the alpaca and chat converters: the ``tools`` list, tool calls and the
media columns (``images`` / ``videos`` / ``audios``), checked the way LLaMA-Factory 0.9.5 will read them.

LF parses ``tools`` and every ``function_call`` turn with ``json.loads`` in the middle of training and stops with
a RuntimeError on the first bad one; it silently uses a missing media path as-is and fails in the processor.
Here each of those is a located error before anything is written.
"""

from __future__ import annotations

import json
from pathlib import Path

from ...errors import DataError
from ...records import MEDIA, Turn

PLACEHOLDER = {"images": "<image>", "videos": "<video>", "audios": "<audio>"}
URL_PREFIXES = ("http://", "https://")  # why: LF's plugins open URLs themselves; nothing to check on disk


def tools_text(value: object, path: str, line: int) -> str:
    """The ``tools`` column as LF reads it: JSON text of a list of function specs ("" when there are none).

    A string is kept byte-identical once it parses; a list (the OpenAI shape) is serialised.
    """
    if value in (None, "", []):
        return ""
    tools = value
    if isinstance(value, str):
        try:
            tools = json.loads(value)
        except json.JSONDecodeError as e:
            raise DataError(path, line, f"'tools' is not valid JSON ({e.msg})",
                            'write "tools" as a JSON list of {"name", "description", "parameters"} objects') from None
    if not isinstance(tools, list) or not all(isinstance(t, dict) and _tool_name(t) for t in tools):
        raise DataError(path, line, "'tools' must be a list of function objects, each with a 'name'",
                        'write [{"name": …, "description": …, "parameters": {…}}, …] (or the OpenAI '
                        '{"type": "function", "function": {…}} form)')
    return value if isinstance(value, str) else json.dumps(tools, ensure_ascii=False)


def _tool_name(tool: dict) -> object:
    spec = tool.get("function") if tool.get("type") == "function" else tool
    return isinstance(spec, dict) and isinstance(spec.get("name"), str) and spec["name"]


def check_call(content: str, path: str, line: int, i: int) -> str:
    """A function_call turn's content must be ``{"name", "arguments"}`` JSON (or a list of them), as LF parses it."""
    try:
        calls = json.loads(content)
    except json.JSONDecodeError as e:
        raise DataError(path, line, f"message {i} (function_call) is not JSON ({e.msg})",
                        'write the call as {"name": "…", "arguments": {…}}') from None
    items = calls if isinstance(calls, list) else [calls]
    if not items or not all(isinstance(c, dict) and isinstance(c.get("name"), str) and "arguments" in c for c in items):
        raise DataError(path, line, f"message {i} (function_call) needs 'name' and 'arguments' in every call",
                        'write {"name": "…", "arguments": {…}} (a list of them for parallel calls)')
    return content


def openai_calls(calls: object, path: str, line: int, i: int) -> str:
    """OpenAI ``tool_calls`` → the function_call content LF reads (``arguments`` parsed from its JSON string)."""
    if not isinstance(calls, list) or not calls:
        raise DataError(path, line, f"message {i} 'tool_calls' must be a non-empty list",
                        'write "tool_calls": [{"type": "function", "function": {"name": …, "arguments": "{…}"}}]')
    out = [_openai_call(c.get("function") if isinstance(c, dict) else None, path, line, i) for c in calls]
    return json.dumps(out[0] if len(out) == 1 else out, ensure_ascii=False)


def _openai_call(fn: object, path: str, line: int, i: int) -> dict:
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
        raise DataError(path, line, f"message {i} has a tool call without function.name",
                        'each call needs {"function": {"name": …, "arguments": "{…}"}}')
    args = fn.get("arguments", "{}")
    if isinstance(args, str):
        try:
            args = json.loads(args or "{}")
        except json.JSONDecodeError as e:
            raise DataError(path, line, f"message {i} tool call '{fn['name']}' has arguments that are not JSON "
                            f"({e.msg})", "write arguments as a JSON object string, e.g. \"{\\\"city\\\": \\\"北京\\\"}\"") from None
    return {"name": fn["name"], "arguments": args}


def media_columns(row: dict, path: str, line: int, root: Path, allowed: bool) -> dict[str, tuple[str, ...]]:
    """``{"images": (absolute paths…)}`` for the media columns a row uses; every local file must exist."""
    out = {}
    for key in MEDIA:
        items = _media_list(row.get(key), key, path, line)
        if not items:
            continue
        if not allowed:
            raise DataError(path, line, f"row has '{key}' but the target model is text-only",
                            f"choose a multimodal model (e.g. --model gemma-3-4b-it), or remove '{key}' from the rows")
        out[key] = tuple(_resolve(item, key, n, path, line, root) for n, item in enumerate(items, 1))
    return out


def _media_list(value: object, key: str, path: str, line: int) -> list:
    if value in (None, "", []):
        return []
    items = value if isinstance(value, list) else [value]
    if not all(isinstance(v, str) and v.strip() for v in items):
        raise DataError(path, line, f"'{key}' must be file paths (strings)",
                        f'write "{key}": ["folder/file", …], paths relative to the data file\'s folder')
    return items


def _resolve(item: str, key: str, n: int, path: str, line: int, root: Path) -> str:
    if item.startswith(URL_PREFIXES):
        return item
    file = (root / item).resolve()
    if not file.is_file():
        raise DataError(path, line, f"{key} item {n} '{item}' not found (looked for {file})",
                        f"put the file there or fix the path (relative paths are read from {root})")
    return str(file)


def check_placeholders(turns: list[Turn], media: dict[str, tuple[str, ...]], path: str, line: int) -> None:
    """Each media item needs its placeholder in the text (LF pairs them in order and fails on a mismatch).

    Rows without media are not checked: a literal "<image>" is plain text to a text-only model."""
    if not media:
        return
    text = "".join(t.content for t in turns)
    for key, tag in PLACEHOLDER.items():
        found, want = text.count(tag), len(media.get(key, ()))
        if found != want:
            raise DataError(path, line, f"{want} {key} but {found} {tag} placeholder(s) in the messages",
                            f"put one {tag} in the text where each of the {key} belongs (and none without one)")
