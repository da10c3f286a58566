"""Normalize step 1: Unicode and whitespace hygiene of a prose segment (NFC, LF, no invisible chars).

clean() also runs once on the whole text before it is split; trim() strips the ends of the whole text.
"""

from __future__ import annotations

import re
import unicodedata

from .segments import FENCE, Segment

NEWLINES = re.compile(r"\r\n?")
# Pictographic emoji ranges (symbols, dingbats, arrows, the SMP emoji blocks), with variation selector 16 and
# skin-tone modifiers: a zero-width joiner between two of them is part of one emoji ("👨‍💻"), not noise.
_EMOJI = "\u2190-\u21ff\u2300-\u23ff\u2600-\u27bf\u2b00-\u2bff\U0001f000-\U0001faff"
_ZWJ_IN_EMOJI = f"(?<=[{_EMOJI}\ufe0f])\u200d(?=[{_EMOJI}])"
# Zero-width space/non-joiner/joiner (but not one inside an emoji sequence), BOM, and C0/C1 controls except
# \t and \n (\r is gone by then).
_INVISIBLE = re.compile(rf"(?!{_ZWJ_IN_EMOJI})[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200d\ufeff]")
_TRAILING = re.compile(r"[ \t]+(?=\n)")
_EMPTY_LINES = re.compile(r"\n{3,}")
_BLANK = " \t\n"


def clean(text: str) -> str:
    """LF line ends and no invisible characters: never content, even in code, and they could hide a fence."""
    return _INVISIBLE.sub("", NEWLINES.sub("\n", text))


def prepare(text: str) -> str:
    """LF line ends, and clean() everywhere but in the body lines of fenced code, which keep their controls.

    Fences are found in the cleaned text (a zero-width space before ``` must not hide one); the body lines
    of each are then put back as written, so ANSI escapes or form feeds in a pasted program stay.
    """
    text = NEWLINES.sub("\n", text)
    if not _INVISIBLE.search(text):
        return text
    lines = text.split("\n")
    cleaned = [clean(line) for line in lines]
    joined = "\n".join(cleaned)
    for m in FENCE.finditer(joined):
        first = joined.count("\n", 0, m.start())
        last = first + m.group().count("\n")
        body_end = last if _closes(m.group("bt") or m.group("tl"), cleaned[last], last > first) else last + 1
        cleaned[first + 1 : body_end] = lines[first + 1 : body_end]
    return "\n".join(cleaned)


def _closes(fence: str, line: str, below: bool) -> bool:
    """Whether ``line`` closes a fence opened with ``fence`` (else the fence ran to the end of the text)."""
    return below and re.fullmatch(rf"[ \t]*{re.escape(fence)}{re.escape(fence[0])}*[ \t]*", line) is not None


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
