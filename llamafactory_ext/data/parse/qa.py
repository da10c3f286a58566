"""Parse step 3: recognise questions and answers in a parsed file (fixed rules, no LLM) → Units.

A Unit is one sample to be: raw user/assistant text, its line, breadcrumb and reasoning blocks.
Q&A rules, applied to the top-level markdown blocks in document order:

| # | habit            | looks like                                       | question            | answer                                 |
|---|------------------|--------------------------------------------------|---------------------|----------------------------------------|
| 1 | 问/答 lines      | `问：…` … `答：…` (also `问:`, `问1：`)          | after 问： to 答：  | after 答： to the next question or heading |
| 2 | Q/A lines        | `Q: …` … `A: …` (also `Q：`, `Q1:`)              | after Q: to A:      | as rule 1                              |
| 3 | bold markers     | `**问：** … **答：** …` (also `**问**：`, `**Q:**`) | as rule 1           | as rule 1                              |
| 4 | question heading | `### 问题：…`, `## Q1. …`, `## 53. …？`, `## 6、…？`, a heading ending in `？`/`?`, or a request (`请…`, `下面代码输出什么。`, `简述…。`) | the title, numbering and prefix dropped, plus the body before an answer label (code, options) | from an answer label (`答案`, `#### 答案：D`, `解析：`, a `<summary>答案</summary>`) or else the whole body, up to the next question or heading of the same or higher level: deeper headings, question-like or not, belong to it; a leading `答：`/`A:` is dropped |
| 5 | FAQ list item    | `- **问题？** 回答`, `- Q: … A: …`, `- 问：… 答：…` | the bold text / after Q: | the rest of the item; it ends with the item |
| 6 | problem section  | `## 面试题` / `## 题目描述` / `## 问题描述` + text   | that text           | the body of the next sibling section titled 面试题剖析/解答思路/参考答案/答案/解答/解析 (commentary in between, e.g. 面试官心理分析, is skipped) |

A question heading that asks about code ("下面代码输出什么？", "以下程序…") and has no answer label
takes the code block right after it (and an A/B/C/D option list) into the question. A question
heading whose body is only a marker question (rule 1-3) or a problem section (rule 6) merges with
it: one sample, the heading's question kept as context in front. Markers 1-3 count at the start of
a line of a top-level paragraph (or of a list item, rule 5); the traditional 問/問題 count too, as
the rules run before t2s. An answer marker also counts mid-line right after `？`/`?`
(`问：为什么？答：因为…`), or anywhere when bold (`**答：**`); a Latin `A:` opens a heading question's
answer only at the start of its body. An answer marker with no open question is plain text (`A: 发送
g^a` in a protocol), and so is every marker inside code, tables, block quotes and HTML. A trailing
`---` separator is not answer text.

Drops (``Skipped``, kind ``question``): no answer (``no_answer``; an error with ``strict``), or an
answer with nothing to learn (content.drop_reason). A level-1 section followed by question headings
is the preface of a question list: dropped as ``section/qa_intro``.

Reasoning: a top-level thinking block inside a question's span (question start to answer end) is that
answer's reasoning (several are kept in order); answer text must follow it.

Sections with no question in them and not inside an answer become instruction samples: see topics.py
for their table and drop rules. Text before the first heading gets no explain_topic (no topic to
name); prose outside the questions of a Q&A section is not used.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from dataclasses import dataclass

from ...errors import DataError
from ...records import Skipped
from .content import drop_reason
from .markdown import Block, Doc, Section, sections
from .thinking import Scan, blocks_in, cut, reasoning_problem
from .topics import TRAILING_RULE, Unit, plain_units


def _marker(word: str) -> str:
    """``问：``, ``问1:``, ``**问：**``, ``**问**：``; written so no two whitespace runs touch (no backtracking blow-up)."""
    num = r"(?:[ \t]*\d+)?[ \t]*"
    bold = rf"\*\*[ \t]*{word}{num}(?:\*\*[ \t]*[:：]|[:：][ \t]*\*\*)[ \t]*"  # a closing ** only after an opening one
    return rf"(?:{bold}|{word}{num}[:：][ \t]*)"


_Q_LINE = re.compile(rf"^[ \t]*{_marker('(?:问|問|Q)')}")
_A_LINE = re.compile(rf"^[ \t]*{_marker('(?:答|A)')}")
_A_INLINE = re.compile(rf"(?<=[？?])[ \t]*{_marker('(?:答|A)')}|\*\*[ \t]*(?:答|A)[ \t]*(?:[:：][ \t]*\*\*|\*\*[ \t]*[:：])[ \t]*")
_HEADING_PREFIX = re.compile(r"^(?:[问問][题題]?|Q)(?:[ \t]*\d+)?[ \t]*[:：.．、][ \t]*(?=\S)")
_NUMBER = re.compile(r"^(?:\d{1,4}[ \t]*[.．、)）]|[(（]\d{1,4}[)）])[ \t]*(?=\S)")
_REQUEST = re.compile(r"^(?:请|下面|下列|以下|说说|谈谈|简述|简要|说明|解释|描述|列举|比较|写出)")
_ABOUT_CODE = re.compile(r"下面|以下|如下|这段|该代码|代码|程序|输出|运行结果|打印")
# A paragraph or heading that opens the answer of the question above it (``答案``, ``#### 答案：D``, ``解析：``).
_LABEL = re.compile(r"^[ \t]*(?:\*\*)?[ \t]*(?:参考答案|答案解析|答案|解答|解析|Answer)[ \t]*(?:\*\*)?[ \t]*(?:[:：].*)?$")
# Interview-note layout: a problem section, commentary sections, then the answer section (rule 6).
_PROBLEM = re.compile(r"^(?:面试题|题目描述|问题描述)$")
_SOLUTION = re.compile(r"^(?:面试题剖析|面试题解析|解答思路|参考答案|答案|解答|解析)$")
_OPTION = re.compile(r"^[ \t]*(?:[-+*]|\d{1,9}[.)])[ \t]+[A-H][ \t]*[:：.．、)]")
_BULLET = re.compile(r"^[ \t]*(?:[-+*]|\d{1,9}[.)])(?:[ \t]+|$)")
_FAQ_BOLD = re.compile(r"^\*\*(?P<q>[^*\n]+?[？?])[ \t]*\*\*[ \t]*[:：]?[ \t]*")
_ANY_LEVEL = 6  # marker and list questions end at a heading of any level


@dataclass(slots=True)
class _Question:
    start: int  # offset of the marker, heading or list item text
    style: str  # heading | problem | marker | item
    path: tuple[str, ...]
    text: str | None = None  # known question text (headings, bold list items)
    q_from: int = 0  # else the question is text[q_from:q_to]
    q_to: int = 0
    a_from: int | None = None
    end: int | None = None  # hard end (list items); stop is the actual end of the answer
    stop: int = 0
    level: int = _ANY_LEVEL
    indent: int = 0  # list item content column, removed from continuation lines
    context: str = ""  # a question heading this marker question sits under (``### Q1. …？`` + ``问：``)


@dataclass(frozen=True, slots=True)
class _Answer:
    start: int
    end: int
    latin: bool = False  # ``A:``: too common in prose to open a heading question's answer mid-body


@dataclass(frozen=True, slots=True)
class _Heading:
    start: int
    level: int
    title: str = ""
    end: int = 0  # offset of the heading line's end
    label: int | None = None  # offset of the title text when it is an answer label (``#### 答案：D``)


def find_units(scan: Scan, doc: Doc, path: str, strict: bool = False, title: str = ""
               ) -> list[Unit | DataError | Skipped]:
    """All samples-to-be of a file in line order, with a DataError or Skipped in place of each broken one.

    ``doc`` is ``parse_markdown(scan.text)``; ``strict`` makes a question without an answer an error;
    ``title`` names a document that has no level-1 heading (it heads every breadcrumb of a topic).

    >>> from .markdown import parse_markdown
    >>> from .thinking import scan_thinking
    >>> s = scan_thinking("# AES\\n问：密钥多长？\\n<think>查标准</think>\\n答：128、192 或 256 位。")
    >>> [(u.kind, u.line, u.user, u.assistant) for u in find_units(s, parse_markdown(s.text), "a.md")]
    [('qa', 2, '密钥多长？', '128、192 或 256 位。')]
    """
    questions = _match(list(_events(doc)), doc)
    out: list[Unit | DataError | Skipped] = []
    claimed: set[int] = set()
    for q in questions:
        out.append(_qa_unit(scan, doc, q, path, claimed, strict))
    spans = [(q.start, q.stop) for q in questions]
    secs = sections(doc)
    root = (title,) if title and not any(b.kind == "heading" and b.level == 1 for b in doc.blocks) else ()
    for i, sec in enumerate(secs):
        if sec.heading is not None and _intro_of_questions(sec, spans, questions):
            out.append(Skipped(path, sec.heading.line, "section", "qa_intro", sec.heading.title[:80]))
        elif not _overlaps(spans, sec.start, sec.end):
            deeper = i + 1 < len(secs) and sec.heading is not None and secs[i + 1].heading.level > sec.heading.level
            out.extend(plain_units(scan, doc, sec, path, claimed, deeper, root))
    out.extend(_orphan(scan, i, path) for i in range(len(scan.blocks)) if i not in claimed)
    return sorted(out, key=lambda u: u.line or 0)


def _intro_of_questions(sec: Section, spans: list[tuple[int, int]], questions: list[_Question]) -> bool:
    """A level-1 section whose next heading is a deeper question heading: the preface of a question list."""
    nxt = next((q for q in questions if q.start == sec.end), None)
    return sec.heading.level == 1 and nxt is not None and nxt.style == "heading" and nxt.level > 1 and \
        not _overlaps(spans, sec.start, sec.end)


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
    start, end = doc.offset(b.line), doc.line_end(b.end_line)
    if _PROBLEM.match(b.title):
        return _Question(start, "problem", parents, q_from=end, level=b.level)
    m = _HEADING_PREFIX.match(b.title) or _NUMBER.match(b.title)
    text = b.title[m.end() :] if m else b.title
    asked = text.endswith(("？", "?")) or text.startswith("请") or (text.endswith(("。", ".")) and _REQUEST.match(text))
    if (m is None or m.re is _NUMBER) and not asked:
        label = start + doc.line_text(b.line).index(b.title) if _LABEL.match(b.title) else None
        return _Heading(start, b.level, b.title, end, label)
    return _Question(start, "heading", parents, text=text, q_from=end, level=b.level)


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
            yield _Answer(base + a.start(), base + a.end(), latin="A" in a.group(0))
        elif not m and not skip and first == last and _LABEL.match(line):
            yield _Answer(base, base + len(line) if len(line.strip()) <= 8 else base)


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


def _match(events: list, doc: Doc) -> list[_Question]:
    """Give each question its answer marker and the offset where its answer stops."""
    done: list[_Question] = []
    cur: _Question | None = None
    for ev in events:
        if cur is not None and cur.end is not None and ev.start >= cur.end:  # a list item ended
            done.append(_stopped(cur, cur.end))
            cur = None
        if isinstance(ev, _Question):
            if cur is not None and cur.style == "heading" and ev.style in ("marker", "problem") \
                    and cur.a_from is None and not doc.text[cur.q_from : ev.start].strip():
                ev.context, cur = cur.text or "", None  # ``### Q1. …？`` then ``问：…答：…``: one sample
            if cur is not None and cur.style in ("heading", "problem") and ev.style == "heading" and ev.level > cur.level:
                continue  # a question sub-heading is part of the answer of the question above it
            if cur is not None:
                done.append(_stopped(cur, ev.start))
            cur = ev
        elif isinstance(ev, _Heading):
            if cur is not None and _heading_ends(cur, ev):
                done.append(_stopped(cur, ev.start))
                cur = None
        elif cur is not None and cur.a_from is None and _opens_answer(cur, ev, doc):
            cur.q_to, cur.a_from = ev.start, ev.end
    if cur is not None:
        done.append(_stopped(cur, len(doc.text)))
    return done


def _heading_ends(cur: _Question, ev: _Heading) -> bool:
    """Whether heading ``ev`` ends question ``cur``; it may open the answer instead (answer labels, rule 6)."""
    if cur.style == "problem":
        if ev.level > cur.level:
            return False
        cur.q_to = cur.q_to or ev.start
        if cur.a_from is None:
            if _SOLUTION.match(ev.title):
                cur.a_from = ev.end
            return False  # commentary between problem and solution (面试官心理分析) is neither
        return True
    if ev.label is not None and cur.style in ("heading", "marker"):
        if cur.a_from is None:
            cur.q_to, cur.a_from = ev.start, ev.label
        return False
    return ev.level <= cur.level


def _opens_answer(cur: _Question, ev: _Answer, doc: Doc) -> bool:
    if cur.style == "problem":
        return False
    if cur.style == "heading" and ev.latin:
        return not doc.text[cur.q_from : ev.start].strip()
    return True


def _stopped(q: _Question, at: int) -> _Question:
    """``q`` with its answer ending at ``at``, or at its hard end (list items) if that comes first."""
    q.stop = at if q.end is None else min(at, q.end)
    if q.style == "heading" and q.a_from is None:
        q.q_to = q.a_from = q.q_from  # no answer marker: the whole body answers the heading
    return q


def _qa_unit(scan: Scan, doc: Doc, q: _Question, path: str, claimed: set[int], strict: bool):
    line, col = doc.line_of(q.start), q.start - doc.offset(doc.line_of(q.start)) + 1
    blocks = blocks_in(scan, q.start, q.stop)
    claimed.update(blocks)
    nxt = doc.line_of(q.stop) if q.stop < len(doc.text) else None
    where = f", before line {nxt}" if nxt and nxt > line else ""
    if q.style == "heading" and q.a_from == q.q_from and _ABOUT_CODE.search(q.text or ""):
        q.q_to = q.a_from = _code_after(doc, q.q_from, q.stop)
    if q.a_from is None:
        return _no_answer(path, line, col, f"add a line starting with 答： (or A:) after the question{where}", strict, q)
    question = _question_text(scan, q)
    answer = cut(scan, q.a_from, q.stop).strip()
    if q.style == "heading":
        answer = _A_LINE.sub("", answer, count=1).strip()
    elif q.style == "item":
        answer = _dedent_rest(answer, q.indent)
    if _LABEL.match(answer.split("\n", 1)[0].lstrip("# \t")):
        answer = re.sub(r"^#{1,6}[ \t]+", "", answer)  # ``#### 答案：D`` opening an answer keeps the words
    answer = TRAILING_RULE.sub("", answer).strip()  # the ``---`` separating questions is not answer text
    if not question:
        return DataError(path, line, "question marker with no question after it", "write the question after the marker", col=col)
    problem = reasoning_problem(scan, blocks, q.a_from, q.stop, path, f"the question at line {line}")
    if problem is None and (reason := drop_reason(answer)) is not None:
        if reason == "empty":
            return _no_answer(path, line, col, f"write the answer after the question{where}", strict, q)
        return Skipped(path, line, "question", reason, question[:80])
    return problem or Unit("qa", line, question, answer, q.path, tuple(scan.blocks[i] for i in blocks), group=line)


def _no_answer(path: str, line: int, col: int, fix: str, strict: bool, q: _Question) -> DataError | Skipped:
    if strict:
        return DataError(path, line, "question has no answer", fix, col=col)
    return Skipped(path, line, "question", "no_answer", (q.text or "")[:80])


def _question_text(scan: Scan, q: _Question) -> str:
    """The question, with the body between a question heading and its answer (code, options) kept."""
    if q.text is None:
        text = _balance(cut(scan, q.q_from, q.q_to))
    else:
        body = cut(scan, q.q_from, q.q_to).strip() if q.style == "heading" else ""
        text = _balance(q.text) + (f"\n\n{body}" if body else "")
    if q.context and q.context not in text:
        text = f"{q.context}\n\n{text}"
    head, _, last = text.rpartition("\n")
    return head.rstrip() if head and _LABEL.match(last) else text  # ``答案`` of a <summary> glued to the options


def _code_after(doc: Doc, start: int, stop: int) -> int:
    """End of the code block (and option list) right after a heading that asks about code, else ``start``."""
    i = bisect_left([doc.offset(b.line) for b in doc.blocks], start)
    if i >= len(doc.blocks) or doc.blocks[i].kind != "code" or doc.offset(doc.blocks[i].line) >= stop:
        return start
    end = doc.line_end(doc.blocks[i].end_line)
    if i + 1 < len(doc.blocks) and doc.blocks[i + 1].kind == "list" and _OPTION.match(doc.line_text(doc.blocks[i + 1].line)):
        end = doc.line_end(doc.blocks[i + 1].end_line)
    return min(end, stop)


def _orphan(scan: Scan, i: int, path: str) -> DataError:
    b = scan.blocks[i]
    return DataError(path, b.start_line, f"<{b.tag}> block belongs to no question or section",
                     "move it between a question and its answer (or under a heading)", col=b.start_col)


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
