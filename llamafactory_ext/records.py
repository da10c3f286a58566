"""The plain record that crosses every stage of the dataset flow: Sample, made of Turns.

Readers produce dicts, converters turn them into Samples, and only formats.py turns Samples into
LLaMA-Factory rows. Reasoning is kept apart from the answer (no tags) until formatting.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field, replace
from typing import Literal

# function_call / observation: LF's tool-calling turns (a call the model makes, the tool's result it reads).
Role = Literal["user", "assistant", "function_call", "observation"]
TOOL_ROLES = ("function_call", "observation")
MEDIA = ("images", "videos", "audios")  # LF's media columns; each item's placeholder is <image>/<video>/<audio>

# Sample kinds the split stratifies on; converters may add more (any short string works).
KINDS = ("instruction", "chat", "qa", "explain_topic", "explain_code", "write_code", "tool_call")


@dataclass(frozen=True, slots=True)
class Turn:
    """One message. ``reasoning`` is set only on assistant turns, as plain text without tags.

    A ``function_call`` turn holds the call as LF reads it (JSON ``{"name", "arguments"}`` or a list of them);
    an ``observation`` turn holds the tool's result. Both are data, not prose: later stages leave them as they are.
    """

    role: Role
    content: str
    reasoning: str | None = None


@dataclass(frozen=True, slots=True)
class Sample:
    """One training example: an optional system prompt and alternating user/assistant turns.

    ``source`` and ``line`` locate it in the user's file (1-based) for every later message;
    ``kind`` and ``tags`` are what the split stratifies on (e.g. tags = term categories).
    ``tools`` is the JSON text of the tool list the conversation may call (LF's ``tools`` column, "" for none);
    ``images`` / ``videos`` / ``audios`` are absolute paths (or URLs) of the media, in placeholder order.
    """

    turns: tuple[Turn, ...]
    system: str = ""
    kind: str = "instruction"
    source: str = ""
    line: int = 0
    tags: tuple[str, ...] = ()
    meta: dict = field(default_factory=dict, compare=False, hash=False)
    tools: str = ""
    images: tuple[str, ...] = ()
    videos: tuple[str, ...] = ()
    audios: tuple[str, ...] = ()

    @property
    def origin(self) -> str:
        """``file:line`` of the sample, for messages."""
        return f"{self.source}:{self.line}" if self.source else "<memory>"

    @property
    def has_reasoning(self) -> bool:
        return any(t.reasoning for t in self.turns if t.role == "assistant")

    @property
    def has_tool_calls(self) -> bool:
        return any(t.role in TOOL_ROLES for t in self.turns)

    @property
    def media(self) -> dict[str, tuple[str, ...]]:
        """The media columns this sample uses, e.g. ``{"images": ("/abs/1.jpg",)}``."""
        return {k: getattr(self, k) for k in MEDIA if getattr(self, k)}

    @property
    def text(self) -> str:
        """All visible text (system, turns, reasoning): what dedup and length filters look at."""
        parts = [self.system] + [p for t in self.turns for p in (t.reasoning or "", t.content)]
        return "\n".join(p for p in parts if p)

    @property
    def uid(self) -> str:
        """Stable content id (sha1 of the text and roles, plus tools and media when present): the split hashes it,
        so order never matters; two rows that differ only in their image are different samples."""
        key = self.system + "\x00" + "\x00".join(f"{t.role}\x01{t.reasoning or ''}\x01{t.content}" for t in self.turns)
        extra = [self.tools] + [f"{k}\x01" + "\x01".join(map(self._portable, v)) for k, v in self.media.items()]
        if any(extra):  # why: only then, so the ids of plain text samples stay what they were
            key += "\x02" + "\x02".join(extra)
        return hashlib.sha1(key.encode("utf-8")).hexdigest()

    def _portable(self, media: str) -> str:
        """A media path relative to the source file's folder: the uid must not depend on where the data lives."""
        if not os.path.isabs(media) or not self.source:
            return media
        return os.path.relpath(media, os.path.dirname(os.path.abspath(self.source)))

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
