"""A served model's answers to a test split, written as LF's ``generated_predictions.jsonl`` (prompt / predict /
label) so the evaluation reads local and served predictions the same way; and any split as OpenAI fine-tuning JSONL.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

from ..errors import DataError, UsageError
from .reasoning import Parsed

_SEPARATE = ("reasoning", "reasoning_content", "reasoning_details")
_THINK_BLOCK = re.compile(r"^\s*<think>\n.*?\n</think>\n\n", re.S)


def split_rows(dataset_dir: Path, name: str, split: str = "test") -> tuple[Path, Iterator[dict]]:
    """The rows of entry ``NAME_SPLIT`` as chat messages, read through its dataset_info entry."""
    return entry_rows(dataset_dir, f"{name}_{split}")


def entry_rows(dataset_dir: Path, key: str) -> tuple[Path, Iterator[dict]]:
    """The rows of any dataset_info entry as ``{"line": n, "messages": [{"role", "content"}, …]}`` — the one reader
    of LF rows for evaluation, perplexity, served predictions and export (alpaca system/history included)."""
    info_path = dataset_dir / "dataset_info.json"
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"{info_path}: cannot read ({exc}) — pass --dataset-dir, the folder build_dataset wrote") from None
    if key not in info:
        raise UsageError(f"{info_path}: no entry '{key}' — build the dataset first, or name one of: "
                         f"{', '.join(sorted(info)[:12])}")
    entry = info[key]
    path = dataset_dir / entry["file_name"]
    return path, _messages_rows(path, entry)


def _messages_rows(path: Path, entry: dict) -> Iterator[dict]:
    to_messages = _from_alpaca(entry) if entry.get("formatting", "alpaca") == "alpaca" else _from_sharegpt(entry)
    for n, row in _json_rows(path):
        try:
            yield {"line": n, "messages": to_messages(row)}
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(str(path), n, f"not a row of this entry ({type(exc).__name__}: {exc})",
                            "rebuild the dataset with build_dataset") from None


def _json_rows(path: Path) -> Iterator[tuple[int | None, object]]:
    """(line, row) of a JSONL file, (None, row) of a JSON array file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(str(path), None, f"cannot read ({exc})", "rebuild the dataset") from None
    if path.suffix == ".json":
        try:
            yield from ((None, row) for row in json.loads(text))
        except ValueError as exc:
            raise DataError(str(path), None, f"not a JSON array ({exc})", "rebuild the dataset") from None
        return
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                yield n, json.loads(line)
            except ValueError as exc:
                raise DataError(str(path), n, f"not JSON ({exc})", "rebuild the dataset") from None


def _from_sharegpt(entry: dict) -> Callable[[dict], list[dict]]:
    cols, tags = entry.get("columns", {}), entry.get("tags", {})
    key, role, content = cols.get("messages", "conversations"), tags.get("role_tag", "from"), tags.get(
        "content_tag", "value")
    names = {tags.get("user_tag", "human"): "user", tags.get("assistant_tag", "gpt"): "assistant",
             tags.get("system_tag", "system"): "system"}
    return lambda row: [{"role": names[m[role]], "content": m[content]} for m in row[key]]


def _from_alpaca(entry: dict) -> Callable[[dict], list[dict]]:
    cols = {"prompt": "instruction", "query": "input", "response": "output", "system": "system",
            "history": "history", **entry.get("columns", {})}

    def to_messages(row: dict) -> list[dict]:
        msgs = [{"role": "system", "content": row[cols["system"]]}] if row.get(cols["system"]) else []
        for q, a in row.get(cols["history"]) or []:
            msgs += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        prompt = "\n".join(x for x in (row[cols["prompt"]], row.get(cols["query"])) if x)  # LF joins with \n
        return msgs + [{"role": "user", "content": prompt}, {"role": "assistant", "content": row[cols["response"]]}]

    return to_messages


def request_params(recipe: dict) -> dict:
    """Sampling settings of a predict/chat recipe → request parameters (LF's own keys travel as extras)."""
    params: dict = {"max_tokens": int(recipe.get("max_new_tokens", 1024))}  # why: LF's predict default
    if not recipe.get("do_sample", True):
        return {**params, "do_sample": False, "temperature": 0.0}
    for key in ("temperature", "top_p", "top_k"):
        if key in recipe:
            params[key] = recipe[key]
    return params


def predict_text(parsed: Parsed, message: dict) -> str:
    """What LF's predict would have written: reasoning from a separate field goes back inline."""
    if parsed.form in _SEPARATE:
        return f"<think>\n{parsed.reasoning}\n</think>\n\n{parsed.answer}"
    return message.get("content") or ""


def predictions(rows: list[dict], client, params: dict) -> tuple[list[dict], list[str]]:
    """Ask for every row's last assistant turn; returns LF-shaped prediction rows (input order) and failures."""
    from .client import EndpointError

    jobs = [(r["messages"][:-1], params) for r in rows]
    out: list[dict | None] = [None] * len(rows)
    failures = []
    for i, result in client.map(jobs):
        if isinstance(result, EndpointError):
            failures.append(f"row {rows[i]['line']}: {result}")
            continue
        out[i] = {"prompt": rows[i]["messages"][-2]["content"], "predict": predict_text(result.parsed, result.message),
                  "label": rows[i]["messages"][-1]["content"], "finish_reason": result.finish_reason,
                  "reasoning_form": result.parsed.form}
    return [o for o in out if o is not None], failures


def openai_finetune_rows(rows: Iterator[dict], reasoning: str = "keep") -> Iterator[dict]:
    """OpenAI fine-tuning JSONL: ``{"messages": […]}``; ``reasoning="drop"`` removes leading think blocks."""
    for row in rows:
        msgs = []
        for m in row["messages"]:
            content = m["content"]
            if reasoning == "drop" and m["role"] == "assistant":
                content = _THINK_BLOCK.sub("", content)
            msgs.append({"role": m["role"], "content": content})
        yield {"messages": msgs}
