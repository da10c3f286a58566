"""Parse step 2: markdown (thinking blocks already blanked) → top-level blocks, sections, code context.

One markdown-it pass per file ("commonmark" + tables); every block keeps its source lines (token.map),
so later steps cut the author's own markdown out of the file instead of re-rendering it.
"""

from __future__ import annotations

import functools
from bisect import bisect_right
from dataclasses import dataclass
from itertools import accumulate, pairwise

from markdown_it import MarkdownIt
from markdown_it.token import Token

# Block-token type → component kind; container tokens (lists, quotes, tables) are kept whole.
_KINDS = {
    "heading_open": "heading",
    "paragraph_open": "paragraph",
    "bullet_list_open": "list",
    "ordered_list_open": "list",
    "table_open": "table",
    "blockquote_open": "blockquote",
    "fence": "code",
    "code_block": "code",
    "html_block": "html",
    "hr": "hr",
}
# Blocks that can explain a neighbouring code block.
PROSE = frozenset({"paragraph", "list", "blockquote"})


@functools.cache
def _parser() -> MarkdownIt:
    return MarkdownIt("commonmark").enable("table")


@dataclass(frozen=True, slots=True)
class Block:
    """One top-level markdown component; ``line``..``end_line`` are 1-based and inclusive."""

    kind: str  # heading | paragraph | list | table | blockquote | code | html | hr
    line: int
    end_line: int
    level: int = 0  # heading level 1-6
    title: str = ""  # heading text, inline markdown kept
    lang: str = ""  # fenced code language ("" for indented code or no info string)
    code: str = ""  # code content, without fences
    items: tuple[tuple[int, int], ...] = ()  # list items: (first line, last line), 1-based
    inline_code: tuple[str, ...] = ()  # contents of the `inline code` spans in the block


@dataclass(frozen=True, slots=True)
class Doc:
    """A parsed file: its text, line start offsets and top-level blocks in document order."""

    text: str
    starts: tuple[int, ...]  # starts[i] = offset of line i + 1
    blocks: tuple[Block, ...]

    def offset(self, line: int, col: int = 1) -> int:
        """Offset of 1-based ``line``/``col``; one past the last line gives the end of the text."""
        return self.starts[line - 1] + col - 1 if line <= len(self.starts) else len(self.text)

    def line_end(self, line: int) -> int:
        """Offset of the newline that ends 1-based ``line`` (or of the end of the text)."""
        return self.offset(line + 1) - 1 if line < len(self.starts) else len(self.text)

    def line_of(self, offset: int) -> int:
        """1-based line holding ``offset``."""
        return bisect_right(self.starts, offset)

    def line_text(self, line: int) -> str:
        return self.text[self.starts[line - 1] : self.line_end(line)]

    def source(self, block: Block) -> str:
        """The block's markdown exactly as written."""
        return self.text[self.offset(block.line) : self.line_end(block.end_line)]


@dataclass(frozen=True, slots=True)
class Section:
    """A heading and its body: the blocks up to the next heading of any level.

    ``path`` is the breadcrumb (titles of the enclosing headings, this one last); the part of the
    file before the first heading is a section with ``heading=None`` and an empty path.
    """

    heading: Block | None
    path: tuple[str, ...]
    body: tuple[Block, ...]
    start: int  # offset of the heading line (0 for the preamble)
    end: int  # offset where the next section starts


@dataclass(frozen=True, slots=True)
class CodeContext:
    """A code block and the prose right before and after it in the same section."""

    code: Block
    before: Block | None
    after: Block | None


def parse_markdown(text: str) -> Doc:
    """Parse ``text`` once with markdown-it and keep its top-level blocks.

    >>> doc = parse_markdown("# 哈希\\n\\n```python\\n# 注释不是标题\\n```\\n")
    >>> [(b.kind, b.line, b.end_line, b.lang) for b in doc.blocks]
    [('heading', 1, 1, ''), ('code', 3, 5, 'python')]
    """
    tokens, lines = _parser().parse(text), text.split("\n")
    blocks, i = [], 0
    while i < len(tokens):
        end = _close_index(tokens, i)
        if tokens[i].type in _KINDS and tokens[i].map is not None:
            blocks.append(_block(tokens, i, end, lines))
        i = end + 1
    starts = tuple(accumulate((len(ln) + 1 for ln in lines[:-1]), initial=0))
    return Doc(text, starts, tuple(blocks))


def _close_index(tokens: list[Token], i: int) -> int:
    """Index of the token closing top-level token ``i`` (``i`` itself for a leaf token)."""
    if tokens[i].nesting != 1:
        return i
    j = i + 1
    while not (tokens[j].level == tokens[i].level and tokens[j].nesting == -1):
        j += 1
    return j


def _span(m: list[int], lines: list[str]) -> tuple[int, int]:
    """1-based inclusive lines of a token map, without the trailing blank lines lists and items include."""
    first, last = m[0] + 1, max(m[1], m[0] + 1)
    while last > first and not lines[last - 1].strip():
        last -= 1
    return first, last


def _block(tokens: list[Token], i: int, end: int, lines: list[str]) -> Block:
    tok, kind = tokens[i], _KINDS[tokens[i].type]
    first, last = _span(tok.map, lines)
    inner = tokens[i + 1 : end]
    spans = tuple(c.content for t in inner if t.type == "inline" for c in t.children or () if c.type == "code_inline")
    if kind == "heading":
        return Block(kind, first, last, level=int(tok.tag[1:]), title=inner[0].content.strip(), inline_code=spans)
    if kind == "code":
        return Block(kind, first, last, lang=tok.info.strip().split(" ")[0], code=tok.content)
    if kind == "list":
        items = tuple(_span(t.map, lines) for t in inner if t.type == "list_item_open" and t.level == tok.level + 1)
        return Block(kind, first, last, items=items, inline_code=spans)
    return Block(kind, first, last, inline_code=spans)


def sections(doc: Doc) -> list[Section]:
    """Split the blocks at every heading; each section knows its breadcrumb.

    >>> [s.path for s in sections(parse_markdown("前言\\n# 密码学\\n## 哈希\\n正文\\n# 附录\\n"))]
    [(), ('密码学',), ('密码学', '哈希'), ('附录',)]
    """
    heads = [i for i, b in enumerate(doc.blocks) if b.kind == "heading"]
    ends = [*heads, len(doc.blocks)]
    bounds = [(None, 0, ends[0])] + [(i, i + 1, nxt) for i, nxt in pairwise(ends)]
    trail: list[Block] = []  # enclosing headings, outermost first
    out = []
    for head_i, first, stop in bounds:
        head = doc.blocks[head_i] if head_i is not None else None
        if head is not None:
            while trail and trail[-1].level >= head.level:
                trail.pop()
            trail.append(head)
        start = doc.offset(head.line) if head else 0
        end = doc.offset(doc.blocks[stop].line) if stop < len(doc.blocks) else len(doc.text)
        path = tuple(h.title for h in trail)
        out.append(Section(head, path, doc.blocks[first:stop], start, end))
    return out


def code_contexts(doc: Doc, section: Section) -> list[CodeContext]:
    """Each code block of ``section`` with the prose block right before and right after it.

    A paragraph ending in "：" or ":" introduces what follows it, so it is never the explanation of
    the code *before* it. Another code block, a table or a heading in between means no explanation.

    >>> doc = parse_markdown("# 摘要\\n\\n计算 SM3：\\n\\n```python\\nsm3(b'abc')\\n```\\n\\n输出 64 个十六进制字符。\\n")
    >>> [(doc.source(c.before), c.code.lang, doc.source(c.after)) for c in code_contexts(doc, sections(doc)[1])]
    [('计算 SM3：', 'python', '输出 64 个十六进制字符。')]
    """
    body, out = section.body, []
    for i, block in enumerate(body):
        if block.kind != "code":
            continue
        before = body[i - 1] if i > 0 and body[i - 1].kind in PROSE else None
        after = body[i + 1] if i + 1 < len(body) and body[i + 1].kind in PROSE else None
        if after is not None and doc.source(after).rstrip().endswith(("：", ":")):
            after = None
        out.append(CodeContext(block, before, after))
    return out
