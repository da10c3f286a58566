"""Code and formulas written without backticks, inside a prose segment: the spans normalize leaves byte-identical.

segments.py splits off fences, inline code and URLs; this finds, in what is left, the code people paste
into prose. The detector (``spans``) is also the definition of "code line / formula" the benchmark counts:
- math: ``$$…$$`` and ``\\[…\\]`` (may span lines), ``\\(…\\)`` and ``$…$`` on one line, the latter with no
  blank just inside either dollar and no digit right after the closing one (pandoc's rule, so "$5 和 $10" is
  no formula).
- line: a whole line that is code — no CJK outside its quoted strings and trailing ``#``/``//`` comment, and
  a statement shape (assignment, a leading keyword, a call statement, a line opening or closing a ``{ }``
  block, or ending in ``;`` after an operator or bracket or within two words: not an English verse); and
  SQL statements (an upper-case SQL keyword line), which may name Chinese placeholders.
- call: an ASCII name or operand glued to "(" with its balanced ")" on the same line, extended over the ASCII
  operators and groups glued to it: f(x), count(列名), int(input('…: ')), x^(n/2), (p-1)(q-1).
  A word glued to a Chinese gloss ("RSA(非对称加密)") is a call too: its half-width parentheses are harmless,
  converting count(列名) is not.
- group: a free-standing "( … )" whose body has no CJK and is not an English gloss ("(cryptography)") or a
  number ("(1)"): tuples and arithmetic such as (p,q,g,y), (n-1), (a+b).
- factorial: a number, a lone letter or a group glued to "!": 5!, n!, (n-1)!.
- assignment inside a sentence: name='张三', x=3.
- label: the "[^1]:" / "[id]:" opening a markdown footnote or link definition.
"""

from __future__ import annotations

import re

from .segments import Segment

CJK = (  # the "CJK" context of punct.py's rules; a line with none of it outside strings may be code
    "\u3001-\u303f"  # CJK symbols and punctuation (not U+3000, the ideographic space)
    "\u3040-\u30ff"  # kana
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"  # ideographs
    "\uff01-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff65"  # full-width punctuation (not letters/digits)
)
_HAS_CJK = re.compile(f"[{CJK}]")
_MAYBE = re.compile(r"[A-Za-z0-9_$\\(){};=!]")  # a line without any of these holds no span
_MATH = re.compile(
    r"\$\$.+?\$\$|\\\[.+?\\\]|\\\([^\n]+?\\\)"
    r"|(?<![\\$])\$(?![\s$])[^$\n]*?(?<![\s\\])\$(?![\d$])",
    re.S,
)
_STRINGS = re.compile(r"'[^'\n]*'|\"[^\"\n]*\"")
_COMMENT = re.compile(r"(?<=\S)[ \t]+(?:#|//).*$")
_SHAPES = re.compile(
    r"^\s*[A-Za-z_][\w.]*(?:\[[^\]\n]*\])?(?:\s*,\s*[A-Za-z_][\w.]*)*\s*(?:[-+*/%&|^]|//|\*\*|<<|>>)?=(?!=)\s*\S"
    r"|^\s*(?:for|while|if|elif|else|def|class|return|import|from|try|except|finally|with|switch|case|var|let"
    r"|const|function|public|private|protected|static|void|int|char|double|float|bool|long|struct|using"
    r"|package|print|printf|echo|#include|#define)\b(?!\s*[:：])"
    r"|^\s*[A-Za-z_][\w.]*\(.*\)\s*;?\s*$"
    r"|[{}]\s*$|^\s*[{}]|^\s*\S+(?:\s+\S+)?\s*;\s*$|[=()\[\]+\-*/<>].*;\s*$"
)
_SQL = re.compile(
    r"^\s*(?:SELECT|INSERT INTO|UPDATE|DELETE FROM|CREATE (?:TABLE|INDEX)|ALTER TABLE|DROP TABLE)\b"
)
_LABEL = re.compile(r"^\s*\[\^?[^\]\n]+\]:")  # a footnote or link definition: "[^1]: …" needs its ASCII ":"
# ASCII names and values only: in "N = 银河系内的文明数量" what follows "=" is prose.
_INLINE_ASSIGN = re.compile(
    r"(?<![A-Za-z0-9_.])[A-Za-z_][A-Za-z0-9_.]*\s*[-+*/%]?=(?!=)\s*(?:'[^'\n]*'|\"[^\"\n]*\"|[A-Za-z0-9_.]+)"
)
_LINE = re.compile(r"[^\n]+")
_OPENER = re.compile(r"[(!]")  # where a group or a factorial can start
_OPERAND = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.^*/+-%=<>")
_GLUE = _OPERAND | frozenset("[]")  # a "(" right after one of these opens a call, expression or link target
_TAIL = _OPERAND | frozenset("![]")  # what an expression may continue with after its ")"
# Tuple or arithmetic inside a free-standing group; a quote inside a word ("Hacker's") is an apostrophe.
_MATHY = re.compile(r"[=*/^<>%|\\{}\[\]_]|,\S|(?<![^\W\d_])['\"]|['\"](?![^\W\d_])")
_WORD = re.compile(r"[^\W\d_]{2,}")  # two letters in a row, any script ("dài lái"): a gloss, not a formula


def spans(text: str) -> list[tuple[int, int]]:
    """Sorted, disjoint (start, end) of the code-like spans of a prose segment (rules in the module doc)."""
    if not _MAYBE.search(text):
        return []
    found = [m.span() for m in _MATH.finditer(text)]
    pos = 0
    for start, end in [*found, (len(text), len(text))]:
        found += _line_spans(text, pos, start)
        pos = end
    return _merge(found)


def split(text: str) -> list[Segment]:
    """Alternating prose / code-like segments covering ``text`` exactly, as segments.split does."""
    out: list[Segment] = []
    pos = 0
    for start, end in spans(text):
        out += [Segment(text[pos:start], False), Segment(text[start:end], True)]
        pos = end
    return [*out, Segment(text[pos:], False)]


def _line_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for m in _LINE.finditer(text, start, end):
        line = m.group()
        if not _MAYBE.search(line):
            continue
        if is_code_line(line):
            out.append(m.span())
        else:
            out += [(m.start() + a, m.start() + b) for a, b in inline_spans(line)]
    return out


def is_code_line(line: str) -> bool:
    """A statement of code: see the module doc ("line")."""
    if _SQL.match(line):
        return True
    bare = _COMMENT.sub("", _STRINGS.sub("''", line))
    return not _HAS_CJK.search(bare) and bool(_SHAPES.search(bare))


def inline_spans(line: str) -> list[tuple[int, int]]:
    """Calls, groups, factorials and assignments inside one line of prose."""
    found = [m.span() for m in _INLINE_ASSIGN.finditer(line)] + [m.span() for m in _LABEL.finditer(line)]
    i = 0
    while (m := _OPENER.search(line, i)) is not None:
        i = m.start()
        span = _group_at(line, i) if line[i] == "(" else _factorial_at(line, i)
        if span is not None:
            found.append(span)
        i = max(span[1], i + 1) if span else i + 1
    return _merge(found)


def _group_at(line: str, i: int) -> tuple[int, int] | None:
    close = _closing(line, i)
    if close is None:
        return None
    glued = i > 0 and line[i - 1] in _GLUE
    if not glued and not _code_body(line[i + 1 : close]):
        return None
    start = i
    while start > 0 and line[start - 1] in _OPERAND:
        start -= 1
    return start, _extend(line, close + 1)


def _factorial_at(line: str, i: int) -> tuple[int, int] | None:
    """5!, n!: a number or a lone letter glued to "!" ("![" opens a markdown image)."""
    if line[i + 1 : i + 2] == "[" or i == 0:
        return None
    start = i
    while start > 0 and line[start - 1].isascii() and line[start - 1].isdigit():
        start -= 1
    if start == i and line[i - 1].isascii() and line[i - 1].isalpha():
        start = i - 1 if i < 2 or not (line[i - 2].isascii() and line[i - 2].isalnum()) else i
    return (start, _extend(line, i + 1)) if start < i else None


def _extend(line: str, pos: int) -> int:
    """End of an expression from ``pos``: more operands, operators and glued groups; never a final "."."""
    while pos < len(line):
        if line[pos] == "(" and (close := _closing(line, pos)) is not None:
            pos = close + 1
        elif line[pos] in _TAIL:
            pos += 1
        else:
            break
    while line[pos - 1] == ".":
        pos -= 1
    return pos


def _closing(line: str, i: int) -> int | None:
    """Index of the ")" matching the "(" at ``i``, skipping quoted strings; None when unbalanced."""
    depth, quote = 0, ""
    for j in range(i, len(line)):
        ch = line[j]
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"" and line[j - 1] in "(,= ":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return j
    return None


def _code_body(body: str) -> bool:
    """A free-standing group is code unless it has CJK outside strings, is empty, a number or an English gloss."""
    text = body.strip()
    bare = _STRINGS.sub("''", text)  # ('热气球', '对象') is a tuple of strings
    if not text or _HAS_CJK.search(bare) or text.isdigit():
        return False
    return bool(_MATHY.search(bare)) or not _WORD.search(bare)


def _merge(found: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for start, end in sorted(s for s in found if s[1] > s[0]):
        if out and start < out[-1][1]:
            out[-1] = (out[-1][0], max(end, out[-1][1]))
        else:
            out.append((start, end))
    return out
