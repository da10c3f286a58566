"""Rule filters run before dedup: each sample is kept, dropped (with a reason) or kept and flagged.

Rules: an empty prompt, response or earlier turn is dropped; a sample longer than ``max_chars`` is dropped or flagged,
because LF truncates over-long samples (``cutoff_len``) and can cut the answer off its reasoning.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Literal

from ..records import Sample
from .dedup import Drop

MAX_CHARS = 12_000  # why: ~8k Qwen tokens of Chinese (~1.4 chars/token), above any cutoff_len we plan for 8–24 GB GPUs
LongPolicy = Literal["drop", "flag"]


def filter_samples(
    samples: Iterable[Sample], *, max_chars: int = MAX_CHARS, long: LongPolicy = "drop"
) -> Iterator[Sample | Drop]:
    """Yield kept samples (possibly flagged in ``meta['flags']``) and Drop records."""
    for s in samples:
        reason = _empty_reason(s)
        if reason:
            yield Drop(s, reason)
            continue
        size = len(s.text) + len(s.tools)  # why: LF renders the tools into the system prompt
        if size > max_chars:
            detail = f"{size} characters > --max-chars {max_chars}"
            if long == "drop":
                yield Drop(s, "too_long", detail)
                continue
            s = s.with_(meta={**s.meta, "flags": [*s.meta.get("flags", []), f"too_long: {detail}"]})
        yield s


def _empty_reason(s: Sample) -> str | None:
    last = s.turns[-1]
    if last.role not in ("assistant", "function_call") or not last.content.strip():  # a row may end on a call
        return "empty_response"
    if not any(t.content.strip() for t in s.turns if t.role == "user"):
        return "empty_prompt"
    if any(not t.content.strip() for t in s.turns):  # an empty earlier turn would train (or prompt) an empty answer
        return "empty_turn"
    return None
