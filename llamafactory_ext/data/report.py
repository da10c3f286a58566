"""Pure summaries of a build: the manifest (for reproduction) and the short human report.

Token counts come from the counter passed in (the model's tokenizer, Qwen's BPE ranks, or tokens.py's
conservative estimator); the stats name it, so a reader knows whether lengths are exact.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from ..records import Note, Sample, Skipped
from .dedup import Drop

LEAK_CODE_CHARS = 200  # why: shorter blocks (imports, one-liners) recur honestly across unrelated notes
LEAK_ANSWER_CHARS = 100  # why: short answers ("是的。", a number) repeat by chance; 100+ characters rarely do
EXCERPT_CHARS = 120  # enough to recognise the material in drops.jsonl without reopening the source
_FENCE = re.compile(r"^(`{3,}|~{3,})[^\n]*\n(.*?)^\1[ \t]*$", re.M | re.S)


def token_lengths(samples: Sequence[Sample], counter=None) -> list[int]:
    """Tokens of each sample under a ChatML-like template: its text counted by ``counter`` (a tokens.TokenCounter;
    the estimator when None) plus the template's overhead around every message and the system prompt."""
    from ..tokens import estimator

    counter = counter or estimator()
    counts = counter.count([s.text for s in samples])
    return [n + counter.turn_overhead * (len(s.turns) + 1) for s, n in zip(samples, counts, strict=True)]


def estimate_tokens(sample: Sample) -> int:
    """One sample's tokens by the estimator (no tokenizer needed)."""
    return token_lengths([sample])[0]


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


def split_stats(parts: dict[str, list[Sample]], counter=None) -> dict[str, dict]:
    """Per split: count, reasoning share, kinds, char and token percentiles (and the counter's name), term-category
    coverage."""
    from ..tokens import estimator

    counter = counter or estimator()
    stats = {}
    for name, samples in parts.items():
        stats[name] = {
            "samples": len(samples),
            "with_reasoning": sum(s.has_reasoning for s in samples),
            "kinds": dict(sorted(Counter(s.kind for s in samples).items())),
            "chars": percentiles([len(s.text) for s in samples]),
            "tokens_est": percentiles(token_lengths(samples, counter)),
            "token_counter": counter.name,
            "term_categories": dict(sorted(Counter(c for s in samples for c in s.tags).items())),
        }
    return stats


def leakage(parts: dict[str, list[Sample]]) -> dict[str, int]:
    """How many code blocks (≥200 chars) and answers (≥100 chars) occur verbatim in more than one split (target 0)."""
    code: dict[str, set[str]] = {}
    answers: dict[str, set[str]] = {}
    for split_name, samples in parts.items():
        for s in samples:
            for t in s.turns:
                for block in (m.group(2).strip() for m in _FENCE.finditer(t.content)):
                    if len(block) >= LEAK_CODE_CHARS:
                        code.setdefault(block, set()).add(split_name)
                if t.role == "assistant" and len(t.content.strip()) >= LEAK_ANSWER_CHARS:
                    answers.setdefault(t.content.strip(), set()).add(split_name)
    return {"shared_code_blocks": sum(len(v) > 1 for v in code.values()),
            "shared_answers": sum(len(v) > 1 for v in answers.values())}


def excerpt(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= EXCERPT_CHARS else flat[: EXCERPT_CHARS - 1] + "…"


def drop_rows(skipped: Sequence[Skipped], drops: Sequence[Drop]) -> list[dict]:
    """One row per drop for NAME.drops.jsonl: where (file:line), what (kind), why (reason, detail), an excerpt."""
    rows = [{"file": k.source, "line": k.line, "kind": k.kind, "stage": "convert", "reason": k.reason,
             "detail": "", "excerpt": excerpt(k.excerpt)} for k in skipped]
    rows += [{"file": d.sample.source, "line": d.sample.line, "kind": d.sample.kind, "stage": _stage_of(d.reason),
              "reason": d.reason, "detail": d.detail, "excerpt": excerpt(d.sample.text)} for d in drops]
    return rows


def _stage_of(reason: str) -> str:
    if reason.endswith("_duplicate"):
        return "dedup"
    return "reasoning" if reason.endswith("_reasoning") else "filter"


def provenance_rows(parts: dict[str, list[Sample]]) -> list[dict]:
    """Per sample, in the order of the data files: id, split and row, source file:line, kind, terms and tags."""
    from .split import group_key

    return [{"id": s.uid, "split": split_name, "row": i, "file": s.source, "line": s.line, "kind": s.kind,
             "group": group_key(s), "terms": list(s.meta.get("terms", [])), "tags": list(s.tags),
             **({"reasoning_synth": s.meta["reasoning_synth"]} if "reasoning_synth" in s.meta else {})}
            for split_name, samples in parts.items() for i, s in enumerate(samples)]


def note_summary(notes: Sequence[Note]) -> list[str]:
    """One line per notice code: how often, and where first (``file:line``)."""
    first: dict[str, Note] = {}
    for n in notes:
        first.setdefault(n.code, n)
    counts = Counter(n.code for n in notes)
    return [f"{code} ×{counts[code]} (first at {n.source}:{n.line}): {n.message}" for code, n in first.items()]


def render_report(name: str, counts: dict[str, int], drops: Sequence[Drop], stats: dict[str, dict],
                  quality: dict[str, int], warnings: Sequence[str], skipped: Sequence[Skipped] = (),
                  leaks: dict[str, int] | None = None, notes: Sequence[Note] = ()) -> str:
    """Markdown report: stage counts, drops by reason, per-split lengths, reasoning share, term coverage."""
    lines = [f"# Dataset report: {name}", "", "## Counts after each stage", ""]
    lines += [f"- {stage}: {n}" for stage, n in counts.items()]
    lines += ["", "## Dropped, by reason", ""]
    by_reason = Counter([d.reason for d in drops] + [f"{k.kind}: {k.reason}" for k in skipped])
    lines += [f"- {r}: {n}" for r, n in by_reason.most_common()] or ["- none"]
    if by_reason:
        lines.append(f"\nEvery drop, with file:line and an excerpt: `{name}.drops.jsonl`.")
    if leaks is not None:
        lines += ["", "## Shared across splits (target 0)", "",
                  f"- code blocks ≥{LEAK_CODE_CHARS} chars in more than one split: {leaks['shared_code_blocks']}",
                  f"- answers ≥{LEAK_ANSWER_CHARS} chars in more than one split: {leaks['shared_answers']}"]
    counter = next((st.get("token_counter") for st in stats.values()), "estimate")
    lines += ["", "## Splits", "", f"Token lengths by: `{counter}`" + (" (an upper-side estimate)" if counter == "estimate" else ""),
              "", "| split | samples | with reasoning | chars p50/p99/max | tokens p50/p99/max |",
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
    if notes:
        lines += ["", "## Notes", ""] + [f"- {line}" for line in note_summary(notes)]
    if warnings:
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in warnings]
    return "\n".join(lines) + "\n"


def _pct(n: int, total: int) -> str:
    return f"{100 * n / total:.0f}%" if total else "-"


def _ppm(p: dict[str, int]) -> str:
    return f"{p['p50']}/{p['p99']}/{p['max']}" if p else "-"
