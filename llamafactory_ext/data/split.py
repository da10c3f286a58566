"""Seeded, stratified, order-independent train/val/test split (runs after dedup).

Each stratum (sample kind + rarest term tag) gets val/test quotas in proportion to its size (largest remainder,
so the totals are exact) and its members, ordered by a seeded hash of their content, fill them. So the result
depends only on the contents and the seed, every stratum lands in each split in proportion, and a sample (a whole
conversation, its reasoning included) is never cut.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
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


def stratum(sample: Sample, tag_counts: Counter | None = None) -> str:
    """What the split balances: the sample's kind and its rarest tag (e.g. a term category), so rare
    categories are spread over the splits first; without counts, the first tag."""
    tags = sorted(sample.tags, key=lambda t: (tag_counts[t], t)) if tag_counts else list(sample.tags)
    return f"{sample.kind}|{tags[0] if tags else ''}"


def _rank_key(sample: Sample, seed: int) -> str:
    return hashlib.sha256(f"{seed}:{sample.uid}".encode()).hexdigest()


def _quotas(sizes: dict[str, int], ratio: float, total: int, seed: int) -> dict[str, int]:
    """Per-stratum counts for one split: floors first, then the leftover by largest remainder (seeded ties)."""
    exact = {k: n * ratio for k, n in sizes.items()}
    quota = {k: int(v) for k, v in exact.items()}
    leftover = total - sum(quota.values())
    order = sorted(sizes, key=lambda k: (-(exact[k] - quota[k]), hashlib.sha256(f"{seed}:{k}".encode()).hexdigest()))
    for k in order[: max(0, leftover)]:
        quota[k] += 1
    return quota


def split(samples: Sequence[Sample], ratios: Sequence[float] = DEFAULT_RATIOS, seed: int = 0) -> dict[str, list[Sample]]:
    """Partition ``samples`` into train/val/test; same contents + seed → same partition, in any input order."""
    groups: dict[str, list[Sample]] = defaultdict(list)
    tag_counts = Counter(t for s in samples for t in s.tags)
    for s in samples:
        groups[stratum(s, tag_counts)].append(s)
    sizes = {k: len(v) for k, v in groups.items()}
    n = len(samples)
    val_q = _quotas(sizes, ratios[1], round(n * ratios[1]), seed)
    rest = {k: sizes[k] - val_q[k] for k in sizes}
    test_ratio = ratios[2] / (1 - ratios[1]) if ratios[1] < 1 else 0.0
    test_q = _quotas(rest, test_ratio, round(n * ratios[2]), seed + 1)
    out: dict[str, list[Sample]] = {k: [] for k in SPLITS}
    for name, members in groups.items():
        members.sort(key=lambda s: _rank_key(s, seed))
        v, t = val_q[name], test_q[name]
        out["val"] += members[:v]
        out["test"] += members[v : v + t]
        out["train"] += members[v + t :]
    for part in out.values():
        part.sort(key=lambda s: (s.source, s.line, s.uid))  # why: files read in source order are easier to review
    return out


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
