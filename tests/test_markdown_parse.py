"""Markdown structure (blocks, sections, code context) and the Q&A rules on raw, un-normalized text."""

from __future__ import annotations

import doctest

import pytest

import llamafactory_ext.data.converters.markdown as convert_module
import llamafactory_ext.data.parse.clean as clean_module
import llamafactory_ext.data.parse.content as content_module
import llamafactory_ext.data.parse.markdown as markdown_module
import llamafactory_ext.data.parse.qa as qa_module
import llamafactory_ext.data.parse.thinking as thinking_module
from llamafactory_ext.data.parse.markdown import code_contexts, parse_markdown, sections
from llamafactory_ext.data.parse.qa import find_units
from llamafactory_ext.data.parse.thinking import scan_thinking
from llamafactory_ext.errors import DataError

NOTE = """\
# 密码学

## 哈希

SHA-256 是 `hashlib` 里的 **哈希**。

- 抗碰撞
- 抗原像

| 算法 | 输出 |
|------|------|
| SM3  | 256  |

> 注意：MD5 已不安全。

```python
# 注释，不是标题
## 也不是
print("x")
```

    indented code
"""


def test_components_keep_lines_and_source():
    doc = parse_markdown(NOTE)
    got = [(b.kind, b.line, b.end_line) for b in doc.blocks]
    assert got == [
        ("heading", 1, 1), ("heading", 3, 3), ("paragraph", 5, 5), ("list", 7, 8),
        ("table", 10, 12), ("blockquote", 14, 14), ("code", 16, 20), ("code", 22, 22),
    ]
    heading, para, lst, table, _, fence, indented = doc.blocks[1:]
    assert (heading.level, heading.title) == (2, "哈希")
    assert para.inline_code == ("hashlib",)
    assert lst.items == ((7, 7), (8, 8))
    assert doc.source(table) == "| 算法 | 输出 |\n|------|------|\n| SM3  | 256  |"
    assert (fence.lang, fence.code) == ("python", '# 注释，不是标题\n## 也不是\nprint("x")\n')
    assert doc.source(fence).startswith("```python\n# 注释") and doc.source(fence).endswith("```")
    assert (indented.lang, indented.code) == ("", "indented code\n")


def test_hash_lines_in_code_are_not_headings():
    titles = [s.path for s in sections(parse_markdown(NOTE))]
    assert titles == [(), ("密码学",), ("密码学", "哈希")]


def test_breadcrumb_follows_heading_levels():
    doc = parse_markdown("# A\n## B\n### C\n## D\ntext\n# E\n")
    assert [s.path for s in sections(doc)] == [(), ("A",), ("A", "B"), ("A", "B", "C"), ("A", "D"), ("E",)]
    assert [len(s.body) for s in sections(doc)] == [0, 0, 0, 0, 1, 0]


def test_code_context_before_after_and_intro_rule():
    doc = parse_markdown("# T\n\n先导入：\n\n```py\nimport a\n```\n\n导入了 a。\n\n再调用：\n\n```py\na.f()\n```\n\n| x |\n|---|\n\n```py\nb()\n```\n")
    ctxs = code_contexts(doc, sections(doc)[1])
    sources = [(doc.source(c.before) if c.before else None, [doc.source(a) for a in c.after]) for c in ctxs]
    # "再调用：" introduces the second block, so it does not explain the first; a table is not prose.
    assert sources == [("先导入：", ["导入了 a。"]), ("再调用：", []), (None, [])]


def test_output_fence_and_bold_pseudo_heading_stay_in_the_explanation():
    text = ("# T\n\n```python\nprint(pow(3, 5, 7))\n```\n\n运行结果如下：\n\n```\n5\n```\n\n**解析：**\n\n"
            "pow 的第三个参数是模数。\n\n接着求逆：\n\n```python\npow(3, -1, 7)\n```\n")
    doc = parse_markdown(text)
    ctxs = code_contexts(doc, sections(doc)[1])
    assert [c.code.code for c in ctxs] == ["print(pow(3, 5, 7))\n", "pow(3, -1, 7)\n"]  # "5" is output, not code
    assert [doc.source(a) for a in ctxs[0].after] == ["运行结果如下：", "```\n5\n```", "**解析：**", "pow 的第三个参数是模数。"]
    assert doc.source(ctxs[1].before) == "接着求逆："


@pytest.mark.parametrize(
    ("code", "lang", "is_code"),
    [("n = p * q\nphi = (p - 1) * (q - 1)\n", "", True), ("e8 3b 01 ff 9a\n00 11 22 33 44\n", "", False),
     ("[[1, 0], [0, 1]]\n", "", False), ("$ python exp.py\nflag{x}\n", "", False), ("flag{x}\n", "text", False),
     ("x\n", "sage", True), ("密文：VGhpcyBpcw==\n", "", False)],
)
def test_fences_that_hold_data_are_not_code(code, lang, is_code):
    doc = parse_markdown(f"```{lang}\n{code}```\n")
    assert doc.blocks[0].is_code is is_code


def _units(text: str, strict: bool = False):
    scan = scan_thinking(text, "n.md")
    return find_units(scan, parse_markdown(scan.text), "n.md", strict=strict)


@pytest.mark.parametrize(
    ("text", "question", "answer"),
    [
        ("问：甲？\n答：乙。", "甲？", "乙。"),
        ("问:甲?\n答:乙.", "甲?", "乙."),
        ("Q: What?\nA: That.", "What?", "That."),
        ("Q：什么？\nA：这个。", "什么？", "这个。"),
        ("**问：** 甲？\n**答：** 乙。", "甲？", "乙。"),
        ("**问**：甲？ **答**：乙。", "甲？", "乙。"),
        ("问：甲？答：乙。", "甲？", "乙。"),
        ("### 问题：甲\n\n乙。", "甲", "乙。"),
        ("## Q1. What?\n\nThat.", "What?", "That."),
        ("## 问题 3：甲\n\n答：乙。", "甲", "乙。"),
        ("## 为什么要填充？\n\n因为分组定长。", "为什么要填充？", "因为分组定长。"),
        ("- **甲？** 乙。", "甲？", "乙。"),
        ("- Q: What? A: That.", "What?", "That."),
        ("1. 问：甲？\n   答：乙。", "甲？", "乙。"),
    ],
)
def test_each_question_habit(text, question, answer):
    (unit,) = _units(text)
    assert (unit.kind, unit.line, unit.user, unit.assistant) == ("qa", 1, question, answer)


def test_answer_runs_to_next_question_or_same_level_heading():
    text = "## 问题：甲？\n\n乙。\n\n### 细节\n\n丙。\n\n## 其他\n\n丁。\n\n问：戊？\n答：己。\n\n庚。\n# 新章\n\n辛是天干。\n"
    units = _units(text)
    # "丁。" is prose outside the questions of a Q&A section: documented as unused.
    assert [(u.kind, u.line, u.assistant) for u in units] == [
        ("qa", 1, "乙。\n\n### 细节\n\n丙。"),
        ("qa", 13, "己。\n\n庚。"),
        ("explain_topic", 17, "辛是天干。"),
    ]


def test_answer_marker_without_question_is_text():
    (unit,) = _units("## 协议\n\nA: 发送 g^a\nB: 发送 g^b\n")
    assert (unit.kind, unit.assistant) == ("explain_topic", "A: 发送 g^a\nB: 发送 g^b")


def test_reasoning_attaches_to_its_own_question():
    units = _units("问：甲？\n答：乙。\n\n问：丙？\n<think>想丙</think>\n答：丁。\n")
    assert [u.reasoning and u.reasoning[0].parts for u in units] == [(), ("想丙",)]


def test_question_without_answer_is_located():
    (drop, unit) = _units("一些前言\n\n问：甲？\n\n问：乙？\n答：丙。")
    assert (drop.line, drop.kind, drop.reason, unit.user) == (3, "question", "no_answer", "乙？")
    (err, unit) = _units("一些前言\n\n问：甲？\n\n问：乙？\n答：丙。", strict=True)
    assert isinstance(err, DataError) and unit.user == "乙？"
    assert err.render() == (
        "n.md:3:1: question has no answer — add a line starting with 答： (or A:) after the question, before line 5"
    )


def test_long_whitespace_runs_parse_in_linear_time():
    # Regexes with touching whitespace runs took a minute on lines like this one.
    line = "问" + " " * 3000 + "1" + " " * 3000 + "x？" + " " * 3000 + "**" + " " * 3000
    units = _units(f"# T\n\n{line}\n\n**A" + " \t" * 3000 + "\n")
    assert [u.kind for u in units] == ["explain_topic"]  # no colon after 问, so no question


@pytest.mark.parametrize("module", [thinking_module, clean_module, markdown_module, content_module, qa_module,
                                    convert_module])
def test_docstring_examples_hold(module):
    result = doctest.testmod(module)
    assert result.attempted and not result.failed


def test_long_hex_like_lines_classify_in_linear_time():
    # A nested quantifier on hex runs took minutes on one long line that is not quite hex.
    assert parse_markdown("```python\n" + "ab" * 20000 + "z\n```\n").blocks[0].is_code in (True, False)
