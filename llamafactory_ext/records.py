"""The plain record that crosses every stage of the dataset flow: Sample, made of Turns.

Readers produce dicts, converters turn them into Samples, and only formats.py turns Samples into
LLaMA-Factory rows. Reasoning is kept apart from the answer (no tags) until formatting.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Literal

Role = Literal["user", "assistant"]

# Sample kinds the split stratifies on; converters may add more (any short string works).
KINDS = ("instruction", "chat", "qa", "explain_topic", "explain_code", "write_code")


@dataclass(frozen=True, slots=True)
class Turn:
    """One message. ``reasoning`` is set only on assistant turns, as plain text without tags."""

    role: Role
    content: str
    reasoning: str | None = None


@dataclass(frozen=True, slots=True)
class Sample:
    """One training example: an optional system prompt and alternating user/assistant turns.

    ``source`` and ``line`` locate it in the user's file (1-based) for every later message;
    ``kind`` and ``tags`` are what the split stratifies on (e.g. tags = term categories).
    """

    turns: tuple[Turn, ...]
    system: str = ""
    kind: str = "instruction"
    source: str = ""
    line: int = 0
    tags: tuple[str, ...] = ()
    meta: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def origin(self) -> str:
        """``file:line`` of the sample, for messages."""
        return f"{self.source}:{self.line}" if self.source else "<memory>"

    @property
    def has_reasoning(self) -> bool:
        return any(t.reasoning for t in self.turns if t.role == "assistant")

    @property
    def text(self) -> str:
        """All visible text (system, turns, reasoning): what dedup and length filters look at."""
        parts = [self.system] + [p for t in self.turns for p in (t.reasoning or "", t.content)]
        return "\n".join(p for p in parts if p)

    @property
    def uid(self) -> str:
        """Stable content id (sha1 of the text and roles): the split hashes it, so order never matters."""
        key = self.system + "\x00" + "\x00".join(f"{t.role}\x01{t.reasoning or ''}\x01{t.content}" for t in self.turns)
        return hashlib.sha1(key.encode("utf-8")).hexdigest()

    def with_(self, **changes: object) -> Sample:
        """A copy with some fields replaced (records are frozen)."""
        return replace(self, **changes)


@dataclass(frozen=True, slots=True)
class Skipped:
    """Material a converter read but made no sample of, on purpose: a counted, located drop.

    Converters yield it beside Samples and DataErrors (e.g. a placeholder section, an image-only answer,
    a question without an answer); the pipeline writes every one to ``NAME.drops.jsonl``.
    ``kind`` names what was skipped ("question", "section", "code_block", "row"); ``reason`` is a short key
    counted in the report ("placeholder", "no_answer", "image_only", "toc", "short_explanation", …).
    """

    source: str
    line: int
    kind: str
    reason: str
    excerpt: str = ""


@dataclass(frozen=True, slots=True)
class Note:
    """Something a converter noticed that is not a drop, counted by ``code`` and shown once per code
    with the first location (e.g. code="unused_key:meta" for a row key no converter uses)."""

    source: str
    line: int
    code: str
    message: str
