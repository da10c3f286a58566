"""Normalize stage of the dataset flow (sources → normalize → parse): str → str steps on prose only.

Code fences, inline code and URLs are split off once (segments.py), then code and formulas written into
the prose without backticks (codelike.py); none of them is changed. The steps (unicode → chinese → punct,
one module each) run in order on the prose between them. Line ends and invisible characters are cleaned in
the whole text first (unicode.prepare), so that they cannot hide a fence; fence bodies keep their controls.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from . import codelike
from .chinese import MODES, check_mode, chinese
from .punct import punct, punct_prose
from .segments import Segment, split
from .unicode import prepare, trim, unicode

Step = Callable[[str], str]
T2S_MODES = MODES  # ("t2s", "tw2sp", "hk2s", "off")

__all__ = ["T2S_MODES", "Step", "chinese", "normalize", "punct", "steps", "unicode"]


@functools.cache  # normalize() runs once per sample: build each mode's tuple once
def steps(t2s: str = "t2s") -> tuple[Step, ...]:
    """The ordered prose steps for a t2s mode (UsageError on an unknown mode)."""
    if check_mode(t2s) is None:
        return (unicode, punct)
    return (unicode, functools.partial(chinese, mode=t2s), punct)


@functools.cache
def _prose_steps(t2s: str) -> tuple[Step, ...]:
    """steps(), with punct's own code search left out: normalize() has split the code off already."""
    return tuple(punct_prose if step is punct else step for step in steps(t2s))


def _prose(text: str, pipeline: tuple[Step, ...]) -> str:
    for step in pipeline:
        text = step(text)
    return text


def normalize(text: str, t2s: str = "t2s") -> str:
    """``text`` with every step applied to its prose; code and URLs come back unchanged."""
    pipeline = _prose_steps(t2s)
    done: list[Segment] = []
    for segment in split(prepare(text)):  # a CRLF fence or a zero-width space before ``` must not hide code
        parts = [segment] if segment.protected else codelike.split(segment.text)
        done += [s if s.protected else Segment(_prose(s.text, pipeline), False) for s in parts]
    return "".join(s.text for s in trim(done))
