"""Parse step 2: markdown (cleaned by clean.py, thinking blocks blanked) → top-level blocks, sections, code.

One markdown-it pass per file ("commonmark" + tables + mdit-py-plugins: ``$``/``$$`` math, footnotes,
definition lists); every block keeps its source lines (token.map), so later steps cut the author's own
markdown out of the file instead of re-rendering it.

Code or not (``is_code``), for fenced and indented blocks:

1. a language naming output (text, txt, plain, output, console, log, hex, …) → not code; at least
   half of the non-blank lines being data (hex or digit runs) → not code, whatever the language;
2. any other language (python, c, sage, …) → code;
   A first line that is a shell prompt (``$ ``, ``➜``, ``user@host:~$ ``, ``>>> ``) makes a terminal
   transcript: not code, whatever the language says.
3. no language: code when at least half of the non-blank lines carry a code signal (a keyword such
   as def/import/return/#include/print, an assignment, a call ``f(x)``, a brace, or a line ending
   in ``;``), and fewer than half are data (hex or digit runs, a shell prompt or ``>>>`` transcript).

A block that is not code (program output, ciphertext, hex dump, matrix, value table) is prose to
the code rules: it stays in the explanation it sits in and never becomes a code sample.

A code block's explanation (``code_contexts``) is the prose that belongs to it: the lead-in right
before it, and the run of prose after it (paragraphs, lists, quotes, math, non-code blocks, a bold
pseudo-heading like ``**解析：**`` and what follows it) up to the next code block, heading, table or
HTML; the last paragraph of that run (with a list right after it) is left out when it introduces the
next code block (it ends in "："/":" or says 如下/以下/下面), since that is the next block's lead-in.
"""

from __future__ import annotations

import functools
import re
from bisect import bisect_right
from dataclasses import dataclass
from itertools import accumulate, pairwise

from markdown_it import MarkdownIt
from markdown_it.token import Token
from mdit_py_plugins.deflist import deflist_plugin
from mdit_py_plugins.dollarmath import dollarmath_plugin
from mdit_py_plugins.footnote import footnote_plugin

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
    "math_block": "math",
    "math_block_label": "math",
    "dl_open": "list",
}
# Blocks that can explain a neighbouring code block.
PROSE = frozenset({"paragraph", "list", "blockquote", "math"})
# Fence languages that name output or data, not a program (rule 1 above).
DATA_LANGS = frozenset({"text", "txt", "plain", "plaintext", "output", "out", "console", "log", "hex", "none",
                        "raw", "data", "result", "shell-session", "terminal", "nohighlight", "math", "latex", "tex"})
_CODE_SIGNAL = re.compile(
    r"^\s*(?:def |class |import |from \S+ import|return\b|if |elif |else\b|for |while |#include|#define|int |"
    r"void |char |unsigned |long |public |private |static |function |const |let |var |print|printf|assert |"
    r"try:|except|with |lambda|fn |func |package |using |template|struct |\}|\{)"
    r"|[A-Za-z_][\w.\[\]]*\s*(?:[-+*/%^|&]|<<|>>)?=(?!=)|[A-Za-z_][\w.]*\(.*\)|[;{}]\s*$"
)
_DATA_LINE = re.compile(r"^\s*(?:(?:0x)?[0-9a-fA-F]{2,}+[\s:,|.-]*+)++$|^\s*[-+\d\s.,:|\[\]()eE]+$|^\s*(?:\$ |➜|>>> )")
_PROMPT = re.compile(r"^\s*(?:➜|\$ |[\w.-]+@[\w.-]+[:~][^\n]*[$#] |>>> )")
# A paragraph that introduces the block after it, not the block before it.
LEAD_IN = re.compile(r"(?:[：:]\s*|如下[^。\n]{0,12}[。.]?\s*|(?:以下|下面)[^。\n]*[。.]?\s*)$")
BOLD_HEAD = re.compile(r"^\s*\*\*[^*\n]{1,20}\*\*\s*[:：]?\s*$")


@functools.cache
def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark").enable("table")
    return md.use(dollarmath_plugin, allow_space=True, double_inline=True).use(footnote_plugin).use(deflist_plugin)


@dataclass(frozen=True, slots=True)
class Block:
    """One top-level markdown component; ``line``..``end_line`` are 1-based and inclusive."""

    kind: str  # heading | paragraph | list | table | blockquote | code | html | hr | math
    line: int
    end_line: int
    level: int = 0  # heading level 1-6
    title: str = ""  # heading text, inline markdown kept
    lang: str = ""  # fenced code language ("" for indented code or no info string)
    code: str = ""  # code content, without fences
    items: tuple[tuple[int, int], ...] = ()  # list items: (first line, last line), 1-based
    inline_code: tuple[str, ...] = ()  # contents of the `inline code` spans in the block

    @property
    def is_code(self) -> bool:
        """Whether a code block holds a program (see the module docstring), not output or data."""
        return self.kind == "code" and looks_like_code(self.code, self.lang)


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
    """A code block, its lead-in (the prose right before it) and the prose run after it."""

    code: Block
    before: Block | None
    after: tuple[Block, ...] = ()
    lead_list: Block | None = None  # a list between the lead-in and the code ("基本流程：" + steps)


def looks_like_code(code: str, lang: str = "") -> bool:
    """Rules 1-3 of the module docstring.

    >>> looks_like_code("n = p * q\\nprint(n)\\n"), looks_like_code("3f 2a 00 11\\n9c 0d 7e 21\\n")
    (True, False)
    """
    lang = lang.lower()
    lines = [ln for ln in code.split("\n") if ln.strip()]
    if not lines or _PROMPT.match(lines[0]):
        return False  # a terminal transcript: a command and its output
    data = sum(1 for ln in lines if _DATA_LINE.match(ln))
    if 2 * data > len(lines):
        return False  # hex dump, numbers, matrix: data whatever the language says
    if lang:
        return lang not in DATA_LANGS
    return 2 * sum(1 for ln in lines if _CODE_SIGNAL.search(ln)) >= len(lines)


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
    """Each real code block of ``section`` with its lead-in and the prose after it (module docstring).

    >>> doc = parse_markdown("# 摘要\\n\\n计算 SM3：\\n\\n```python\\nsm3(b'abc')\\n```\\n\\n输出 64 个十六进制字符。\\n")
    >>> [(doc.source(c.before), c.code.lang, [doc.source(a) for a in c.after]) for c in code_contexts(doc, sections(doc)[1])]
    [('计算 SM3：', 'python', ['输出 64 个十六进制字符。'])]
    """
    body, out = section.body, []
    for i, block in enumerate(body):
        if not block.is_code:
            continue
        lead = _lead(doc, body, i)
        prev = body[i - 1] if i > 0 else None
        if lead is None and prev is not None and prev.kind == "paragraph" and not _claimed_after(body, i - 1):
            lead = i - 1
        before = body[lead] if lead is not None else None
        lead_list = body[i - 1] if lead is not None and lead == i - 2 else None
        out.append(CodeContext(block, before, _after(doc, body, i), lead_list))
    return out


def _lead(doc: Doc, body: tuple[Block, ...], i: int) -> int | None:
    """Index of the lead-in paragraph of code block ``i``: right before it, or before a list right before it."""
    for j in (i - 1, i - 2):
        if j < 0 or (j == i - 2 and body[i - 1].kind != "list"):
            return None
        if _is_lead_in(doc, body[j]):
            return j
    return None


def _prose(b: Block) -> bool:
    return b.kind in PROSE or (b.kind == "code" and not b.is_code)


def _is_lead_in(doc: Doc, b: Block) -> bool:
    return b.kind == "paragraph" and bool(LEAD_IN.search(doc.source(b).rstrip())) and not BOLD_HEAD.match(doc.source(b))


def _claimed_after(body: tuple[Block, ...], i: int) -> bool:
    """Whether prose block ``i`` is in the after-run of an earlier code block."""
    j = i
    while j > 0 and _prose(body[j - 1]):
        j -= 1
    return j > 0 and body[j - 1].is_code


def _after(doc: Doc, body: tuple[Block, ...], i: int) -> tuple[Block, ...]:
    run = []
    for b in body[i + 1 :]:
        if not _prose(b):
            break
        run.append(b)
    nxt = i + 1 + len(run)
    if run and nxt < len(body) and body[nxt].is_code and (lead := _lead(doc, body, nxt)) is not None and lead > i:
        del run[lead - i - 1 :]
    while run and run[-1].kind == "paragraph" and BOLD_HEAD.match(doc.source(run[-1])):
        run.pop()
    return tuple(run)
