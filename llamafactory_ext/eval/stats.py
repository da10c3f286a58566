"""Base vs tuned on the same samples: both means, the delta, a paired-bootstrap 95% CI, better/worse counts."""

from __future__ import annotations

from collections.abc import Sequence

B = 2000  # bootstrap resamples: the 2.5/97.5 percentiles move by < 0.1 point between seeds at this size
DEFINITION = ("paired bootstrap: resample sample indices with replacement B=2000 times (seed 0), take the mean of "
              "(tuned − base) per resample; CI = 2.5th and 97.5th percentiles of those means")


def paired_bootstrap(base: Sequence[float], tuned: Sequence[float], n_boot: int = B, seed: int = 0) -> dict:
    """Both means, delta = mean(tuned − base), its 95% CI, and how many samples got better / worse / stayed."""
    import numpy as np

    a, b = np.asarray(base, dtype=float), np.asarray(tuned, dtype=float)
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"paired samples needed: {a.size} base vs {b.size} tuned values")
    diff = b - a
    idx = np.random.default_rng(seed).integers(0, diff.size, size=(n_boot, diff.size))
    boots = diff[idx].mean(axis=1)
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return {"base": float(a.mean()), "tuned": float(b.mean()), "delta": float(diff.mean()),
            "ci_low": float(lo), "ci_high": float(hi), "better": int((diff > 0).sum()),
            "worse": int((diff < 0).sum()), "same": int((diff == 0).sum())}


def compare(base: list[dict], tuned: list[dict], keys: Sequence[str]) -> dict[str, dict]:
    """paired_bootstrap for every metric in ``keys`` over per-sample score dicts of equal length."""
    if len(base) != len(tuned):
        from ..errors import UsageError

        raise UsageError(f"base has {len(base)} samples, tuned {len(tuned)}: evaluate both on the same test split")
    return {k: paired_bootstrap([r[k] for r in base], [r[k] for r in tuned]) for k in keys}
