"""Pure summaries of a build: the manifest (for reproduction) and the short human report.

Token counts are estimates (CJK ≈ 1.4 characters per token, other text ≈ 3.6, as Qwen/Gemma BPE vocabularies
give on Chinese technical prose) unless a real tokenizer's counts are passed in.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from ..records import Sample
from .dedup import Drop

CJK_PER_TOKEN = 1.4  # why: measured range 1.3–1.5 for Qwen2.5/Qwen3 on Chinese prose
OTHER_PER_TOKEN = 3.6  # why: English and code average ~3.5–4 chars/token with these BPEs
TURN_OVERHEAD = 5  # why: ChatML adds <|im_start|>role\n … <|im_end|>\n around every message
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef]")


def estimate_tokens(sample: Sample) -> int:
    """Rough token count of a sample under a ChatML-like template (system + turns + reasoning tags)."""
    text = sample.text
    cjk = len(_CJK.findall(text))
    return int(cjk / CJK_PER_TOKEN + (len(text) - cjk) / OTHER_PER_TOKEN) + TURN_OVERHEAD * (len(sample.turns) + 1)


def percentiles(values: Sequence[int], qs: Sequence[int] = (50, 90, 99, 100)) -> dict[str, int]:
    """Nearest-rank percentiles: ``{"p50": …, "p99": …, "max": …}`` (``{}`` for no values)."""
    if not values:
        return {}
    ordered = sorted(values)
    out = {}
    for q in qs:
        rank = max(1, -(-q * len(ordered) // 100))  # ceil without floats
        out["max" if q == 100 else f"p{q}"] = ordered[rank - 1]
    return out


def split_stats(parts: dict[str, list[Sample]]) -> dict[str, dict]:
    """Per split: count, reasoning share, kinds, char and estimated-token percentiles, term-category coverage."""
    stats = {}
    for name, samples in parts.items():
        stats[name] = {
            "samples": len(samples),
            "with_reasoning": sum(s.has_reasoning for s in samples),
            "kinds": dict(sorted(Counter(s.kind for s in samples).items())),
            "chars": percentiles([len(s.text) for s in samples]),
            "tokens_est": percentiles([estimate_tokens(s) for s in samples]),
            "term_categories": dict(sorted(Counter(c for s in samples for c in s.tags).items())),
        }
    return stats


def render_report(name: str, counts: dict[str, int], drops: Sequence[Drop], stats: dict[str, dict],
                  quality: dict[str, int], warnings: Sequence[str]) -> str:
    """Markdown report: stage counts, drops by reason, per-split lengths, reasoning share, term coverage."""
    lines = [f"# Dataset report: {name}", "", "## Counts after each stage", ""]
    lines += [f"- {stage}: {n}" for stage, n in counts.items()]
    lines += ["", "## Dropped, by reason", ""]
    by_reason = Counter(d.reason for d in drops)
    lines += [f"- {r}: {n}" for r, n in by_reason.most_common()] or ["- none"]
    lines += ["", "## Splits", "", "| split | samples | with reasoning | chars p50/p99/max | tokens≈ p50/p99/max |",
              "|---|---|---|---|---|"]
    for split_name, st in stats.items():
        share = f"{st['with_reasoning']} ({_pct(st['with_reasoning'], st['samples'])})"
        lines.append(f"| {split_name} | {st['samples']} | {share} | {_ppm(st['chars'])} | {_ppm(st['tokens_est'])} |")
    lines += ["", "## Term-category coverage per split", ""]
    cats = sorted({c for st in stats.values() for c in st["term_categories"]})
    if cats:
        lines += ["| category | " + " | ".join(stats) + " |", "|---" * (len(stats) + 1) + "|"]
        lines += [f"| {c} | " + " | ".join(str(st["term_categories"].get(c, 0)) for st in stats.values()) + " |"
                  for c in cats]
    else:
        lines.append("- no domain terms found")
    lines += ["", "## Reasoning quality warnings", ""]
    lines += [f"- {code}: {n}" for code, n in quality.items()] or ["- none"]
    if warnings:
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in warnings]
    return "\n".join(lines) + "\n"


def _pct(n: int, total: int) -> str:
    return f"{100 * n / total:.0f}%" if total else "-"


def _ppm(p: dict[str, int]) -> str:
    return f"{p['p50']}/{p['p99']}/{p['max']}" if p else "-"
