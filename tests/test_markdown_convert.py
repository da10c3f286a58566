"""Markdown notes → Samples: fixture files (input .md → expected .json) and located per-question errors.

Each tests/fixtures/markdown/<case>.md is converted and compared with <case>.json, a list of
{kind, line, breadcrumb, user, assistant, reasoning} in line order.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llamafactory_ext.data.converters.markdown import convert_markdown
from llamafactory_ext.data.parse.thinking import scan_thinking
from llamafactory_ext.errors import DataError
from llamafactory_ext.records import Sample

FIXTURES = Path(__file__).parent / "fixtures" / "markdown"
CASES = sorted(p.stem for p in FIXTURES.glob("*.md"))


def _row(s: Sample) -> dict:
    user, assistant = s.turns
    return {"kind": s.kind, "line": s.line, "breadcrumb": s.meta["breadcrumb"], "user": user.content,
            "assistant": assistant.content, "reasoning": assistant.reasoning}


def _convert(name: str) -> list[Sample | DataError]:
    return list(convert_markdown((FIXTURES / f"{name}.md").read_text(encoding="utf-8"), source=f"{name}.md"))


@pytest.mark.parametrize("name", CASES)
def test_fixture(name):
    expected = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    got = _convert(name)
    assert not [r for r in got if isinstance(r, DataError)]
    assert [_row(s) for s in got] == expected


def test_fixtures_cover_every_kind_and_habit():
    rows = [r for name in CASES for r in json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))]
    assert {r["kind"] for r in rows} == {"qa", "explain_topic", "explain_code", "write_code"}
    assert any(r["reasoning"] and "【第3层思考】" in r["reasoning"] for r in rows)  # 3 nested levels


@pytest.mark.parametrize("name", CASES)
def test_no_thinking_tags_left_outside_code(name):
    for s in _convert(name):
        for text in (s.turns[0].content, s.turns[1].content, s.turns[1].reasoning or ""):
            assert scan_thinking(text).blocks == ()  # raises on a stray tag, finds none outside code


def test_line_of_each_sample_points_at_its_question():
    lines = (FIXTURES / "qa_markers.md").read_text(encoding="utf-8").split("\n")
    for s in _convert("qa_markers"):
        assert lines[s.line - 1].lstrip("*").startswith(("问", "Q"))


def test_crlf_keeps_line_numbers_and_t2s_applies_to_extracted_text_only():
    text = "# 標題\r\n\r\n問：甲？\r\n\r\n問：什麼是雜湊？\r\n<think>\r\n回憶\r\n</think>\r\n答：單向函數。\r\n"
    got = list(convert_markdown(text, source="n.md"))
    assert [r.render() if isinstance(r, DataError) else r.line for r in got] == [
        "n.md:3:1: question has no answer — add a line starting with 答： (or A:) after the question, before line 5",
        5,
    ]
    assert (got[1].turns[0].content, got[1].turns[1].reasoning, got[1].meta["breadcrumb"]) == (
        "什么是杂凑？", "回忆", ["标题"])
    untouched = next(convert_markdown("問：甲？\n答：雜湊。", source="n.md", t2s="off"))
    assert untouched.turns[1].content == "雜湊。"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "问：为什么？\n<think>\n\n</think>\n答：因为。\n",
            "n.md:2:1: empty <think> block: no reasoning inside — write the reasoning between the tags, or delete them",
        ),
        (
            "问：为什么？\n<thinking>外层<think> </think></thinking>\n答：因为。\n",
            "n.md:2:13: empty <think> block: no reasoning inside — write the reasoning between the tags, or delete them",
        ),
        (
            "## 问题：为什么？\n\n<think>\n想一想\n</think>\n\n## 问题：下一题？\n\n好。\n",
            "n.md:5:1: reasoning ends here but no answer follows it — write the answer after </think> "
            "(the question at line 1)",
        ),
        (
            "问：为什么？\n答：因为。\n<think>事后的想法</think>\n\n问：下一题？\n答：好。\n",
            "n.md:3:13: reasoning ends here but no answer follows it — write the answer after </think> "
            "(the question at line 1)",
        ),
        (
            "# 主题\n\n<think>只有推理</think>\n\n# 下一节\n\n正文。\n",
            "n.md:3:12: reasoning ends here but no answer follows it — write the answer after </think> "
            "(the section at line 1)",
        ),
        (
            "问：为什么？\n\n问：下一题？\n答：好。\n",
            "n.md:1:1: question has no answer — add a line starting with 答： (or A:) after the question, before line 3",
        ),
        (
            "## 问题：为什么？\n## 问题：下一题？\n好。\n",
            "n.md:1:1: question has no answer — write the answer after the question, before line 2",
        ),
        (
            "- **为什么？**\n- **下一题？** 好。\n",
            "n.md:1:3: question has no answer — write the answer after the question",
        ),
        (
            "<think>开头的推理</think>\n\n问：下一题？\n答：好。\n",
            "n.md:1:1: <think> block belongs to no question or section — move it between a question and its answer "
            "(or under a heading)",
        ),
    ],
    ids=["empty", "empty-nested", "thinking-no-answer", "thinking-after-answer", "topic-thinking-only",
         "question-no-answer", "heading-no-answer", "faq-no-answer", "orphan-thinking"],
)
def test_per_question_errors_are_yielded_located_and_the_rest_converts(text, message):
    got = list(convert_markdown(text, source="n.md"))
    errors = [r for r in got if isinstance(r, DataError)]
    assert [e.render() for e in errors] == [message]
    samples = [r for r in got if isinstance(r, Sample)]
    assert all(s.turns[1].content in ("好。", "因为。", "正文。") for s in samples)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "# 题\n\n问：为什么？\n<think>\n想一想\n答：因为。\n\n问：下一题？\n答：好。\n",
            "n.md:4:1: <think> opened here is never closed — add </think> where the reasoning ends "
            "(the answer starts at line 6; the next question or heading starts at line 8)",
        ),
        ("问：为什么？\n答：因为。</think>\n",
         "n.md:2:6: closing </think> has no opening tag — delete it, or add <think> where the reasoning starts"),
        ("问：为什么？\n<think>\n想\n</thinking>\n答：因为。\n",
         "n.md:4:1: </thinking> does not match <think> opened at 2:1 — close it with </think> (or open it with <thinking>)"),
    ],
    ids=["unclosed", "stray", "mismatched"],
)
def test_file_level_tag_errors_are_raised_located(text, message):
    with pytest.raises(DataError) as err:
        list(convert_markdown(text, source="n.md"))
    assert str(err.value) == message


def test_tag_inside_code_fence_is_kept_as_code_not_reasoning():
    text = "问：怎样标记推理？\n答：用标签包住推理：\n\n```xml\n<think>\n推理\n</thinking>\n```\n"
    (sample,) = convert_markdown(text, source="n.md")
    assert sample.turns[1].reasoning is None
    assert sample.turns[1].content == "用标签包住推理：\n\n```xml\n<think>\n推理\n</thinking>\n```"


def test_bold_answer_text_after_a_plain_marker_keeps_its_asterisks():
    text = "# T\n\n问：私钥会怎样？\n\n答：**私钥会被直接算出来。** 因为 k 重复。\n\n**问：** 什么是盐？\n\n**答：** 盐是随机数。\n"
    answers = [s.turns[1].content for s in convert_markdown(text, source="t.md")]
    assert answers == ["**私钥会被直接算出来。** 因为 k 重复。", "盐是随机数。"]
