"""Seeded, stratified, order-independent train/val/test split (runs after dedup).

Each stratum (sample kind + first term tag) is ordered by a seeded hash of the content id and its members are
spread evenly over [0, 1); all samples are then ordered by that position and cut at the exact ratios. So the
result depends only on the contents and the seed, each stratum lands in every split in proportion, and a sample
(a whole conversation, its reasoning included) is never cut.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence

from ..errors import UsageError
from ..records import Sample

SPLITS = ("train", "val", "test")
DEFAULT_RATIOS = (0.70, 0.15, 0.15)
MIN_EVAL = 10  # why: below ~10 eval samples a BLEU/ROUGE or loss figure swings by whole points per sample


def parse_ratios(text: str) -> tuple[float, float, float]:
    """``"70/15/15"`` or ``"0.8,0.1,0.1"`` → ratios summing to 1.

    >>> parse_ratios("80/10/10")
    (0.8, 0.1, 0.1)
    """
    parts = [p for p in text.replace(",", "/").split("/") if p.strip()]
    try:
        nums = [float(p) for p in parts]
    except ValueError:
        raise UsageError(f"--split {text!r}: expected three numbers like 70/15/15 or 0.8,0.1,0.1") from None
    if len(nums) != 3 or any(n < 0 for n in nums) or sum(nums) <= 0 or nums[0] == 0:
        raise UsageError(f"--split {text!r}: expected three non-negative numbers with train > 0, like 70/15/15")
    total = sum(nums)
    return tuple(round(n / total, 6) for n in nums)  # type: ignore[return-value]


def stratum(sample: Sample) -> str:
    """What the split balances: the sample's kind and its first tag (e.g. a term category)."""
    return f"{sample.kind}|{sample.tags[0] if sample.tags else ''}"


def _rank_key(sample: Sample, seed: int) -> str:
    return hashlib.sha256(f"{seed}:{sample.uid}".encode()).hexdigest()


def _positions(samples: Sequence[Sample], seed: int) -> list[tuple[float, str, Sample]]:
    groups: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        groups[stratum(s)].append(s)
    placed = []
    for name, members in groups.items():
        members.sort(key=lambda s: _rank_key(s, seed))
        offset = int(hashlib.sha256(f"{seed}:{name}".encode()).hexdigest()[:8], 16) / 16**8  # why: small strata must not all start at 0
        n = len(members)
        placed += [(((i + offset) / n) % 1.0, _rank_key(s, seed), s) for i, s in enumerate(members)]
    placed.sort(key=lambda p: (p[0], p[1]))
    return placed


def split(samples: Sequence[Sample], ratios: Sequence[float] = DEFAULT_RATIOS, seed: int = 0) -> dict[str, list[Sample]]:
    """Partition ``samples`` into train/val/test; same contents + seed → same partition, in any input order."""
    placed = _positions(samples, seed)
    n = len(placed)
    n_val, n_test = round(n * ratios[1]), round(n * ratios[2])
    n_train = n - n_val - n_test
    # Interleave the cut: val and test take every k-th position so each spans all of [0, 1).
    order = _assignments(n_train, n_val, n_test)
    out: dict[str, list[Sample]] = {k: [] for k in SPLITS}
    for (_, _, s), name in zip(placed, order, strict=True):
        out[name].append(s)
    for name in SPLITS:
        out[name].sort(key=lambda s: (s.source, s.line, s.uid))  # why: files read in source order are easier to review
    return out


def _assignments(n_train: int, n_val: int, n_test: int) -> list[str]:
    """A deterministic, evenly interleaved sequence of split names with exactly these counts."""
    n = n_train + n_val + n_test
    seq, given = [], {"train": 0, "val": 0, "test": 0}
    target = {"train": n_train, "val": n_val, "test": n_test}
    for i in range(n):
        # Give the position to the split furthest behind its quota (largest-remainder walk).
        name = max(SPLITS, key=lambda k: (target[k] * (i + 1) / n - given[k], -SPLITS.index(k)))
        given[name] += 1
        seq.append(name)
    return seq


def small_data_warning(parts: dict[str, list[Sample]]) -> str | None:
    """A warning in numbers when val/test are too small to mean much, else None."""
    counts = {k: len(v) for k, v in parts.items()}
    small = [k for k in ("val", "test") if 0 < counts[k] < MIN_EVAL] + [k for k in ("val", "test") if counts[k] == 0]
    if not small:
        return None
    total = sum(counts.values())
    detail = ", ".join(f"{k} {counts[k]}" for k in SPLITS)
    return (
        f"only {total} samples: {detail}. Splits under {MIN_EVAL} samples ({', '.join(small)}) give noisy "
        "eval figures — add data, or use --split 80/20/0 and judge on val alone"
    )
