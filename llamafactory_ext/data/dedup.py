"""Exact and near-duplicate removal, before the split (so no near-copy of a test sample is trained on).

Exact: sha1 of the text with whitespace, punctuation and case folded. Near: MinHash over character n-grams with LSH
(datasketch); the first occurrence in input order is kept and each drop names the sample it duplicates.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ..records import Sample

NGRAM = 5  # why: 5 Chinese characters ≈ 2–3 words; shorter shingles make unrelated Chinese texts look alike
NUM_PERM = 64  # why: enough for a 0.8 threshold within a few points, and 2× faster than 128
THRESHOLD = 0.8  # why: catches lightly edited copies (a few words) while keeping same-template different answers
_NOISE = re.compile(r"[\W_]+")  # whitespace and punctuation, ASCII and CJK alike


@dataclass(frozen=True, slots=True)
class Drop:
    """A removed sample and why (``reason`` is a short key counted in the report)."""

    sample: Sample
    reason: str
    detail: str = ""


def fingerprint(text: str) -> str:
    """Exact-duplicate key: whitespace and punctuation removed, case folded."""
    return hashlib.sha1(_NOISE.sub("", text).casefold().encode("utf-8")).hexdigest()


def _shingles(text: str) -> set[bytes]:
    flat = _NOISE.sub(" ", text).casefold()
    if len(flat) <= NGRAM:
        return {flat.encode("utf-8")}
    return {flat[i : i + NGRAM].encode("utf-8") for i in range(len(flat) - NGRAM + 1)}


def _dedup_text(s: Sample) -> str:
    """What makes two samples the same: their text, the tools they may call and the media they show."""
    media = "\x00".join(p for paths in s.media.values() for p in paths)
    return "\x00".join(part for part in (s.text, s.tools, media) if part)


def dedup(samples: Iterable[Sample], *, near: bool = True, threshold: float = THRESHOLD) -> Iterator[Sample | Drop]:
    """Yield kept samples and Drop records, in input order."""
    from datasketch import MinHash, MinHashLSH  # lazy: only when a dataset is built

    seen: dict[str, Sample] = {}
    lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM) if near else None
    kept: dict[str, Sample] = {}
    for s in samples:
        key = fingerprint(_dedup_text(s))
        if key in seen:
            yield Drop(s, "exact_duplicate", f"same text as {seen[key].origin}")
            continue
        seen[key] = s
        if lsh is not None and not s.media:  # same words about different images are different samples
            mh = MinHash(num_perm=NUM_PERM, seed=1)
            mh.update_batch(list(_shingles(s.text)))
            hits = lsh.query(mh)
            if hits:
                first = min(hits, key=lambda h: int(h))
                yield Drop(s, "near_duplicate", f"near copy of {kept[first].origin}")
                continue
            name = str(len(kept))
            lsh.insert(name, mh)
            kept[name] = s
        yield s
