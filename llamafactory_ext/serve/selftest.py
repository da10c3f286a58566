"""The start-up self-test's verdict (pure): every pane must be what it claims.

Each column answers one probe prompt greedily; its last-position logits are compared too, because a tiny or
briefly trained adapter can give the same greedy text as the base while its distribution moved. Two columns that
should differ (base vs an adapter, or two adapters) with the same text AND logits closer than LOGIT_EPS are one
model under two names — the fault Unsloth Studio's compare mode shipped (#4503).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

LOGIT_EPS = 1e-4  # why: fp32 noise between identical weights is ~1e-6; any trained LoRA moves logits far more


@dataclass(frozen=True)
class Probe:
    column: str
    text: str
    logits: Sequence[float]


def identical_pairs(probes: Sequence[Probe]) -> list[tuple[str, str]]:
    """Pairs of columns that answered identically (same text, logits within LOGIT_EPS)."""
    same = []
    for i, a in enumerate(probes):
        for b in probes[i + 1:]:
            if a.text == b.text and _max_diff(a.logits, b.logits) < LOGIT_EPS:
                same.append((a.column, b.column))
    return same


def verdict(probes: Sequence[Probe]) -> str | None:
    """None when every column differs from every other; else the message that stops comparison."""
    pairs = identical_pairs(probes)
    if not pairs:
        return None
    named = "; ".join(f"'{a}' and '{b}'" for a, b in pairs)
    return (f"self-test failed: {named} answer identically (same greedy text, logits within {LOGIT_EPS}) — "
            "one of them is not the model it claims (an adapter not applied, an untrained adapter, or the same "
            "adapter twice); comparison is off until the adapters are fixed")


def _max_diff(a: Sequence[float], b: Sequence[float]) -> float:
    if len(a) != len(b):
        return float("inf")
    return max((abs(x - y) for x, y in zip(a, b, strict=True)), default=0.0)
