"""Exact and near-duplicate removal, before the split (so no near-copy of a test sample is trained on).

Exact: sha1 of the text with whitespace, punctuation and case folded. Near: MinHash over character n-grams with
LSH bands; the first occurrence in input order is kept and each drop names the sample it duplicates.

The per-sample work (key and signature) is pure and runs in the workers (``keys``); the decisions run in input
order in one process (``Deduper``), holding per kept sample only its exact key and one integer per LSH band.
Signatures are computed with numpy over all n-grams at once: each n-gram is a polynomial hash of its code points,
mixed with murmur3's finalizer, then put through ``NUM_PERM`` affine permutations (datasketch's affine32 scheme,
same seed) — since 0.x this replaces datasketch's sha1-per-shingle MinHash, which found slightly different
near-duplicates (bench/results/issue-15-scale.md says how many).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache

from ..records import Sample

NGRAM = 5  # why: 5 Chinese characters ≈ 2–3 words; shorter shingles make unrelated Chinese texts look alike
NUM_PERM = 64  # why: enough for a 0.8 threshold within a few points, and 2× faster than 128
THRESHOLD = 0.8  # why: catches lightly edited copies (a few words) while keeping same-template different answers
_NOISE = re.compile(r"[\W_]+")  # whitespace and punctuation, ASCII and CJK alike (near-dup shingles only)
_PROSE_NOISE = re.compile(r"[\s,.;:?!'\"`，。、；：？！“”‘’…·]+")  # what formatting changes without changing meaning
_BASE = 0x100000001B3  # why: the FNV-64 prime; any odd 64-bit multiplier spreads code points over the word


@dataclass(frozen=True, slots=True)
class Drop:
    """A removed sample and why (``reason`` is a short key counted in the report)."""

    sample: Sample
    reason: str
    detail: str = ""


def fingerprint(text: str) -> str:
    """Exact-duplicate key: whitespace and sentence punctuation removed, case folded. Operators, brackets and signs
    stay: ``x>0`` and ``x<0``, ``a+b`` and ``a-b`` are different samples."""
    return hashlib.sha1(_PROSE_NOISE.sub("", text).casefold().encode("utf-8")).hexdigest()


def _dedup_text(s: Sample) -> str:
    """What makes two samples the same: their text, the tools they may call and the media they show."""
    media = "\x00".join(p for paths in s.media.values() for p in paths)
    return "\x00".join(part for part in (s.text, s.tools, media) if part)


@lru_cache(maxsize=4)
def _permutations(num_perm: int):
    """(a, b) of datasketch's affine32 scheme for seed 1, made once per process (not once per sample)."""
    import numpy as np

    gen = np.random.RandomState(1)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


@lru_cache(maxsize=4)
def _bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows per band) that datasketch's MinHashLSH picks for this threshold (5 × 11 for 0.8 / 64)."""
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    return lsh.b, lsh.r


def _fmix32(h):
    """murmur3's 32-bit finalizer on a uint32 array: every input bit reaches every output bit."""
    import numpy as np

    h ^= h >> np.uint32(16)
    h *= np.uint32(0x85EBCA6B)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0xC2B2AE35)
    h ^= h >> np.uint32(16)
    return h


def shingle_hashes(text: str):
    """32-bit hashes of the text's character ``NGRAM``-grams after folding (one hash for a shorter text)."""
    import numpy as np

    flat = _NOISE.sub(" ", text).casefold()
    codes = np.frombuffer(flat.encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(np.uint64)
    width = min(NGRAM, len(codes))
    if width == 0:
        return np.zeros(1, dtype=np.uint32)
    count = len(codes) - width + 1
    h = np.full(count, width, dtype=np.uint64)  # the length is mixed in: "ab" and "ab\0" differ
    with np.errstate(over="ignore"):
        for k in range(width):  # width multiply-adds over all n-grams at once (uint64 wraps around)
            h = h * np.uint64(_BASE) + codes[k : k + count]
    return _fmix32(((h >> np.uint64(32)) ^ h).astype(np.uint32))


def signature(text: str, num_perm: int = NUM_PERM):
    """The MinHash signature (``num_perm`` uint32 values) of the text's n-gram set."""
    import numpy as np

    a, b = _permutations(num_perm)
    h = shingle_hashes(text)
    with np.errstate(over="ignore"):
        return (h[:, None] * a + b).min(axis=0)


def keys(s: Sample, near: bool = True) -> tuple[str, bytes | None]:
    """What the decisions need of one sample: its exact key, and its signature bytes when near-dedup applies."""
    near_ok = near and not s.media  # same words about different images are different samples
    return fingerprint(_dedup_text(s)), (signature(s.text).tobytes() if near_ok else None)


class Deduper:
    """The dedup decisions in input order; state per kept sample: its exact key and one int per LSH band."""

    def __init__(self, threshold: float = THRESHOLD, num_perm: int = NUM_PERM):
        self.bands, self.rows = _bands(threshold, num_perm)
        self.seen: dict[str, str] = {}  # exact key → origin of its first sample
        self.tables: list[dict[int, int]] = [{} for _ in range(self.bands)]  # band hash → first kept index
        self.origins: list[str] = []  # origin of each near-checked kept sample, by index

    def check(self, s: Sample, key: str, sig: bytes | None) -> Drop | None:
        """None to keep ``s``; a Drop naming the first earlier sample it copies otherwise."""
        if key in self.seen:
            return Drop(s, "exact_duplicate", f"same text as {self.seen[key]}")
        self.seen[key] = s.origin
        if sig is None:
            return None
        from xxhash import xxh3_64_intdigest

        step = self.rows * 4  # bytes per band: rows uint32 values
        parts = [xxh3_64_intdigest(sig[i * step : (i + 1) * step]) for i in range(self.bands)]
        hits = [t[p] for t, p in zip(self.tables, parts, strict=True) if p in t]
        if hits:
            return Drop(s, "near_duplicate", f"near copy of {self.origins[min(hits)]}")
        for table, part in zip(self.tables, parts, strict=True):
            table[part] = len(self.origins)
        self.origins.append(s.origin)
        return None


def dedup(samples: Iterable[Sample], *, near: bool = True, threshold: float = THRESHOLD) -> Iterator[Sample | Drop]:
    """Yield kept samples and Drop records, in input order."""
    deduper = Deduper(threshold)
    for s in samples:
        drop = deduper.check(s, *keys(s, near))
        yield s if drop is None else drop
