"""A kept sample as the write pass needs it, made where the sample is (a worker): its LF row as JSON text, its
provenance fields, leakage digests, lengths — so the main process never formats, counts or holds whole samples.

``prepare`` is pure and per sample; the JSON it makes is exactly what ``io.jsonl_text`` would write for the row
that ``formats.format_split`` builds (tested byte for byte), with the optional columns spliced in per split.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from typing import NamedTuple

from ..records import Sample
from .formats import EXTRA_COLUMNS, base_row, column_value, needed_columns
from .split import Unit, unit

COLUMN_BITS = {c: 1 << i for i, c in enumerate(EXTRA_COLUMNS)}  # flags: the optional columns a sample needs …
TOOL_CALLS, REASONING = 1 << len(EXTRA_COLUMNS), 2 << len(EXTRA_COLUMNS)  # … and what the entry / the gate ask
_EMPTY = {c: '""' if c == "tools" else "[]" for c in EXTRA_COLUMNS}  # a column's value on a row without it


@dataclass(frozen=True, slots=True)
class RowSpec:
    """How rows are written (from the CLI): LF format, reasoning mode, output folder, token counter's model."""

    fmt: str = "sharegpt"
    mode: str = "think"
    out_dir: str | None = None  # media paths are written relative to it
    model: str | None = None  # None: the estimator


class Written(NamedTuple):
    """What the write pass needs of one kept sample (pickled in the worker, unpickled only when written)."""

    row: str  # the row's JSON without the optional columns
    columns: dict[str, str]  # optional column → its JSON value, for the columns this sample needs
    provenance: str  # JSON of provenance_fields, without its braces
    code: tuple[bytes, ...]  # digests of long code blocks (leakage)
    answers: tuple[bytes, ...]  # digests of long answers (leakage)
    chars: int
    tokens: int
    reasoning: bool


def prepare(s: Sample, spec: RowSpec) -> tuple[Unit, int, bytes]:
    """The split's view of the sample, its flags (columns it needs, tool calls, reasoning) and its pickled Written
    record."""
    from .report import leak_digests, provenance_fields, with_overhead

    counter, text, columns = _counter(spec.model), s.text, needed_columns(s)
    code, answers = leak_digests(s)
    u = unit(s)
    written = Written(
        row=_dumps(base_row(s, spec.fmt, spec.mode)),  # type: ignore[arg-type]
        columns={c: _dumps(column_value(s, c, spec.out_dir)) for c in columns},
        provenance=_dumps(provenance_fields(s, u.group))[1:-1], code=code, answers=answers,
        chars=len(text), tokens=with_overhead(counter.count([text])[0], s, counter), reasoning=s.has_reasoning)
    flags = sum(COLUMN_BITS[c] for c in columns) | (TOOL_CALLS * s.has_tool_calls) | (REASONING * written.reasoning)
    return u, flags, pickle.dumps(written, protocol=pickle.HIGHEST_PROTOCOL)


def row_line(w: Written, extra: list[str]) -> str:
    """The data file line: the row with the split's optional columns ("" / [] where the sample has none)."""
    if not extra:
        return w.row + "\n"
    tail = "".join(f", {_dumps(c)}: {w.columns.get(c, _EMPTY[c])}" for c in extra)
    return w.row[:-1] + tail + "}\n"


def provenance_line(uid: str, split_name: str, row: int, w: Written) -> str:
    """One provenance row; ``uid`` (hex) and ``split_name`` (train/val/test) need no JSON escaping."""
    return f'{{"id": "{uid}", "split": "{split_name}", "row": {row}, {w.provenance}}}\n'


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)  # as io.jsonl_text writes rows


_COUNTERS: dict = {}


def _counter(model: str | None):
    """The token counter, made once per process (a tokenizer takes a while to load)."""
    if model not in _COUNTERS:
        from ..tokens import counter_for, estimator

        _COUNTERS[model] = counter_for(model) if model else estimator()
    return _COUNTERS[model]
