"""Normalize step 3: CJK-aware punctuation — half-width , . ? ! : ; ( ) become full-width in Chinese context.

Runs on one prose segment, between the code and formulas written into it (codelike.py: calls such as
int(input('…: ')), count(列名), x^(n/2), tuples, 5!, assignments, $math$, code lines), which stay
byte-identical: half-width marks there are code, not Chinese punctuation. A "run" is a maximal stretch of , ; : ? ! . and blanks on one line; its
neighbours are the characters just outside it. "CJK" = ideograph, kana, or CJK / full-width punctuation
(not curly quotes or dashes, which English uses too).
- A run with a CJK neighbour on either side turns , ; : ? ! into ，；：？！ ("好,谢谢", "Python,它").
  Numbers keep theirs: digits on both sides ("1,000", "10:30", "3.14").
- Its "." → "。" only when the left neighbour is CJK and the dot is not glued to a following letter,
  digit or "_" ("文件hash.py", "中文.md" and e-mails stay); a run with ".." is an ellipsis and stays whole.
- "!" glued to "[" stays: it opens a markdown image "![alt](src)". Latin sentences have no CJK neighbour.
- A pair ( … ) on one line with no parentheses inside → （…） when its content has CJK or a neighbour
  outside the pair is CJK, except: after "]" never (markdown link); right after an ASCII letter, digit or
  "_" only when the content has CJK, so calls like "函数f(x)的值" stay.
- Blanks in a converted run or around a converted pair are dropped (full-width marks carry their spacing).
- A conversion can give a neighbour CJK context ("(中),"), so rounds repeat until nothing changes; each
  round only turns half-width into full-width and drops blanks, so the loop ends.
"""

from __future__ import annotations

import re

from .codelike import CJK
from .codelike import split as code_split

_HAS_CJK = re.compile(f"[{CJK}]")
_HAS_HALF = re.compile(r"[,;:?!.()]")
_FULL = str.maketrans(",;:?!.()", "，；：？！。（）")
_NO_BLANKS = str.maketrans("", "", " \t")
_IDENT = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")

# The leading blanks are consumed when the search reaches them first, the trailing ones always, so the
# characters just outside a match are its neighbours (for pairs: or a blank the previous match took).
_RUN = re.compile(r"[ \t]*[,;:?!.][ \t,;:?!.]*")
# Fast path for the common case, one mark glued between a CJK char and a non-blank: no Python callback.
# It gives exactly what _run gives for that run. The literal first lets the regex engine skip ahead.
_GLUED = tuple(
    (re.compile(rf"{re.escape(ch)}(?<=[{CJK}]{re.escape(ch)})(?![ \t,;:?!.{extra}])"), ch.translate(_FULL))
    for ch, extra in ((",", ""), (";", ""), (":", ""), ("?", ""), ("!", r"\["), (".", "A-Za-z0-9_"))
)
_PAIR = re.compile(r"[ \t]*\((?P<body>[^()\n]*)\)[ \t]*")


def _neighbours(m: re.Match[str]) -> tuple[str, str]:
    text, start, end = m.string, m.start(), m.end()
    return (text[start - 1] if start else ""), (text[end] if end < len(text) else "")


def _run(m: re.Match[str]) -> str:
    run = m.group()
    left, right = _neighbours(m)
    left_cjk = bool(_HAS_CJK.match(left))
    marks = run.translate(_NO_BLANKS)
    if not (left_cjk or _HAS_CJK.match(right)) or ".." in marks:
        return run
    glued = right if run[-1] in ",;:?!." else ""  # the character touching the run's last mark
    keep_dot = not left_cjk or (marks[-1] == "." and glued in _IDENT)  # at most one dot: no ".."
    out = [ch if ch == "." and keep_dot else ch.translate(_FULL) for ch in marks]
    if marks[-1] == "!" and glued == "[":
        out[-1] = "!"
    new = "".join(out)
    return run if new == marks else new  # nothing converted: keep the blanks too


def _pair(m: re.Match[str]) -> str:
    before, after = _neighbours(m)
    glued = m.group().startswith("(")  # "(" touches the character before it
    inner = bool(_HAS_CJK.search(m["body"]))
    if glued and before == "]":
        return m.group()
    if glued and before in _IDENT:
        convert = inner
    else:
        convert = inner or bool(_HAS_CJK.match(before) or _HAS_CJK.match(after))
    return f"（{m['body']}）" if convert else m.group()


def _round(text: str) -> str:
    text = _PAIR.sub(_pair, text)
    for pattern, full in _GLUED:
        text = pattern.sub(full, text)
    return _RUN.sub(_run, text)


def punct(text: str) -> str:
    """``text`` with half-width punctuation in CJK context made full-width (rules in the module docstring).

    Code and formulas written into the prose (codelike.py) are left byte-identical.
    """
    if not (_HAS_HALF.search(text) and _HAS_CJK.search(text)):
        return text  # nothing to convert, or no CJK neighbour for any rule
    return "".join(s.text if s.protected else punct_prose(s.text) for s in code_split(text))


def punct_prose(text: str) -> str:
    """punct() on text known to hold no code (normalize() split it off already): every mark is prose."""
    if not (_HAS_HALF.search(text) and _HAS_CJK.search(text)):
        return text
    while (new := _round(text)) != text:
        text = new
    return text
