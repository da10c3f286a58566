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
from pathlib import Path

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
    """The dedup decisions in input order. State per sample: a few 64-bit hashes in sorted numpy arrays (16 bytes
    each) and its origin as two integers, so millions of samples fit in a few hundred MB."""

    def __init__(self, threshold: float = THRESHOLD, num_perm: int = NUM_PERM, spill: Path | None = None):
        self.bands, self.rows = _bands(threshold, num_perm)
        self.index = HashIndex(spill)  # exact key and each LSH band hash → the origin number of its first sample
        self.origins = Origins()

    def check(self, origin: tuple[str, int], key: str, sig: bytes | None) -> tuple[str, str] | None:
        """None to keep the sample at ``origin`` (source, line); else (reason, detail) naming the first earlier
        sample it copies."""
        from xxhash import xxh3_64_intdigest

        exact = xxh3_64_intdigest(key.encode("ascii"))  # the sha1 hex of the folded text
        step = self.rows * 4  # bytes per band: rows uint32 values
        # why seed=band: a band-1 value equal to another sample's band-2 value is no evidence of a copy
        parts = [] if sig is None else [xxh3_64_intdigest(sig[i * step:(i + 1) * step], i + 1)
                                        for i in range(self.bands)]
        found = self.index.get([exact, *parts])
        if found[0] is not None:
            return "exact_duplicate", f"same text as {self.origins.text(found[0])}"
        number = self.origins.add(*origin)
        hits = [f for f in found[1:] if f is not None]
        self.index.put([exact] if hits else [exact, *parts], number)
        if hits:
            return "near_duplicate", f"near copy of {self.origins.text(min(hits))}"
        return None


class Origins:
    """``file:line`` of numbered samples, as two integers each (file names are stored once)."""

    def __init__(self) -> None:
        from array import array

        self.names: dict[str, int] = {}
        self.sources: list[str] = []
        self.files, self.lines = array("l"), array("q")

    def add(self, source: str, line: int) -> int:
        if source not in self.names:
            self.names[source] = len(self.sources)
            self.sources.append(source)
        self.files.append(self.names[source])
        self.lines.append(line)
        return len(self.lines) - 1

    def text(self, number: int) -> str:
        source = self.sources[self.files[number]]
        return f"{source}:{self.lines[number]}" if source else "<memory>"  # as Sample.origin says it


class HashIndex:
    """64-bit hash → int, for millions of entries: recent ones in a dict, older ones merged into sorted numpy
    arrays (16 bytes an entry instead of ~100 in a dict), with a 16 MB bit filter in front so that most misses
    (nearly every lookup is one) never reach numpy."""

    MERGE = 1 << 16  # why: a merge re-sorts everything (linear for two sorted runs); 64k entries keep it rare
    FILTER_BITS = 1 << 27  # why: 16 MB; with 3M entries (0.5M samples × 6 hashes) ~2% of misses get through
    SPILL_AT = 1 << 23  # entries; why: past 8M (128 MB, ~1.4M samples) the arrays live in files, read through the page cache

    def __init__(self, spill: Path | None = None) -> None:
        import numpy as np

        self.spill, self.spills = spill, 0  # a folder for the arrays once they are big (None: stay in memory)
        self.recent: dict[int, int] = {}
        self.keys, self.values = np.empty(0, np.uint64), np.empty(0, np.int64)
        self.filter = bytearray(self.FILTER_BITS // 8)

    def get(self, hashes: list[int]) -> list[int | None]:
        found = [self.recent.get(h) for h in hashes]
        maybe = [i for i, (f, h) in enumerate(zip(found, hashes, strict=True)) if f is None and self._seen(h)]
        if maybe and len(self.keys):
            import numpy as np

            wanted = np.array([hashes[i] for i in maybe], dtype=np.uint64)
            at = np.minimum(np.searchsorted(self.keys, wanted), len(self.keys) - 1)
            for i, a, hit in zip(maybe, at.tolist(), (self.keys[at] == wanted).tolist(), strict=True):
                if hit:
                    found[i] = int(self.values[a])
        return found

    def put(self, hashes: list[int], value: int) -> None:
        """Add hashes that ``get`` did not find (the Deduper adds only new ones)."""
        for h in hashes:
            self.recent.setdefault(h, value)
            self.filter[(h >> 3) % len(self.filter)] |= 1 << (h & 7)
        if len(self.recent) >= max(self.MERGE, len(self.keys) // 8):  # why //8: merges stay O(n log n) in total
            self._merge()

    def _seen(self, h: int) -> bool:
        return bool(self.filter[(h >> 3) % len(self.filter)] >> (h & 7) & 1)

    def _merge(self) -> None:
        import numpy as np

        n = len(self.recent)
        keys = np.concatenate([self.keys, np.fromiter(self.recent.keys(), np.uint64, n)])
        values = np.concatenate([self.values, np.fromiter(self.recent.values(), np.int64, n)])
        order = np.argsort(keys, kind="stable")  # why stable: timsort merges the two sorted runs in linear time
        self.keys, self.values = self._place(keys[order]), self._place(values[order])
        self.recent.clear()

    def _place(self, array):
        """The array itself, or past SPILL_AT entries a memory-mapped copy in the spill folder."""
        import numpy as np

        if self.spill is None or len(array) < self.SPILL_AT:
            return array
        self.spills += 1
        path = self.spill / f"dedup-{self.spills}.npy"
        mapped = np.lib.format.open_memmap(path, mode="w+", dtype=array.dtype, shape=array.shape)
        mapped[:] = array
        mapped.flush()
        (self.spill / f"dedup-{self.spills - 2}.npy").unlink(missing_ok=True)  # the previous keys or values file
        return np.load(path, mmap_mode="r")


def dedup(samples: Iterable[Sample], *, near: bool = True, threshold: float = THRESHOLD) -> Iterator[Sample | Drop]:
    """Yield kept samples and Drop records, in input order."""
    deduper = Deduper(threshold)
    for s in samples:
        verdict = deduper.check((s.source, s.line), *keys(s, near))
        yield s if verdict is None else Drop(s, *verdict)
