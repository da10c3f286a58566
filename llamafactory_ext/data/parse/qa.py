"""Parse step 3: recognise questions and answers in a parsed file (fixed rules, no LLM) → Units.

A Unit is one sample to be: raw user/assistant text, its line, breadcrumb and reasoning blocks.
Q&A rules, applied to the top-level markdown blocks in document order:

| # | habit            | looks like                                       | question            | answer                                 |
|---|------------------|--------------------------------------------------|---------------------|----------------------------------------|
| 1 | 问/答 lines      | `问：…` … `答：…` (also `问:`, `问1：`)          | after 问： to 答：  | after 答： to the next question or heading |
| 2 | Q/A lines        | `Q: …` … `A: …` (also `Q：`, `Q1:`)              | after Q: to A:      | as rule 1                              |
| 3 | bold markers     | `**问：** … **答：** …` (also `**问**：`, `**Q:**`) | as rule 1           | as rule 1                              |
| 4 | question heading | `### 问题：…`, `## Q1. …`, `## 问题 3：…`, or any heading ending in `？`/`?` | the title, prefix dropped | the body up to the next question or the next heading of the same or higher level (deeper headings belong to it); a leading `答：`/`A:` is dropped |
| 5 | FAQ list item    | `- **问题？** 回答`, `- Q: … A: …`, `- 问：… 答：…` | the bold text / after Q: | the rest of the item; it ends with the item |

Markers 1-3 count at the start of a line of a top-level paragraph (or of a list item, rule 5); the
traditional 問/問題 count too, as the rules run before t2s. An answer marker also counts mid-line right
after `？`/`?` (`问：为什么？答：因为…`), or anywhere when bold (`**答：**`). An answer marker with no
open question is plain text (`A: 发送 g^a` in a protocol), and so is every marker inside code, tables,
block quotes and HTML.

Reasoning: a top-level thinking block inside a question's span (question start to answer end) is that
answer's reasoning (several are kept in order); answer text must follow it.

Sections (a heading and the blocks up to the next heading) with no question in them and not inside an
answer become instruction samples. `<bc>` = breadcrumb, the enclosing heading titles joined by " > ";
`（<bc>）` is left out before the first heading, ` <lang> ` when the code has no language:

| kind          | made when                                                   | user                                               | assistant                       |
|---------------|-------------------------------------------------------------|----------------------------------------------------|---------------------------------|
| explain_topic | a heading has a non-empty body                              | `请解释「<bc>」。`                                   | the body, markdown as written   |
| explain_code  | a prose block is right before or after a code block (*)    | `请解释下面这段 <lang> 代码（<bc>）：` + blank line + the fenced code | the prose before + after |
| write_code    | a prose block is right before a code block (*)              | the prose before + blank line + `请写出对应的 <lang> 代码（<bc>）。` | the code, fences and language kept |

(*) prose = paragraph, list or block quote; see markdown.code_contexts. A code sample's line is the
code's line. A thinking block in such a section is the reasoning of its explain_topic sample. Text
before the first heading gets no explain_topic (no topic to name); prose outside the questions of a
Q&A section is not used.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from dataclasses import dataclass

from ...errors import DataError
from .markdown import Block, Doc, Section, code_contexts, sections
from .thinking import Scan, ThinkBlock, empty_block

TOPIC = "请解释「{topic}」。"
EXPLAIN_CODE = "请解释下面这段{lang}代码{about}：\n\n{code}"
WRITE_CODE = "{task}\n\n请写出对应的{lang}代码{about}。"


def _marker(word: str) -> str:
    """``问：``, ``问1:``, ``**问：**``, ``**问**：``; written so no two whitespace runs touch (no backtracking blow-up)."""
    num = r"(?:[ \t]*\d+)?[ \t]*"
    bold = rf"\*\*[ \t]*{word}{num}(?:\*\*[ \t]*[:：]|[:：][ \t]*\*\*)[ \t]*"  # a closing ** only after an opening one
    return rf"(?:{bold}|{word}{num}[:：][ \t]*)"


_Q_LINE = re.compile(rf"^[ \t]*{_marker('(?:问|問|Q)')}")
_A_LINE = re.compile(rf"^[ \t]*{_marker('(?:答|A)')}")
_A_INLINE = re.compile(rf"(?<=[？?])[ \t]*{_marker('(?:答|A)')}|\*\*[ \t]*(?:答|A)[ \t]*(?:[:：][ \t]*\*\*|\*\*[ \t]*[:：])[ \t]*")
_HEADING_PREFIX = re.compile(r"^(?:[问問][题題]?|Q)(?:[ \t]*\d+)?[ \t]*[:：.．、][ \t]*(?=\S)")
_BULLET = re.compile(r"^[ \t]*(?:[-+*]|\d{1,9}[.)])(?:[ \t]+|$)")
_FAQ_BOLD = re.compile(r"^\*\*(?P<q>[^*\n]+?[？?])[ \t]*\*\*[ \t]*[:：]?[ \t]*")
_ANY_LEVEL = 6  # marker and list questions end at a heading of any level


@dataclass(frozen=True, slots=True)
class Unit:
    """One sample to be, before normalization; ``line`` is 1-based."""

    kind: str  # qa | explain_topic | explain_code | write_code
    line: int
    user: str
    assistant: str
    breadcrumb: tuple[str, ...]
    reasoning: tuple[ThinkBlock, ...] = ()


@dataclass(slots=True)
class _Question:
    start: int  # offset of the marker, heading or list item text
    style: str  # heading | marker | item
    path: tuple[str, ...]
    text: str | None = None  # known question text (headings, bold list items)
    q_from: int = 0  # else the question is text[q_from:q_to]
    q_to: int = 0
    a_from: int | None = None
    end: int | None = None  # hard end (list items); stop is the actual end of the answer
    stop: int = 0
    level: int = _ANY_LEVEL
    indent: int = 0  # list item content column, removed from continuation lines


@dataclass(frozen=True, slots=True)
class _Answer:
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class _Heading:
    start: int
    level: int


def find_units(scan: Scan, doc: Doc, path: str) -> list[Unit | DataError]:
    """All samples-to-be of a file in line order, with a DataError in place of each broken one.

    ``doc`` is ``parse_markdown(scan.text)``.

    >>> from .markdown import parse_markdown
    >>> from .thinking import scan_thinking
    >>> s = scan_thinking("# AES\\n问：密钥多长？\\n<think>查标准</think>\\n答：128、192 或 256 位。")
    >>> [(u.kind, u.line, u.user, u.assistant) for u in find_units(s, parse_markdown(s.text), "a.md")]
    [('qa', 2, '密钥多长？', '128、192 或 256 位。')]
    """
    questions = _match(list(_events(doc)), len(doc.text))
    out: list[Unit | DataError] = []
    claimed: set[int] = set()
    for q in questions:
        out.append(_qa_unit(scan, doc, q, path, claimed))
    spans = [(q.start, q.stop) for q in questions]
    for sec in sections(doc):
        if not _overlaps(spans, sec.start, sec.end):
            out.extend(_plain_units(scan, doc, sec, path, claimed))
    out.extend(_orphan(scan, i, path) for i in range(len(scan.blocks)) if i not in claimed)
    return sorted(out, key=lambda u: u.line or 0)


def _events(doc: Doc):
    """Questions, answer markers and plain headings, in document order."""
    trail: list[Block] = []
    for b in doc.blocks:
        if b.kind == "heading":
            while trail and trail[-1].level >= b.level:
                trail.pop()
            event = _heading_event(doc, b, tuple(h.title for h in trail))
            if isinstance(event, _Heading):  # question titles are not topics: kept out of breadcrumbs
                trail.append(b)
            yield event
        elif b.kind == "paragraph":
            yield from _line_events(doc, b.line, b.end_line, tuple(h.title for h in trail))
        elif b.kind == "list":
            for first, last in b.items:
                yield from _item_events(doc, first, last, tuple(h.title for h in trail))


def _heading_event(doc: Doc, b: Block, parents: tuple[str, ...]) -> _Question | _Heading:
    m = _HEADING_PREFIX.match(b.title)
    if m is None and not b.title.endswith(("？", "?")):
        return _Heading(doc.offset(b.line), b.level)
    text = b.title[m.end() :] if m else b.title
    return _Question(doc.offset(b.line), "heading", parents, text=text, a_from=doc.line_end(b.end_line), level=b.level)


def _line_events(doc: Doc, first: int, last: int, path: tuple[str, ...], skip: int = 0):
    """Marker questions and answers on lines ``first``..``last``; ``skip`` chars of the first line are a bullet."""
    for ln in range(first, last + 1):
        base = doc.offset(ln) + (skip if ln == first else 0)
        line = doc.line_text(ln)[skip if ln == first else 0 :]
        m = _Q_LINE.match(line)
        if m:
            yield _Question(base + len(line) - len(line.lstrip()), "marker", path, q_from=base + m.end())
        a = _A_INLINE.search(line, m.end()) if m else (_A_LINE.match(line) or _A_INLINE.search(line))
        if a:
            yield _Answer(base + a.start(), base + a.end())


def _item_events(doc: Doc, first: int, last: int, path: tuple[str, ...]):
    """A list item that starts with a question (rule 5) is one question ending with the item."""
    line = doc.line_text(first)
    bullet = _BULLET.match(line)
    content, base, end = line[bullet.end() :], doc.offset(first) + bullet.end(), doc.line_end(last)
    bold = _FAQ_BOLD.match(content)
    if bold:
        yield _Question(base, "item", path, text=bold.group("q"), a_from=base + bold.end(), end=end, indent=bullet.end())
    elif _Q_LINE.match(content):
        events = list(_line_events(doc, first, last, path, skip=bullet.end()))
        events[0].style, events[0].end, events[0].indent = "item", end, bullet.end()
        yield from events


def _match(events: list, length: int) -> list[_Question]:
    """Give each question its answer marker and the offset where its answer stops."""
    done: list[_Question] = []
    cur: _Question | None = None
    for ev in events:
        if cur is not None and cur.end is not None and ev.start >= cur.end:  # a list item ended
            done.append(_stopped(cur, cur.end))
            cur = None
        if isinstance(ev, _Question):
            if cur is not None:
                done.append(_stopped(cur, ev.start))
            cur = ev
        elif isinstance(ev, _Heading):
            if cur is not None and ev.level <= cur.level:
                done.append(_stopped(cur, ev.start))
                cur = None
        elif cur is not None and cur.a_from is None:  # the first answer marker after the question
            cur.q_to, cur.a_from = ev.start, ev.end
    if cur is not None:
        done.append(_stopped(cur, length))
    return done


def _stopped(q: _Question, at: int) -> _Question:
    """``q`` with its answer ending at ``at``, or at its hard end (list items) if that comes first."""
    q.stop = at if q.end is None else min(at, q.end)
    return q


def _qa_unit(scan: Scan, doc: Doc, q: _Question, path: str, claimed: set[int]) -> Unit | DataError:
    line, col = doc.line_of(q.start), q.start - doc.offset(doc.line_of(q.start)) + 1
    blocks = _blocks_in(scan, q.start, q.stop)
    claimed.update(blocks)
    nxt = doc.line_of(q.stop) if q.stop < len(doc.text) else None
    where = f", before line {nxt}" if nxt and nxt > line else ""
    if q.a_from is None:
        return DataError(path, line, "question has no answer",
                         f"add a line starting with 答： (or A:) after the question{where}", col=col)
    question = _balance(q.text if q.text is not None else _cut(scan, q.q_from, q.q_to))
    answer = _cut(scan, q.a_from, q.stop).strip()
    if q.style == "heading":
        answer = _A_LINE.sub("", answer, count=1).strip()
    elif q.style == "item":
        answer = _dedent_rest(answer, q.indent)
    if not question:
        return DataError(path, line, "question marker with no question after it", "write the question after the marker", col=col)
    problem = _reasoning_problem(scan, blocks, q.a_from, q.stop, path, f"the question at line {line}")
    if problem is None and not answer:
        return DataError(path, line, "question has no answer", f"write the answer after the question{where}", col=col)
    return problem or Unit("qa", line, question, answer, q.path, tuple(scan.blocks[i] for i in blocks))


def _plain_units(scan: Scan, doc: Doc, sec: Section, path: str, claimed: set[int]) -> list[Unit | DataError]:
    """explain_topic for the section, explain_code / write_code for its code blocks."""
    out: list[Unit | DataError] = []
    topic = " > ".join(sec.path)
    about = f"（{topic}）" if topic else ""
    if sec.heading is not None:
        out.extend(_topic_unit(scan, doc, sec, path, claimed, topic))
    for ctx in code_contexts(doc, sec):
        code = doc.source(ctx.code) if _fenced(doc, ctx.code) else f"```\n{ctx.code.code}```"
        lang = f" {ctx.code.lang} " if ctx.code.lang else ""
        before = doc.source(ctx.before).strip() if ctx.before else ""
        explain = "\n\n".join(doc.source(b).strip() for b in (ctx.before, ctx.after) if b is not None)
        if explain:
            user = EXPLAIN_CODE.format(lang=lang, about=about, code=code)
            out.append(Unit("explain_code", ctx.code.line, user, explain, sec.path))
        if before:
            user = WRITE_CODE.format(task=before, lang=lang, about=about)
            out.append(Unit("write_code", ctx.code.line, user, code, sec.path))
    return out


def _topic_unit(scan: Scan, doc: Doc, sec: Section, path: str, claimed: set[int], topic: str):
    blocks = _blocks_in(scan, sec.start, sec.end)
    claimed.update(blocks)
    body_from = doc.line_end(sec.heading.end_line)
    answer = _cut(scan, body_from, sec.end).strip()
    problem = _reasoning_problem(scan, blocks, body_from, sec.end, path, f"the section at line {sec.heading.line}")
    if problem is not None:
        yield problem
    elif answer:
        yield Unit("explain_topic", sec.heading.line, TOPIC.format(topic=topic), answer, sec.path,
                   tuple(scan.blocks[i] for i in blocks))


def _reasoning_problem(scan: Scan, blocks: list[int], a_from: int, stop: int, path: str, owner: str) -> DataError | None:
    """An empty block, or a block with no answer text after it, as a located DataError."""
    for i in blocks:
        b = scan.blocks[i]
        empty = empty_block(b)
        if empty is not None:
            return DataError(path, empty.start_line, f"empty <{empty.tag}> block: no reasoning inside",
                             "write the reasoning between the tags, or delete them", col=empty.start_col)
        after = max(scan.offsets[i] + scan.newlines(i), a_from)
        if not _cut(scan, after, stop).strip():
            return DataError(path, b.end_line, "reasoning ends here but no answer follows it",
                             f"write the answer after </{b.tag}> ({owner})", col=b.end_col)
    return None


def _orphan(scan: Scan, i: int, path: str) -> DataError:
    b = scan.blocks[i]
    return DataError(path, b.start_line, f"<{b.tag}> block belongs to no question or section",
                     "move it between a question and its answer (or under a heading)", col=b.start_col)


def _blocks_in(scan: Scan, start: int, stop: int) -> list[int]:
    """Indices of the top-level thinking blocks whose position lies in [start, stop)."""
    return list(range(bisect_left(scan.offsets, start), bisect_left(scan.offsets, stop)))


def _cut(scan: Scan, a: int, b: int) -> str:
    """``scan.text[a:b]`` without the newlines that stand for thinking blocks."""
    pieces, i = [], bisect_left(scan.offsets, a)
    while i < len(scan.offsets) and scan.offsets[i] < b:
        pieces.append(scan.text[a : scan.offsets[i]])
        a = min(b, scan.offsets[i] + scan.newlines(i))
        i += 1
    pieces.append(scan.text[a:b])
    return "".join(pieces)


def _overlaps(spans: list[tuple[int, int]], start: int, end: int) -> bool:
    """Whether sorted, disjoint ``spans`` touch [start, end)."""
    i = bisect_left(spans, (end,)) - 1
    return i >= 0 and spans[i][1] > start


def _balance(text: str) -> str:
    """Drop one unmatched ``**`` left at an edge by a bold marker (``**问：什么？**``)."""
    text = text.strip()
    if text.count("**") % 2:
        text = text[:-2] if text.endswith("**") else text.removeprefix("**")
    return text.strip()


def _dedent_rest(text: str, indent: int) -> str:
    """Remove a list item's content indentation from its continuation lines."""
    head, *rest = text.split("\n")
    cut = re.compile(rf"^[ \t]{{0,{indent}}}")
    return "\n".join([head, *(cut.sub("", ln, count=1) for ln in rest)])


def _fenced(doc: Doc, code: Block) -> bool:
    return doc.line_text(code.line).lstrip(" \t>").startswith(("```", "~~~"))
