"""alpaca / Belle rows (instruction, input, output, optional system and history) → Sample."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from ...errors import DataError
from ...records import Sample, Turn
from .common import convert_rows, split_reasoning, text_field

KNOWN = {"instruction", "input", "output", "system", "history", "id"}


def convert_alpaca(records: Iterable[tuple[int, object] | DataError], source: str) -> Iterator[Sample | DataError]:
    """Yield one Sample per row, or a DataError for a row that cannot be used."""
    return convert_rows(records, source, _row)


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
