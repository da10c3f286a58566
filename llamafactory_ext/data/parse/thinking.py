"""Parse step 1: find <think>/<thinking> blocks in the raw file, before markdown-it sees it.

markdown-it ends an HTML block at the first blank line, so its tokens would split a reasoning block in
two; this scanner reads the text line by line instead, and hands markdown-it a text with the blocks blanked.

Rules:
- ``<think>…</think>`` and ``<thinking>…</thinking>`` (any letter case) nest to any depth; each close
  tag must match the innermost open one.
- Tags inside fenced code (``` or ~~~, also in list items and quotes) and inside inline code spans
  (same line) are text, not tags; so is a tag escaped as ``\\<think>``. Tags in *indented* code blocks
  are still read as tags: show tags in fences.
- Columns are 1-based and count characters (a tab is one column).
- Nesting deeper than MAX_DEPTH levels is a located DataError at the first tag past the limit (no real
  reasoning nests that deep; flatten() and empty_block() recurse once per level).
"""

from __future__ import annotations

import re
import textwrap
from bisect import bisect_left
from dataclasses import dataclass, field

from ...errors import DataError

_TAG = re.compile(r"<(/?)(think|thinking)[ \t]*>", re.IGNORECASE)
# A fence opener: optional quote/list prefix, then 3+ backticks or tildes (CommonMark).
_FENCE = re.compile(r"^[ \t>]*(?:(?:[-+*]|\d{1,9}[.)])[ \t]+)?(`{3,}|~{3,})(.*)$")
_FENCE_CLOSE = re.compile(r"^[ \t>]*(`{3,}|~{3,})[ \t]*$")
_TICKS = re.compile(r"`+")
# Where the next question or section starts, for the "unclosed tag" hint (see qa.py for the full rules).
_NEXT_QUESTION = re.compile(r"^ {0,3}(?:#{1,6}[ \t]|(?:\*\*[ \t]*)?(?:问|問|Q)(?:[ \t]*\d+)?[ \t]*(?:\*\*[ \t]*)?[:：])")
_NEXT_ANSWER = re.compile(r"^[ \t]*(?:\*\*[ \t]*)?(?:答|A)(?:[ \t]*\d+)?[ \t]*(?:\*\*[ \t]*)?[:：]")
# The marker line that introduces nested level n in flatten(); level 1 (the block itself) has none.
LEVEL_MARK = "【第{n}层思考】"
MAX_DEPTH = 32  # far above any real note (3-4 levels), far below Python's recursion limit


@dataclass(frozen=True, slots=True)
class ThinkBlock:
    """One reasoning block: where its tags sit (1-based) and its content in document order.

    ``parts`` holds the text runs between nested blocks and the nested blocks themselves, so
    ``parts == ("a", ThinkBlock(...), "b")`` for ``<think>a<think>…</think>b</think>``.
    """

    tag: str  # "think" or "thinking", lower case
    start_line: int
    start_col: int
    end_line: int  # of the closing tag
    end_col: int
    parts: tuple[str | ThinkBlock, ...]

    @property
    def children(self) -> tuple[ThinkBlock, ...]:
        return tuple(p for p in self.parts if isinstance(p, ThinkBlock))

    @property
    def text(self) -> str:
        """The block's own text, nested blocks left out."""
        return "".join(p for p in self.parts if isinstance(p, str))


@dataclass(frozen=True, slots=True)
class Scan:
    """The scanner's result.

    ``text``: the input with each top-level block replaced by as many newlines as it spanned, so every
    line number of the surrounding markdown stays true. ``blocks``: top-level blocks in document order.
    ``offsets[i]``: where ``blocks[i]``'s newlines begin in ``text`` (``text[o:o + n]`` is all newlines).
    """

    text: str
    blocks: tuple[ThinkBlock, ...] = ()
    offsets: tuple[int, ...] = ()

    def newlines(self, i: int) -> int:
        """How many newlines stand in ``text`` for block ``i``."""
        b = self.blocks[i]
        return b.end_line - b.start_line


@dataclass(slots=True)
class _Open:
    tag: str
    line: int
    col: int
    start: int  # offset of "<" in the input
    cursor: int  # offset after the last consumed tag
    parts: list = field(default_factory=list)
    next_question: int | None = None  # first question/heading line after the tag (for the unclosed hint)
    next_answer: int | None = None  # first answer-marker line after it, before any next question


def scan_thinking(text: str, path: str = "<string>") -> Scan:
    """Find the top-level thinking blocks of ``text``; DataError on unclosed, stray or mismatched tags.

    >>> s = scan_thinking("问：为什么？\\n<think>\\n想一想\\n</think>\\n答：因为。")
    >>> s.text
    '问：为什么？\\n\\n\\n\\n答：因为。'
    >>> (s.blocks[0].start_line, s.blocks[0].end_line, s.blocks[0].text)
    (2, 4, '\\n想一想\\n')
    """
    if "<" not in text or not _TAG.search(text):  # fast path: most notes have no tags at all
        return Scan(text)
    stack: list[_Open] = []
    found: list[tuple[ThinkBlock, int, int]] = []  # (block, start offset, end offset) in the input
    fence: tuple[str, int, int] | None = None  # (char, length, line) of the open code fence
    offset = 0
    for lineno, line in enumerate(text.split("\n"), 1):
        fence = _fence_state(line, lineno, fence)
        if fence is None:
            if stack and _NEXT_QUESTION.match(line):
                _note(stack, lineno, "next_question")
            elif stack and _NEXT_ANSWER.match(line):
                _note(stack, lineno, "next_answer")
            if "<" in line:
                for m in _tags(line):
                    _on_tag(m, text, path, lineno, offset, stack, found)
        offset += len(line) + 1
    if stack:
        raise _unclosed(stack[-1], path, fence)
    return _blank(text, found)


def _fence_state(line: str, lineno: int, fence: tuple[str, int, int] | None) -> tuple[str, int, int] | None:
    """The fence open after ``line`` (None outside code); the opening line itself counts as code."""
    if fence is not None:
        m = _FENCE_CLOSE.match(line)
        closes = m and m.group(1)[0] == fence[0] and len(m.group(1)) >= fence[1]
        return None if closes else fence
    m = _FENCE.match(line)
    if m is None or (m.group(1)[0] == "`" and "`" in m.group(2)):  # ```x``` is inline code, not a fence
        return None
    return (m.group(1)[0], len(m.group(1)), lineno)


def _tags(line: str) -> list[re.Match]:
    """Tag matches on one line outside inline code spans and not backslash-escaped."""
    found = [m for m in _TAG.finditer(line) if not (m.start() and line[m.start() - 1] == "\\")]
    if not found or "`" not in line:
        return found
    spans = _code_spans(line)
    return [m for m in found if not any(s <= m.start() < e for s, e in spans)]


def _code_spans(line: str) -> list[tuple[int, int]]:
    """Inline code spans of one line: a backtick run closed by the next run of the same length."""
    runs = [(m.start(), m.end()) for m in _TICKS.finditer(line)]
    spans, i = [], 0
    while i < len(runs):
        n = runs[i][1] - runs[i][0]
        j = next((k for k in range(i + 1, len(runs)) if runs[k][1] - runs[k][0] == n), None)
        if j is None:
            i += 1
            continue
        spans.append((runs[i][0], runs[j][1]))
        i = j + 1
    return spans


def _on_tag(m: re.Match, text: str, path: str, lineno: int, offset: int, stack: list[_Open], found: list) -> None:
    tag, col, start, end = m.group(2).lower(), m.start() + 1, offset + m.start(), offset + m.end()
    if not m.group(1):
        if len(stack) >= MAX_DEPTH:
            raise DataError(path, lineno, f"<{tag}> nested more than {MAX_DEPTH} levels deep",
                            f"close the reasoning blocks opened before it (the outermost at "
                            f"{stack[0].line}:{stack[0].col}), or nest at most {MAX_DEPTH} levels", col=col)
        stack.append(_Open(tag, lineno, col, start, end))
        return
    if not stack:
        raise DataError(path, lineno, f"closing </{tag}> has no opening tag",
                        f"delete it, or add <{tag}> where the reasoning starts", col=col)
    top = stack[-1]
    if top.tag != tag:
        raise DataError(path, lineno, f"</{tag}> does not match <{top.tag}> opened at {top.line}:{top.col}",
                        f"close it with </{top.tag}> (or open it with <{tag}>)", col=col)
    stack.pop()
    _add_text(top, text, start)
    block = ThinkBlock(tag, top.line, top.col, lineno, col, tuple(top.parts))
    if stack:
        _add_text(stack[-1], text, top.start)
        stack[-1].parts.append(block)
        stack[-1].cursor = end
    else:
        found.append((block, top.start, end))


def _add_text(o: _Open, text: str, upto: int) -> None:
    if upto > o.cursor:
        o.parts.append(text[o.cursor : upto])
    o.cursor = upto


def _note(stack: list[_Open], lineno: int, attr: str) -> None:
    """Record ``lineno`` as the open tags' next question/answer line, if they have none yet."""
    for o in reversed(stack):  # opens below an annotated one are annotated already
        if getattr(o, attr) is not None or o.next_question is not None:
            break
        setattr(o, attr, lineno)


def _unclosed(o: _Open, path: str, fence: tuple[str, int, int] | None) -> DataError:
    hints = [f"the answer starts at line {o.next_answer}"] if o.next_answer else []
    hints += [f"the next question or heading starts at line {o.next_question}"] if o.next_question else []
    fix = f"add </{o.tag}> where the reasoning ends" + (f" ({'; '.join(hints)})" if hints else "")
    if fence is not None:
        fix += f" (the {fence[0] * 3} code fence opened at line {fence[2]} is never closed, so the rest is code)"
    return DataError(path, o.line, f"<{o.tag}> opened here is never closed", fix, col=o.col)


def _blank(text: str, found: list[tuple[ThinkBlock, int, int]]) -> Scan:
    """Replace each top-level block by its newlines; record where they land in the new text."""
    pieces, offsets, cursor, length = [], [], 0, 0
    for block, start, end in found:
        pieces.append(text[cursor:start])
        length += start - cursor
        offsets.append(length)
        newlines = "\n" * (block.end_line - block.start_line)
        pieces.append(newlines)
        length += len(newlines)
        cursor = end
    pieces.append(text[cursor:])
    return Scan("".join(pieces), tuple(b for b, _, _ in found), tuple(offsets))


def empty_block(block: ThinkBlock) -> ThinkBlock | None:
    """The first block in ``block``'s tree (itself included) with no reasoning in it, or None.

    >>> empty_block(scan_thinking("<think>外<think> </think></think>").blocks[0]).start_col
    9
    """
    if not block.children and not block.text.strip():
        return block
    return next((e for c in block.children if (e := empty_block(c)) is not None), None)


def flatten(block: ThinkBlock) -> str:
    """One text for a block and all its nested layers, in document order; no tags, no text lost.

    Scheme: the block's own text comes first-level, unindented. A nested block is introduced by a
    marker line ``【第N层思考】`` (N = 2 for the first nested level) at its parent's indentation, and
    its text is indented two spaces more than its parent's. Blank lines at the edges of each text run
    are dropped, blank lines inside are kept, and each run is dedented before it is re-indented.

    >>> b = scan_thinking("<think>外层<think>中层<think>内层</think></think>收尾</think>").blocks[0]
    >>> print(flatten(b))
    外层
    【第2层思考】
      中层
      【第3层思考】
        内层
    收尾
    """
    out: list[str] = []
    _emit(block, 0, out)
    return "\n".join(out)


def _emit(block: ThinkBlock, depth: int, out: list[str]) -> None:
    pad = "  " * depth
    for part in block.parts:
        if isinstance(part, ThinkBlock):
            out.append(pad + LEVEL_MARK.format(n=depth + 2))
            _emit(part, depth + 1, out)
            continue
        lines = textwrap.dedent(part.strip("\n")).split("\n")
        while lines and not lines[0].strip():
            lines.pop(0)
        while lines and not lines[-1].strip():
            lines.pop()
        out.extend(pad + ln.rstrip() if ln.strip() else "" for ln in lines)


def blocks_in(scan: Scan, start: int, stop: int) -> list[int]:
    """Indices of the top-level thinking blocks whose position lies in [start, stop)."""
    return list(range(bisect_left(scan.offsets, start), bisect_left(scan.offsets, stop)))


def cut(scan: Scan, a: int, b: int) -> str:
    """``scan.text[a:b]`` without the newlines that stand for thinking blocks."""
    pieces, i = [], bisect_left(scan.offsets, a)
    while i < len(scan.offsets) and scan.offsets[i] < b:
        pieces.append(scan.text[a : scan.offsets[i]])
        a = min(b, scan.offsets[i] + scan.newlines(i))
        i += 1
    pieces.append(scan.text[a:b])
    return "".join(pieces)


def reasoning_problem(scan: Scan, blocks: list[int], a_from: int, stop: int, path: str, owner: str) -> DataError | None:
    """An empty block, or a block with no answer text after it, as a located DataError."""
    for i in blocks:
        b = scan.blocks[i]
        empty = empty_block(b)
        if empty is not None:
            return DataError(path, empty.start_line, f"empty <{empty.tag}> block: no reasoning inside",
                             "write the reasoning between the tags, or delete them", col=empty.start_col)
        after = max(scan.offsets[i] + scan.newlines(i), a_from)
        if not cut(scan, after, stop).strip():
            return DataError(path, b.end_line, "reasoning ends here but no answer follows it",
                             f"write the answer after </{b.tag}> ({owner})", col=b.end_col)
    return None
