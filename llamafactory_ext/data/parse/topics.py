"""Parse step 3b: sections that hold no question → instruction Units (explain_topic, explain_code, write_code).

`<bc>` = breadcrumb, the enclosing heading titles joined by " > " (a file with no level-1 heading is
headed by its front-matter title, else its file name); `（<bc>）` is left out before the first heading,
` <lang> ` when the code has no language:

| kind          | made when                                                   | user                                               | assistant                       |
|---------------|-------------------------------------------------------------|----------------------------------------------------|---------------------------------|
| explain_topic | a heading's body holds something to learn (see drops below) | `请解释「<bc>」。`                                   | the body, markdown as written   |
| explain_code  | the prose after a real code block explains it (*)           | `请解释下面这段 <lang> 代码（<bc>）：` + blank line + the fenced code | the lead-in (if it says more than "如下：") + the prose after |
| write_code    | else, when the lead-in before the block states a task (*)   | the lead-in + blank line + `请写出对应的 <lang> 代码（<bc>）。` | the code, fences and language kept |

(*) One kind per code block, in that order: explain_code when the paragraphs and lists after the
block (markdown.code_contexts: up to the next code block, never its lead-in) hold at least
MIN_EXPLAIN characters that do more than show a result ("运行结果如下", "flag{…}"); else write_code
when the lead-in holds at least MIN_TASK characters besides generic words (代码、脚本、如下、exp…);
else a drop ``code_block/short_explanation``. Fences that are not code (output, data) never make
code samples: they stay in the explanation. A code sample's line is the code's line; every sample
of one section shares its group (the heading's line) so a split keeps them together.

Section drops (``Skipped``, kind ``section``): the reasons of content.drop_reason (empty, placeholder,
pointer, image_only, toc, link_only, link_list); ``references`` (a title such as 参考/参考文献/习题, or
题目/例题/工具 with no sentence in it); ``code_only`` / ``short_answer`` (less than MIN_TOPIC characters
of prose, a bare name or label); ``short_intro`` (a section with sub-sections whose own text is less
than MIN_INTRO characters: a lead-in, not an answer). A heading with no body followed by deeper
sub-sections is no drop. A thinking block in a section is the reasoning of its explain_topic sample.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ...records import Skipped
from .content import drop_reason, prose_length
from .markdown import Block, CodeContext, Doc, Section, code_contexts
from .thinking import Scan, ThinkBlock, blocks_in, cut, reasoning_problem

TOPIC = "请解释「{topic}」。"
EXPLAIN_CODE = "请解释下面这段{lang}代码{about}：\n\n{code}"
WRITE_CODE = "{task}\n\n请写出对应的{lang}代码{about}。"
MIN_EXPLAIN = 16  # characters of prose after a code block that make it an explanation (markup not counted)
MIN_TASK = 8  # characters a lead-in needs, generic words aside, to state a task for write_code
MIN_TOPIC = 2  # characters of prose a section needs to be an explain_topic answer ("略", "无" are not)
_GENERIC = re.compile(r"代码|脚本|程序|实现|如下|所示|具体|以下|下面|例如|比如|示例|exp|EXP|poc|POC|payload|源码|解题|题目|"
                      r"提供了|给出了|给了|服务器端|服务端|附件")
_REFERENCES = re.compile(r"^(?:参考|参考文献|参考资料|参考链接|参考阅读|References?|延伸阅读|扩展阅读|推荐阅读|相关链接|"
                         r"习题|练习|练习题|相关题目|题目列表)$", re.IGNORECASE)
# Sections that list challenge names or tools: no sentence in them means nothing to explain.
_LISTING = re.compile(r"^(?:题目|例题|相关题目|赛题|工具|相关工具|工具推荐|常用工具)$")
# A paragraph that only shows a result ("运行结果如下", "从而 flag 为 flag{…}") explains no code.
_RESULT = re.compile(r"(?:运行|执行|输出|得到|结果|如下)[^。\n]{0,6}$|flag\{|FLAG\{|^\s*运行脚本")
MIN_INTRO = 20  # prose a parent section (one with sub-sections) needs to be more than a truncated lead-in
_HAN = re.compile(r"[\u4e00-\u9fff]")
TRAILING_RULE = re.compile(r"(?:\n[ \t]*(?:-{3,}|\*{3,}|_{3,})[ \t]*)+$")


@dataclass(frozen=True, slots=True)
class Unit:
    """One sample to be, before normalization; ``line`` is 1-based, ``group`` the line of its source unit."""

    kind: str  # qa | explain_topic | explain_code | write_code
    line: int
    user: str
    assistant: str
    breadcrumb: tuple[str, ...]
    reasoning: tuple[ThinkBlock, ...] = ()
    group: int = 0  # section or question line: samples of one unit share it (split grouping)


def plain_units(scan: Scan, doc: Doc, sec: Section, path: str, claimed: set[int], deeper: bool,
                 root: tuple[str, ...] = ()) -> list:
    """explain_topic for the section, one explain_code or write_code for each of its code blocks."""
    out: list = []
    topic = " > ".join((*root, *sec.path)) if sec.path else ""
    about = f"（{topic}）" if topic else ""
    group = sec.heading.line if sec.heading is not None else 1
    if sec.heading is not None:
        out.extend(_topic_unit(scan, doc, sec, path, claimed, topic, deeper))
    for ctx in code_contexts(doc, sec):
        out.append(_code_unit(doc, ctx, sec, path, about, group))
    return out


def _code_unit(doc: Doc, ctx: CodeContext, sec: Section, path: str, about: str, group: int) -> Unit | Skipped:
    """Rule: explain_code when the prose after the code explains it (>= MIN_EXPLAIN characters of paragraphs
    and lists that do more than show a result), else
    write_code when the lead-in states a task (>= MIN_TASK), else a drop: never both from one block."""
    code = doc.source(ctx.code) if _fenced(doc, ctx.code) else f"```\n{ctx.code.code}```"
    lang = f" {ctx.code.lang} " if ctx.code.lang else ""
    before = "\n\n".join(doc.source(b).strip() for b in (ctx.before, ctx.lead_list) if b is not None)
    after = "\n\n".join(doc.source(b).strip() for b in ctx.after)
    words = "\n\n".join(t for b in ctx.after if b.kind in ("paragraph", "list") and not _RESULT.search(t := doc.source(b)))
    if prose_length(words) >= MIN_EXPLAIN:  # quotes, math and output alone explain nothing
        explain = "\n\n".join(t for t in ((before if prose_length(before) >= MIN_TASK else ""), after) if t)
        user = EXPLAIN_CODE.format(lang=lang, about=about, code=code)
        return Unit("explain_code", ctx.code.line, user, explain, sec.path, group=group)
    if prose_length(_GENERIC.sub("", before)) >= MIN_TASK:
        user = WRITE_CODE.format(task=before, lang=lang, about=about)
        return Unit("write_code", ctx.code.line, user, code, sec.path, group=group)
    return Skipped(path, ctx.code.line, "code_block", "short_explanation", ctx.code.code.strip()[:80])


def _topic_unit(scan: Scan, doc: Doc, sec: Section, path: str, claimed: set[int], topic: str, deeper: bool):
    blocks = blocks_in(scan, sec.start, sec.end)
    claimed.update(blocks)
    body_from = doc.line_end(sec.heading.end_line)
    answer = TRAILING_RULE.sub("", cut(scan, body_from, sec.end).strip()).strip()
    problem = reasoning_problem(scan, blocks, body_from, sec.end, path, f"the section at line {sec.heading.line}")
    listing = _LISTING.match(sec.heading.title) and (not re.search(r"[。！？；]", answer) or prose_length(answer) < 30)
    reason = "references" if _REFERENCES.match(sec.heading.title) or listing else drop_reason(answer) or _short(answer, deeper)
    if problem is not None:
        yield problem
    elif reason is not None:
        if not (reason == "empty" and deeper):  # a parent heading with only sub-sections is no drop
            yield Skipped(path, sec.heading.line, "section", reason, sec.heading.title[:80])
    else:
        yield Unit("explain_topic", sec.heading.line, TOPIC.format(topic=topic), answer, sec.path,
                   tuple(scan.blocks[i] for i in blocks), group=sec.heading.line)


def _short(answer: str, deeper: bool) -> str | None:
    """``code_only`` / ``short_answer`` / ``short_intro`` (a parent's lead-in to its sub-sections), or None."""
    n = prose_length(answer)
    if n < MIN_TOPIC:
        return "code_only" if "```" in answer or "~~~" in answer else "short_answer"
    if deeper and n < MIN_INTRO:
        return "short_intro"
    if n < 40 and not _HAN.search(answer) and not re.search(r"[.!?]", answer):
        return "short_answer"  # a bare name or number ("2016 LCTF Crypto 450"), not an explanation
    if n < 20 and not re.search(r"[。．！？；：，、.!?;:,]", answer):
        return "short_answer"  # a bare label ("- 2017 国赛 classic"), no sentence
    return None


def _fenced(doc: Doc, code: Block) -> bool:
    return doc.line_text(code.line).lstrip(" \t>").startswith(("```", "~~~"))
