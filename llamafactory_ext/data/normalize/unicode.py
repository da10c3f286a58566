"""Normalize step 1: Unicode and whitespace hygiene of a prose segment (NFC, LF, no invisible chars).

clean() also runs once on the whole text before it is split; trim() strips the ends of the whole text.
"""

from __future__ import annotations

import re
import unicodedata

from .segments import Segment

NEWLINES = re.compile(r"\r\n?")
# Zero-width space/non-joiner/joiner, BOM, and C0/C1 controls except \t and \n (\r is gone by then).
_INVISIBLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200d\ufeff]+")
_TRAILING = re.compile(r"[ \t]+(?=\n)")
_EMPTY_LINES = re.compile(r"\n{3,}")
_BLANK = " \t\n"


def clean(text: str) -> str:
    """LF line ends and no invisible characters: never content, even in code, and they could hide a fence."""
    return _INVISIBLE.sub("", NEWLINES.sub("\n", text))


def unicode(text: str) -> str:
    """clean(), then NFC, no trailing blanks, at most one empty line in a row."""
    text = clean(text)  # before NFC: a removed char may separate a letter from its accent
    if not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    text = _TRAILING.sub("", text)
    return _EMPTY_LINES.sub("\n\n", text)


def trim(segments: list[Segment]) -> list[Segment]:
    """Strip blanks and newlines at both ends of the text where those ends are prose (code keeps its own).

    Only " \\t\\n", like the line ends: a leading U+3000 indents a Chinese paragraph, and stripping it
    could put a "```" at the start of a line, turning prose into a fence.
    """
    out = list(segments)
    if out and not out[0].protected:
        out[0] = Segment(out[0].text.lstrip(_BLANK), False)
    if out and not out[-1].protected:
        out[-1] = Segment(out[-1].text.rstrip(_BLANK), False)
    return out
