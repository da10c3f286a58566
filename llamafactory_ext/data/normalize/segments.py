"""Split text into protected segments (code fences, inline code, URLs) and prose, once per text.

normalize() runs its steps on prose segments only and joins everything back unchanged.
"""

from __future__ import annotations

import re
from typing import NamedTuple

# A fence opens at a line start (any indentation, so fences nested in list items count) with 3+ backticks
# or tildes and closes with the same character, at least as long; an unclosed fence runs to the end of
# the text, as in CommonMark. Backtick info strings may not contain backticks (CommonMark again).
_FENCE = (
    r"^[ \t]*(?P<bt>`{3,})[^`\n]*(?:\n.*?)??(?:\n[ \t]*(?P=bt)`*[ \t]*(?=\n|\Z)|\Z)"
    r"|^[ \t]*(?P<tl>~{3,})[^\n]*(?:\n.*?)??(?:\n[ \t]*(?P=tl)~*[ \t]*(?=\n|\Z)|\Z)"
)
# Inline code: a backtick run closed by a run of the same length on the same line (CommonMark allows a
# line break inside, but keeping spans on one line means prose edits can never join two of them).
_SPAN = r"(?<!`)(?P<tick>`+)(?!`)[^\n]+?(?<!`)(?P=tick)(?!`)"
# URLs are ASCII: Chinese text often glues words or full-width punctuation to a URL without a space.
# A URL never ends in sentence punctuation, a closing bracket or markdown emphasis (GFM autolink rule).
_URL_CHARS = r"[!#-;=?-\[\]_a-z~]"
_URL_END = r"[A-Za-z0-9/#=&%+\-]"
_URL = rf"(?:https?|ftp)://{_URL_CHARS}*{_URL_END}|(?<![A-Za-z0-9.@])www\.{_URL_CHARS}*{_URL_END}"

PROTECTED = re.compile(rf"(?P<fence>{_FENCE})|{_SPAN}|{_URL}", re.M | re.S)
FENCE = re.compile(_FENCE, re.M | re.S)
_FAST = re.compile(r"`|~~~|https?://|ftp://|www\.")  # texts without these are all prose


class Segment(NamedTuple):
    text: str
    protected: bool


def split(text: str) -> list[Segment]:
    """Alternating prose / protected segments covering ``text`` exactly (prose may be empty strings)."""
    if not _FAST.search(text):
        return [Segment(text, False)]
    out: list[Segment] = []
    pos = 0
    for m in PROTECTED.finditer(text):
        out.append(Segment(text[pos : m.start()], False))
        out.append(Segment(m.group(), True))
        pos = m.end()
    out.append(Segment(text[pos:], False))
    return out


def prose(text: str) -> str:
    """``text`` with fenced code, inline code spans and URLs removed (what tag and marker searches should see)."""
    return "".join(s.text for s in split(text) if not s.protected)


def code_blocks(text: str) -> list[str]:
    """The fenced code blocks of ``text`` (fence lines included), in order."""
    return [m.group() for m in FENCE.finditer(text)]
