"""Real public notes the project did not write (tests/fixtures/real/notes, see SOURCES.md) → samples.

Measurable properties on every file: conversion runs, no site syntax or raw HTML reaches a sample,
no answer without text, code kept byte for byte, every sample grouped by its source unit.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest

from llamafactory_ext.data.converters.markdown import convert_markdown
from llamafactory_ext.data.parse.content import drop_reason
from llamafactory_ext.errors import DataError
from llamafactory_ext.records import Sample, Skipped

NOTES = Path(__file__).parent / "fixtures" / "real" / "notes"
FILES = sorted(p for p in NOTES.rglob("*.md") if p.name != "SOURCES.md")
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})[^\n]*\n(.*?)^ {0,3}\1[ \t]*$", re.MULTILINE | re.DOTALL)
TAG = re.compile(r"</?(?:details|summary|p|div|center|br|img|b|i|font|span|table|tr|td|sup|sub|a|html|body)\b[^>]*>",
                 re.IGNORECASE)


def _id(p: Path) -> str:
    return str(p.relative_to(NOTES))


@cache
def _convert(path: Path) -> tuple:
    return tuple(convert_markdown(path.read_text(encoding="utf-8"), source=_id(path), t2s="off"))


def _samples(path: Path) -> list[Sample]:
    return [r for r in _convert(path) if isinstance(r, Sample)]


def _prose(text: str) -> str:
    """Text outside code fences and inline code: where markers and tags must not be."""
    return re.sub(r"`[^`\n]*`", "", FENCE.sub("", text))


def test_corpus_is_real_and_large_enough():
    repos = {p.relative_to(NOTES).parts[0] for p in FILES}
    assert len(FILES) >= 30 and len(repos) >= 3
    sources = (NOTES / "SOURCES.md").read_text(encoding="utf-8")
    assert all(_id(p) in sources for p in FILES)  # every file has its repository, commit and licence


@pytest.mark.parametrize("path", FILES, ids=_id)
def test_converts_without_exception_and_yields_samples_or_located_drops(path):
    got = _convert(path)
    assert not [r for r in got if isinstance(r, DataError)]
    assert all(r.line >= 1 and r.reason for r in got if isinstance(r, Skipped))


@pytest.mark.parametrize("path", FILES, ids=_id)
def test_no_site_syntax_html_or_empty_answers_in_samples(path):
    for s in _samples(path):
        for text in (s.turns[0].content, s.turns[1].content):
            prose = _prose(text)
            assert not re.search(r"^\s*(?:!!!|\?\?\?)", prose, re.MULTILINE), (s.origin, text[:200])
            assert not re.search(r"^\s*=== \"", prose, re.MULTILINE), (s.origin, text[:200])
            assert "<!--" not in prose and not TAG.search(prose), (s.origin, text[:200])
            assert "![" not in prose, (s.origin, text[:200])  # images became their alt text
        assert drop_reason(s.turns[1].content) is None, (s.origin, s.turns[1].content[:200])


@pytest.mark.parametrize("path", FILES, ids=_id)
def test_every_code_line_is_a_line_of_the_source(path):
    """Byte-identical up to the indentation of an enclosing admonition, tab or list item."""
    source_lines = path.read_text(encoding="utf-8").split("\n")
    tails = {ln.lstrip(" \t") for ln in source_lines} | set(source_lines)
    for s in _samples(path):
        for text in (s.turns[0].content, s.turns[1].content):
            for m in FENCE.finditer(text):
                for line in m.group(2).split("\n")[:-1]:
                    assert line in tails or line.lstrip(" \t") in tails, (s.origin, line)
                    assert any(src.endswith(line) for src in source_lines), (s.origin, line)


@pytest.mark.parametrize("path", FILES, ids=_id)
def test_samples_carry_their_source_unit_group(path):
    for s in _samples(path):
        assert s.meta["group"].startswith(f"{_id(path)}:")


def test_code_samples_have_one_kind_per_block_and_real_code():
    seen: dict[tuple[str, int], str] = {}
    for path in FILES:
        for s in _samples(path):
            if s.kind in ("explain_code", "write_code"):
                assert (s.source, s.line) not in seen, s.origin  # never both kinds from one block
                seen[(s.source, s.line)] = s.kind
    assert len(seen) >= 50


def test_interview_layouts_pair_question_and_answer():
    jsq = _samples(NOTES / "javascript-questions" / "README-zh_CN.md")
    first = next(s for s in jsq if s.kind == "qa")
    # heading "###### 1. 输出是什么？": numbering stripped, the code and options belong to the question
    assert first.turns[0].content.startswith("输出是什么？\n\n```javascript\nfunction sayHi()")
    assert "- D: `undefined` 和 `ReferenceError`" in first.turns[0].content
    assert first.turns[1].content.startswith("答案：D") and "暂时性死区" in first.turns[1].content
    (cas,) = [s for s in _samples(NOTES / "advanced-java" / "high-concurrency" / "redis-cas.md") if s.kind == "qa"]
    assert cas.turns[0].content.startswith("Redis 的并发竞争问题是什么？")
    assert cas.turns[1].content.startswith("某个时刻，多个系统实例都去更新某个 key。")
    # "# 如何找出…？" over "## 题目描述" + "## 解答思路": one sample, the heading kept as context
    (ip,) = [s for s in _samples(NOTES / "advanced-java" / "big-data" / "find-top-1-ip.md") if s.kind == "qa"]
    assert ip.turns[0].content.startswith("如何找出某一天访问百度网站最多的 IP？\n\n现有海量日志数据")
    assert ip.turns[1].content.startswith("这道题只关心某一天访问百度最多的 IP")
    java = [r for p in sorted((NOTES / "advanced-java").rglob("*.md")) for r in _convert(p)]
    assert not [r for r in java if isinstance(r, Skipped) and r.reason == "no_answer"]


def test_drops_are_counted_with_reasons():
    reasons = {r.reason for p in FILES for r in _convert(p) if isinstance(r, Skipped)}
    assert {"link_only", "snippet_include", "short_explanation"} <= reasons
