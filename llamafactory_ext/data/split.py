"""Seeded, grouped, stratified, order-independent train/val/test split (runs after dedup).

Samples made from one source unit (``meta["group"]``: a section, a code block, a conversation; a sample without
one is its own group) always land in the same split, so held-out samples never share their code or answer with
training ones. Each stratum (kind + rarest term tag of a group's members) gets val/test quotas in samples, in
proportion to its size (largest remainder, so the totals are exact when groups are single samples); its groups,
ordered by a seeded hash of their key, go one by one to the split furthest below its quota. So the result depends
only on the contents and the seed, and every stratum lands in each split in proportion.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import PurePath
from typing import NamedTuple

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
        raise UsageError(f"--split {text!r}: expected three numbers — write them like 70/15/15 or 0.8,0.1,0.1") from None
    if len(nums) != 3 or any(not n >= 0 or n == float("inf") for n in nums) or sum(nums) <= 0 or nums[0] == 0:
        raise UsageError(f"--split {text!r}: expected three non-negative numbers with train > 0 — "
                         "write them like 70/15/15")
    total = sum(nums)
    return tuple(round(n / total, 6) for n in nums)  # type: ignore[return-value]


class Unit(NamedTuple):
    """What the split needs of one sample: its group, what it is balanced on, and its place inside a split file.
    A compact stand-in, so a build of millions of samples can split without holding the samples (a NamedTuple:
    one crosses from a worker per sample)."""

    group: str
    kind: str
    tags: tuple[str, ...]
    order: tuple[str, int, str]  # (source, line, uid): files read in source order are easier to review


def unit(sample: Sample) -> Unit:
    uid = sample.uid  # why once: a hash of the whole text
    return Unit(group_key(sample, uid), sample.kind, tuple(sample.tags), (sample.source, sample.line, uid))


def stratum(sample: Sample | Unit, tag_counts: Counter | None = None) -> str:
    """What the split balances: the sample's kind and its rarest tag (e.g. a term category), so rare
    categories are spread over the splits first; without counts, the first tag."""
    tags = sorted(sample.tags, key=lambda t: (tag_counts[t], t)) if tag_counts else list(sample.tags)
    return f"{sample.kind}|{tags[0] if tags else ''}"


def group_key(sample: Sample, uid: str | None = None) -> str:
    """The source unit a sample came from (set by converters that make several samples of one unit).

    A group named ``<source>:<line>`` keeps only the file's name, so the split does not depend on whether the
    notes were passed as a relative or an absolute path."""
    group = sample.meta.get("group") if isinstance(sample.meta, dict) else None
    if group in (None, ""):
        return f"u:{uid or sample.uid}"
    group = str(group)
    if sample.source and group.startswith(sample.source + ":"):
        group = PurePath(sample.source).name + group[len(sample.source):]
    return f"g:{group}"


def _rank(key: str, seed: int) -> str:
    return hashlib.sha256(f"{seed}:{key}".encode("utf-8", "surrogatepass")).hexdigest()  # keys may hold file names


def _quotas(sizes: dict[str, int], ratio: float, total: int, seed: int) -> dict[str, int]:
    """Per-stratum counts for one split: floors first, then the leftover by largest remainder (seeded ties)."""
    exact = {k: n * ratio for k, n in sizes.items()}
    quota = {k: int(v) for k, v in exact.items()}
    leftover = total - sum(quota.values())
    order = sorted(sizes, key=lambda k: (-(exact[k] - quota[k]), hashlib.sha256(f"{seed}:{k}".encode("utf-8", "surrogatepass")).hexdigest()))
    for k in order[: max(0, leftover)]:
        quota[k] += 1
    return quota


def split(samples: Sequence[Sample], ratios: Sequence[float] = DEFAULT_RATIOS, seed: int = 0) -> dict[str, list[Sample]]:
    """Partition ``samples`` into train/val/test; same contents + seed → same partition, in any input order;
    all samples of one group in one split."""
    samples = list(samples)
    return {name: [samples[i] for i in part] for name, part in assign([unit(s) for s in samples], ratios, seed).items()}


def assign(units: Sequence[Unit], ratios: Sequence[float] = DEFAULT_RATIOS, seed: int = 0) -> dict[str, list[int]]:
    """The split of ``units`` as indices per split, each split in file order (source, line, uid)."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, u in enumerate(units):
        groups[u.group].append(i)
    tag_counts = Counter(t for u in units for t in u.tags)
    strata: dict[str, list[str]] = defaultdict(list)
    for key, members in groups.items():
        counts = Counter(stratum(units[i], tag_counts) for i in members)
        strata[min(counts.most_common(), key=lambda kv: (-kv[1], kv[0]))[0]].append(key)
    sizes = {k: sum(len(groups[g]) for g in keys) for k, keys in strata.items()}
    quotas = _split_quotas(sizes, len(units), ratios, seed)
    out: dict[str, list[int]] = {k: [] for k in SPLITS}
    for name, keys in strata.items():
        for key, part in _fill(sorted(keys, key=lambda g: _rank(g, seed)), groups, quotas[name]):
            out[part] += groups[key]
    for part in out.values():
        part.sort(key=lambda i: units[i].order)
    return out


def _split_quotas(sizes: dict[str, int], n: int, ratios: Sequence[float], seed: int) -> dict[str, dict[str, int]]:
    """Per stratum: how many samples each split should get (val first, then test out of the rest)."""
    val_q = _quotas(sizes, ratios[1], round(n * ratios[1]), seed)
    rest = {k: sizes[k] - val_q[k] for k in sizes}
    test_ratio = ratios[2] / (1 - ratios[1]) if ratios[1] < 1 else 0.0
    test_q = _quotas(rest, test_ratio, round(n * ratios[2]), seed + 1)
    return {k: {"train": sizes[k] - val_q[k] - test_q[k], "val": val_q[k], "test": test_q[k]} for k in sizes}


def _fill(keys: list[str], groups: dict[str, list[int]], quota: dict[str, int]):
    """Give each group (in ranked order) to the split furthest below its quota; ties go train, val, test."""
    taken = dict.fromkeys(SPLITS, 0)
    for key in keys:
        part = max(SPLITS, key=lambda p: (quota[p] - taken[p], -SPLITS.index(p)))
        taken[part] += len(groups[key])
        yield key, part


def small_data_warning(parts: dict[str, Sequence]) -> str | None:
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
