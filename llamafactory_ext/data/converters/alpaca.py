"""alpaca / Belle rows (instruction, input, output, optional system, history, tools and media) → Sample.

Belle rows take this same path, so nested-dict fields ({"instruction": {"instruction": …}}) are repaired for both.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from ...errors import DataError
from ...records import MEDIA, Sample, Turn
from .common import Converted, convert_rows, split_reasoning, text_field
from .structured import check_placeholders, media_columns, tools_text

KNOWN = {"instruction", "input", "output", "system", "history", "tools", *MEDIA}


def convert_alpaca(records: Iterable[tuple[int, object] | DataError], source: str, *, kind: str = "alpaca",
                   media_root: Path | None = None, allow_media: bool = True) -> Iterator[Converted]:
    """Yield one Sample per row, a DataError for a row that cannot be used, a Note per unused row key.

    ``kind``: the source kind named in the wrong-kind message ("belle" for Belle files).
    ``media_root``: where relative media paths are read from (default: the data file's folder).
    ``allow_media``: False when the target model is text-only; a row with media is then a located error.
    """
    root = Path(media_root) if media_root is not None else Path(source).parent

    def one(row: object, path: str, line: int) -> Sample:
        sample = _row(row, path, line)
        media = media_columns(row, path, line, root, allow_media)  # type: ignore[arg-type]
        check_placeholders(list(sample.turns), media, path, line)
        return sample.with_(tools=tools_text(row.get("tools"), path, line), **media)  # type: ignore[union-attr]

    return convert_rows(records, source, one, kind, lambda row: KNOWN)


def _row(row: object, path: str, line: int) -> Sample:
    if not isinstance(row, dict):
        raise DataError(path, line, f"row is a {type(row).__name__}, expected an object with instruction/output",
                        'write one object per row: {"instruction": …, "input": "", "output": …}')
    missing = [k for k in ("instruction", "output") if k not in row]
    if missing:
        raise DataError(path, line, f"missing key(s) {', '.join(missing)} (found: {', '.join(map(str, row)) or 'none'})",
                        "alpaca rows need 'instruction' and 'output' ('input', 'system', 'history' are optional)")
    prompt = "\n".join(p for p in (text_field(row["instruction"], "instruction", path, line).strip(),
                                   text_field(row.get("input"), "input", path, line).strip()) if p)
    reasoning, answer = split_reasoning(text_field(row["output"], "output", path, line), path, line)
    turns = [*_history(row.get("history"), path, line), Turn("user", prompt), Turn("assistant", answer, reasoning)]
    return Sample(tuple(turns), system=text_field(row.get("system"), "system", path, line).strip(),
                  kind="chat" if len(turns) > 2 else "instruction", source=path, line=line)


def _history(value: object, path: str, line: int) -> list[Turn]:
    if value in (None, ""):
        return []
    ok = isinstance(value, list) and all(isinstance(p, list) and len(p) == 2 for p in value)
    if not ok:
        raise DataError(path, line, "'history' must be a list of [question, answer] pairs",
                        'write "history": [["earlier question", "earlier answer"], …] or leave it out')
    turns = []
    for q, a in value:
        reasoning, answer = split_reasoning(text_field(a, "history", path, line), path, line)
        turns += [Turn("user", text_field(q, "history", path, line)), Turn("assistant", answer, reasoning)]
    return turns
