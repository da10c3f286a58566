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
from llamafactory_ext.records import Sample, Skipped

FIXTURES = Path(__file__).parent / "fixtures" / "markdown"
CASES = sorted(p.stem for p in FIXTURES.glob("*.md"))


def _row(s: Sample) -> dict:
    user, assistant = s.turns
    return {"kind": s.kind, "line": s.line, "breadcrumb": s.meta["breadcrumb"], "user": user.content,
            "assistant": assistant.content, "reasoning": assistant.reasoning}


def _convert(name: str) -> list[Sample | DataError]:
    """Samples and errors of a fixture; deliberate drops (Skipped) are tested on their own."""
    got = convert_markdown((FIXTURES / f"{name}.md").read_text(encoding="utf-8"), source=f"{name}.md")
    return [r for r in got if not isinstance(r, Skipped)]


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
    got = list(convert_markdown(text, source="n.md", strict=True))
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
    got = list(convert_markdown(text, source="n.md", strict=True))
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


def _split(text: str, **kw) -> tuple[list[Sample], list[Skipped]]:
    got = list(convert_markdown(text, source="n.md", **kw))
    assert not [r for r in got if isinstance(r, DataError)]
    return [r for r in got if isinstance(r, Sample)], [r for r in got if isinstance(r, Skipped)]


def test_front_matter_names_the_document_and_never_reaches_a_sample():
    samples, _ = _split("---\ntitle: RSA 笔记\ntags: [crypto]\n---\n\n# 模数\n\n模数 n 是两个素数之积。\n")
    (s,) = samples
    assert s.meta["title"] == "RSA 笔记" and s.line == 6 and "tags" not in s.turns[1].content


def test_admonition_marker_goes_content_stays_dedented_and_placeholders_are_drops():
    text = ("# 费马\n\n???+ note \"证明\"\n    由欧拉定理可得。\n\n    ```python\n    pow(a, p - 1, p)\n    ```\n\n"
            "!!! warning\n    待补充\n")
    samples, drops = _split(text)
    assert samples[0].turns[1].content == "由欧拉定理可得。\n\n```python\npow(a, p - 1, p)\n```"
    # the code has no prose of its own (a counted drop), the placeholder admonition is another
    assert [(d.line, d.kind, d.reason) for d in drops] == [(6, "code_block", "short_explanation"),
                                                           (10, "admonition", "placeholder")]


def test_html_details_unwrapped_comments_removed_tags_become_text():
    text = ("# 题\n\n<!-- 草稿 -->\n<div align=\"center\">\n<img src=\"a.png\" alt=\"流程图\">\n</div>\n\n"
            "<details><summary>展开</summary>\n\n**哈希** 是<b>单向</b>函数。\n\n</details>\n")
    (s,), _ = _split(text)
    assert s.turns[1].content == "流程图\n\n展开\n\n**哈希** 是单向函数。"


@pytest.mark.parametrize(("body", "reason"), [("![图](a.png)", "image_only"), ("- [甲](#甲)\n- [乙](#乙)", "toc"),
                                              ("详见 [文档](https://x.org)", "link_only"), ("TODO", "placeholder")])
def test_answers_with_nothing_to_learn_are_located_drops(body, reason):
    samples, drops = _split(f"# 主题\n\n{body}\n\n# 下一节\n\n正文内容。\n")
    assert [s.turns[1].content for s in samples] == ["正文内容。"]
    assert [(d.line, d.kind, d.reason) for d in drops] == [(1, "section", reason)]


def test_one_sample_kind_per_code_block_and_lead_in_of_next_block_is_not_an_explanation():
    text = ("# 解密\n\n用私钥解密：\n\n```python\nm = pow(c, d, n)\n```\n\n这里 d 是 e 模 phi 的逆元，所以 m 就是明文。\n\n"
            "结果如下：\n\n```python\nprint(long_to_bytes(m))\n```\n")
    samples, drops = _split(text)
    code = [(s.kind, s.line) for s in samples if s.kind != "explain_topic"]
    assert code == [("explain_code", 5), ("write_code", 13)] or code == [("explain_code", 5)]
    first = next(s for s in samples if s.kind == "explain_code")
    assert "结果如下" not in first.turns[1].content and "逆元" in first.turns[1].content
    assert {s.meta["group"] for s in samples} == {"n.md:1"}  # one section, one split group


def test_question_heading_rules():
    text = ("## Q1. 什么是盐？\n\n**问：** 盐有什么用？\n\n**答：** 防彩虹表。\n\n"
            "## 53. 请说明 CBC 模式。\n\n### 加密\n\n每块先异或上一块密文。\n\n"
            "## 6、下面代码输出什么？\n\n```python\nprint(2 ** 3)\n```\n\n输出 8。\n\n## 为什么？\n")
    samples, drops = _split(text)
    assert [(s.line, s.turns[0].content, s.turns[1].content) for s in samples] == [
        (3, "什么是盐？\n\n盐有什么用？", "防彩虹表。"),
        (7, "请说明 CBC 模式。", "### 加密\n\n每块先异或上一块密文。"),
        (13, "下面代码输出什么？\n\n```python\nprint(2 ** 3)\n```", "输出 8。"),
    ]
    assert [(d.line, d.reason) for d in drops] == [(21, "no_answer")]
    with pytest.raises(AssertionError):  # strict: the unanswered question is an error, the build goes on
        _split(text, strict=True)
