"""Markdown notes → Samples: scan thinking tags, parse once with markdown-it, apply the Q&A rules.

The rules live in data/parse/qa.py (its docstring has the tables); this module only normalizes the
extracted strings (never the raw file, so every line number stays true) and builds the records.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator

from ...errors import DataError
from ...records import Sample, Turn
from ..normalize import normalize
from ..parse.markdown import parse_markdown
from ..parse.qa import Unit, find_units
from ..parse.thinking import flatten, scan_thinking


def convert_markdown(text: str, *, source: str, t2s: str = "t2s") -> Iterator[Sample | DataError]:
    """Samples of one markdown file in line order, and a DataError for each broken question.

    Problems that make the whole file unreadable (unclosed, stray or mismatched thinking tags) are
    raised as DataError instead. Reasoning is returned flattened (see thinking.flatten), without tags.

    >>> [(s.kind, s.line, s.turns[0].content, s.turns[1].content, s.turns[1].reasoning)
    ...  for s in convert_markdown("问：什麼是雜湊？\\n<think>回憶定義</think>\\n答：單向函數。", source="n.md")]
    [('qa', 1, '什么是杂凑？', '单向函数。', '回忆定义')]
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")  # markdown-it counts a lone \r as a line end too
    scan = scan_thinking(text, source)
    # Breadcrumbs and code repeat across a file's samples: normalize each distinct string once.
    norm = functools.lru_cache(maxsize=4096)(functools.partial(normalize, t2s=t2s))
    for unit in find_units(scan, parse_markdown(scan.text), source):
        yield unit if isinstance(unit, DataError) else _sample(unit, source, norm)


def _sample(unit: Unit, source: str, norm: Callable[[str], str]) -> Sample:
    reasoning = "\n\n".join(flatten(b) for b in unit.reasoning)
    answer = Turn("assistant", norm(unit.assistant), norm(reasoning) if reasoning else None)
    return Sample(
        turns=(Turn("user", norm(unit.user)), answer),
        kind=unit.kind,
        source=source,
        line=unit.line,
        meta={"breadcrumb": [norm(p) for p in unit.breadcrumb]},
    )
