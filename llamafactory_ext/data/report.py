"""Pure summaries of a build: the manifest (for reproduction) and the short human report.

Token counts come from the counter passed in (the model's tokenizer, Qwen's BPE ranks, or tokens.py's
conservative estimator); the stats name it, so a reader knows whether lengths are exact.
"""

from __future__ import annotations

import re
from array import array
from collections import Counter
from collections.abc import Iterable, Sequence

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
    return [with_overhead(n, s, counter) for s, n in zip(samples, counts, strict=True)]


def with_overhead(n: int, sample: Sample, counter) -> int:
    """A sample's text tokens plus the template's tokens around every message and the system prompt."""
    return n + counter.turn_overhead * (len(sample.turns) + 1)


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
        acc = SplitStats(counter.name)
        for s, tokens in zip(samples, token_lengths(samples, counter), strict=True):
            acc.add(s.kind, s.tags, len(s.text), tokens, s.has_reasoning)
        stats[name] = acc.result()
    return stats


class SplitStats:
    """One split's statistics, fed one sample at a time (a streamed build never holds the split)."""

    def __init__(self, counter_name: str) -> None:
        self.counter, self.samples, self.reasoning = counter_name, 0, 0
        self.kinds: Counter = Counter()
        self.categories: Counter = Counter()
        self.chars, self.tokens = array("q"), array("q")

    def add(self, kind: str, tags: Iterable[str], chars: int, tokens: int, reasoning: bool) -> None:
        self.samples += 1
        self.reasoning += bool(reasoning)
        self.kinds[kind] += 1
        self.categories.update(tags)
        self.chars.append(chars)
        self.tokens.append(tokens)

    def result(self) -> dict:
        return {"samples": self.samples, "with_reasoning": self.reasoning, "kinds": dict(sorted(self.kinds.items())),
                "chars": percentiles(self.chars), "tokens_est": percentiles(self.tokens),
                "token_counter": self.counter, "term_categories": dict(sorted(self.categories.items()))}


def leakage(parts: dict[str, list[Sample]]) -> dict[str, int]:
    """How many code blocks (≥200 chars) and answers (≥100 chars) occur verbatim in more than one split (target 0)."""
    leaks = Leaks()
    for split_name, samples in parts.items():
        for s in samples:
            leaks.add(split_name, *leak_digests(s))
    return leaks.counts()


def leak_digests(s: Sample) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
    """Digests of the sample's long code blocks and long answers: what leakage compares across splits."""
    from xxhash import xxh3_128_digest

    blocks = (m.group(2).strip() for t in s.turns for m in _FENCE.finditer(t.content))
    code = tuple(xxh3_128_digest(b.encode("utf-8", "surrogatepass")) for b in blocks if len(b) >= LEAK_CODE_CHARS)
    answers = (t.content.strip() for t in s.turns if t.role == "assistant")
    long = tuple(xxh3_128_digest(a.encode("utf-8", "surrogatepass")) for a in answers if len(a) >= LEAK_ANSWER_CHARS)
    return code, long


class Leaks:
    """Which splits each long code block / answer (by digest) occurs in, fed one sample at a time."""

    def __init__(self) -> None:
        self.bits: dict[str, int] = {}
        self.code: dict[bytes, int] = {}
        self.answers: dict[bytes, int] = {}

    def add(self, split_name: str, code: Iterable[bytes], answers: Iterable[bytes]) -> None:
        bit = self.bits.setdefault(split_name, 1 << len(self.bits))
        for table, digests in ((self.code, code), (self.answers, answers)):
            for d in digests:
                table[d] = table.get(d, 0) | bit

    def counts(self) -> dict[str, int]:
        shared = lambda table: sum(v & (v - 1) != 0 for v in table.values())  # noqa: E731 — more than one bit set
        return {"shared_code_blocks": shared(self.code), "shared_answers": shared(self.answers)}


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
    return [{"id": s.uid, "split": split_name, "row": i, **provenance_fields(s)}
            for split_name, samples in parts.items() for i, s in enumerate(samples)]


def provenance_fields(s: Sample, group: str | None = None) -> dict:
    """What provenance says of a sample besides its id and place: file:line, kind, group, terms, tags
    (``group``: its group key when the caller has it already; it costs a hash of the text)."""
    from .split import group_key

    return {"file": s.source, "line": s.line, "kind": s.kind, "group": group or group_key(s),
            "terms": list(s.meta.get("terms", [])), "tags": list(s.tags),
            **({"reasoning_synth": s.meta["reasoning_synth"]} if "reasoning_synth" in s.meta else {})}


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
