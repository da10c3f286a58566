"""Thinking-tag scanner: positions, nesting, code is not tags, located errors, flatten, and properties."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llamafactory_ext.data.parse.thinking import ThinkBlock, empty_block, flatten, scan_thinking
from llamafactory_ext.errors import DataError

NESTED = """\
问：为什么先哈希再签名？
<thinking>
第一层开头。

<think>
第二层，
<thinking>第三层：分块可被重排。</thinking>
第二层收尾。
</think>

第一层收尾。
</thinking>
答：因为摘要定长。
"""


def test_blank_lines_inside_reasoning_keep_one_block_and_line_numbers():
    scan = scan_thinking(NESTED)
    assert len(scan.blocks) == 1
    block = scan.blocks[0]
    assert (block.tag, block.start_line, block.start_col, block.end_line, block.end_col) == ("thinking", 2, 1, 12, 1)
    # The block is replaced by its newlines: every other line keeps its number.
    assert scan.text.split("\n")[0] == "问：为什么先哈希再签名？"
    assert scan.text.split("\n")[12] == "答：因为摘要定长。"
    assert scan.text.count("\n") == NESTED.count("\n")
    assert scan.text[scan.offsets[0] : scan.offsets[0] + scan.newlines(0)] == "\n" * 10


def test_nesting_records_every_tag_position():
    outer = scan_thinking(NESTED).blocks[0]
    (middle,) = outer.children
    (inner,) = middle.children
    assert (middle.tag, middle.start_line, middle.start_col, middle.end_line, middle.end_col) == ("think", 5, 1, 9, 1)
    assert (inner.tag, inner.start_line, inner.start_col, inner.end_line, inner.end_col) == ("thinking", 7, 1, 7, 22)
    assert inner.parts == ("第三层：分块可被重排。",)
    assert "第二层收尾" in middle.text and "第三层" not in middle.text


def test_flatten_three_levels_documented_scheme():
    assert flatten(scan_thinking(NESTED).blocks[0]) == (
        "第一层开头。\n"
        "【第2层思考】\n"
        "  第二层，\n"
        "  【第3层思考】\n"
        "    第三层：分块可被重排。\n"
        "  第二层收尾。\n"
        "第一层收尾。"
    )


def test_inline_block_on_one_line():
    scan = scan_thinking("答：<think>先想</think>结论")
    assert scan.text == "答：结论"
    assert (scan.blocks[0].start_col, scan.blocks[0].end_col, scan.offsets) == (3, 12, (2,))


@pytest.mark.parametrize(
    "text",
    [
        "```\n<think>\n```\n",
        "~~~markdown\n</thinking>\n~~~\n",
        "- 列表里的代码：\n  ```html\n  <think>x\n  ```\n",
        "> ```\n> </think>\n> ```\n",
        "行内代码 `<think>` 与 ``</think>`` 都不是标签",
        "转义的 \\<think> 不是标签",
    ],
)
def test_tags_in_code_or_escaped_are_text(text):
    scan = scan_thinking(text, "n.md")
    assert scan.blocks == () and scan.text == text


def test_tag_after_code_span_on_same_line_counts():
    scan = scan_thinking("用 `<think>` 包住：<think>真的推理</think>答")
    assert [b.parts for b in scan.blocks] == [("真的推理",)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "# 题\n\n问：为什么？\n<think>\n想一想\n答：因为。\n\n问：下一题？\n答：好。\n",
            "n.md:4:1: <think> opened here is never closed — add </think> where the reasoning ends "
            "(the answer starts at line 6; the next question or heading starts at line 8)",
        ),
        (
            "问：为什么？\n<think>\n```\n</think>\n答：因为。\n",
            "n.md:2:1: <think> opened here is never closed — add </think> where the reasoning ends "
            "(the ``` code fence opened at line 3 is never closed, so the rest is code)",
        ),
        (
            "问：为什么？\n答：因为。</think>\n",
            "n.md:2:6: closing </think> has no opening tag — delete it, or add <think> where the reasoning starts",
        ),
        (
            "问：为什么？\n<think>\n想\n</thinking>\n答：因为。\n",
            "n.md:4:1: </thinking> does not match <think> opened at 2:1 — close it with </think> "
            "(or open it with <thinking>)",
        ),
        (
            "<thinking>外层<think>内层</thinking></think>",
            "n.md:1:22: </thinking> does not match <think> opened at 1:13 — close it with </think> "
            "(or open it with <thinking>)",
        ),
    ],
    ids=["unclosed", "unclosed-fence", "stray", "mismatched", "mismatched-nested"],
)
def test_structural_errors_are_located_with_a_fix(text, message):
    with pytest.raises(DataError) as err:
        scan_thinking(text, "n.md")
    assert str(err.value) == message


def test_empty_block_is_found_at_any_depth():
    blocks = scan_thinking("<think>\n \n</think><think>外<think> </think></think><think><think>x</think></think>").blocks
    assert empty_block(blocks[0]) is blocks[0]
    assert empty_block(blocks[1]) is blocks[1].children[0]
    assert empty_block(blocks[2]) is None  # only a nested layer, but that layer has reasoning


# --- properties ------------------------------------------------------------------------------------

_TAG = re.compile(r"</?think(?:ing)?[ \t]*>", re.IGNORECASE)
_ALPHABET = st.sampled_from(list("<>/`~ \t\n#-*问答：:thinkTHINKg密码学") + ["think", "<think", "thinking>", "```"])


@settings(max_examples=300, deadline=None)
@given(st.lists(_ALPHABET, max_size=60).map("".join))
def test_text_without_tags_passes_unchanged(text):
    if _TAG.search(text):
        text = _TAG.sub("", text)
    if _TAG.search(text):  # removing one tag can join two halves of another
        return
    scan = scan_thinking(text)
    assert scan.text == text and scan.blocks == ()


_WORDS = st.text(alphabet="密码学哈希签名 abc\n", min_size=1, max_size=12).filter(str.strip)
_TREE = st.recursive(_WORDS, lambda kids: st.lists(kids, min_size=1, max_size=3).map(tuple), max_leaves=12)


def _render(node) -> str:
    if isinstance(node, str):
        return node
    return "".join(f"<think>{_render(k)}</think>" if isinstance(k, tuple) else k for k in node)


@settings(max_examples=200, deadline=None)
@given(_TREE)
def test_flatten_keeps_all_text_and_no_tags(tree):
    inner = _render(tree)
    (block,) = scan_thinking(f"<thinking>{inner}</thinking>").blocks
    flat = flatten(block)
    assert not _TAG.search(flat)
    without_marks = re.sub(r"【第\d+层思考】", "", flat)
    assert "".join(without_marks.split()) == "".join(_TAG.sub("", inner).split())
    assert isinstance(block, ThinkBlock) and block.end_line == 1 + inner.count("\n")


def test_500_nested_blocks_are_a_located_error_not_a_recursion_error():
    from llamafactory_ext.data.parse.thinking import MAX_DEPTH
    text = "问：为什么？\n" + "<thinking>想" * 500 + "</thinking>" * 500 + "\n答：好。\n"
    with pytest.raises(DataError) as err:
        scan_thinking(text, "n.md")
    assert err.value.render().startswith(f"n.md:2:{MAX_DEPTH * 11 + 1}: <thinking> nested more than {MAX_DEPTH} levels")
    ok = "<think>x" * MAX_DEPTH + "</think>" * MAX_DEPTH
    assert len(scan_thinking(ok).blocks) == 1
