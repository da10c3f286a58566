"""Pairwise votes → a Bradley–Terry ranking with bootstrap 95% confidence intervals (pure numpy).

Strengths are fitted with Hunter's MM algorithm (2004) on win counts, a tie counting half a win to each side and
"both bad" counting as nothing; the scale is fixed by a geometric mean of 1, and ``score`` is log-strength.
A CI comes from re-fitting on votes resampled with replacement.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

OUTCOMES = ("a", "b", "tie", "both_bad")
PRIOR = 0.5  # why: half a pseudo-win each way keeps a never-losing system finite (strength ∞ otherwise)


@dataclass(frozen=True)
class Vote:
    a: str
    b: str
    outcome: str  # one of OUTCOMES: a won, b won, tie, both bad


@dataclass(frozen=True)
class Ranked:
    name: str
    score: float  # log-strength
    low: float
    high: float
    games: int


def win_matrix(votes: Sequence[Vote], names: Sequence[str]) -> np.ndarray:
    """w[i, j] = wins of i over j (ties half each; both_bad ignored)."""
    idx = {n: k for k, n in enumerate(names)}
    w = np.zeros((len(names), len(names)))
    for v in votes:
        i, j = idx[v.a], idx[v.b]
        if v.outcome == "a":
            w[i, j] += 1
        elif v.outcome == "b":
            w[j, i] += 1
        elif v.outcome == "tie":
            w[i, j] += 0.5
            w[j, i] += 0.5
    return w


def fit(w: np.ndarray, iters: int = 500, tol: float = 1e-10) -> np.ndarray:
    """Bradley–Terry log-strengths from a win matrix (MM updates, PRIOR pseudo-wins between compared pairs)."""
    games = w + w.T
    w = w + PRIOR * (games > 0)
    n = w + w.T
    p = np.ones(len(w))
    for _ in range(iters):
        denom = (n / (p[:, None] + p[None, :])).sum(axis=1)
        new = np.where(denom > 0, w.sum(axis=1) / np.where(denom > 0, denom, 1), p)
        new = new / np.exp(np.log(new).mean())
        if np.abs(new - p).max() < tol:
            p = new
            break
        p = new
    return np.log(p)


def rank(votes: Sequence[Vote], rounds: int = 1000, seed: int = 0) -> list[Ranked]:
    """Every system with its score and a bootstrap 95% CI, best first."""
    names = sorted({v.a for v in votes} | {v.b for v in votes})
    if not names:
        return []
    score = fit(win_matrix(votes, names))
    rng = np.random.default_rng(seed)
    boots = np.array([fit(win_matrix([votes[k] for k in rng.integers(0, len(votes), len(votes))], names))
                      for _ in range(rounds)])
    low, high = np.percentile(boots, [2.5, 97.5], axis=0)
    games = {n: sum(n in (v.a, v.b) for v in votes) for n in names}
    out = [Ranked(n, float(score[k]), float(low[k]), float(high[k]), games[n]) for k, n in enumerate(names)]
    return sorted(out, key=lambda r: -r.score)
