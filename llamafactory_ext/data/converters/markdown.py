"""Markdown notes → Samples: scan thinking tags, parse once with markdown-it, apply the Q&A rules.

The rules live in data/parse/qa.py (its docstring has the tables); this module only normalizes the
extracted strings (never the raw file, so every line number stays true) and builds the records.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from pathlib import PurePath

from ...errors import DataError
from ...records import Sample, Skipped, Turn
from ..normalize import normalize
from ..parse.clean import clean_markdown
from ..parse.content import images_to_alt
from ..parse.markdown import parse_markdown
from ..parse.qa import Unit, find_units
from ..parse.thinking import flatten, scan_thinking


def convert_markdown(text: str, *, source: str, t2s: str = "t2s", strict: bool = False
                     ) -> Iterator[Sample | DataError | Skipped]:
    """Samples of one markdown file in line order, a DataError for each broken question, a Skipped for
    each deliberate drop (placeholder, image/link-only or TOC answer, short explanation, question with
    no answer; ``strict`` makes the last a DataError).

    Problems that make the whole file unreadable (unclosed, stray or mismatched thinking tags) are
    raised as DataError instead. Reasoning is returned flattened (see thinking.flatten), without tags.
    Every Sample carries ``meta["group"]`` (``file:line`` of its section or question: samples of one
    unit share it) and, when the front matter names one, ``meta["title"]``. A file with no level-1
    heading is named by its front-matter title, else by its file name, at the head of each topic.

    >>> [(s.kind, s.line, s.turns[0].content, s.turns[1].content, s.turns[1].reasoning)
    ...  for s in convert_markdown("问：什麼是雜湊？\\n<think>回憶定義</think>\\n答：單向函數。", source="n.md")]
    [('qa', 1, '什么是杂凑？', '单向函数。', '回忆定义')]
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")  # markdown-it counts a lone \r as a line end too
    cleaned = clean_markdown(text)
    scan = scan_thinking(cleaned.text, source)
    # Breadcrumbs and code repeat across a file's samples: normalize each distinct string once.
    norm = functools.lru_cache(maxsize=4096)(functools.partial(normalize, t2s=t2s))
    title = cleaned.title or _stem_title(source)
    units = find_units(scan, parse_markdown(scan.text), source, strict=strict, title=title)
    drops = [Skipped(source, d.line, d.kind, d.reason, d.excerpt) for d in cleaned.drops]
    for unit in sorted([*units, *drops], key=lambda u: u.line or 0):
        yield unit if isinstance(unit, DataError | Skipped) else _sample(unit, source, norm, cleaned.title)


def _stem_title(source: str) -> str:
    """A file name as a document title ("linear-equation.md" → "linear equation"), for files with no title."""
    stem = PurePath(source).stem.replace("-", " ").replace("_", " ").strip()
    return "" if stem.lower() in ("readme", "index", "") else stem


def _sample(unit: Unit, source: str, norm: Callable[[str], str], title: str) -> Sample:
    reasoning = "\n\n".join(flatten(b) for b in unit.reasoning)
    answer = Turn("assistant", norm(images_to_alt(unit.assistant)), norm(reasoning) if reasoning else None)
    meta = {"breadcrumb": [norm(p) for p in unit.breadcrumb], "group": f"{source}:{unit.group or unit.line}"}
    if title:
        meta["title"] = norm(title)
    return Sample(
        turns=(Turn("user", norm(images_to_alt(unit.user))), answer),
        kind=unit.kind,
        source=source,
        line=unit.line,
        meta=meta,
    )
