"""Benchmark: the markdown wing of the dataset flow (read → convert → tag) vs. bare markdown-it + jieba.

Usage: python bench/markdown_pipeline.py [--mb 4] [--repeat 3] [--seed 0] [--only all|ours|bare] [--no-full]
Generates a seeded multi-MB corpus of Chinese notes from examples/crypto_notes/*.md in a temp dir, times both
lines in one single-process run (best of --repeat, warmed up first) and prints PASS/FAIL against the targets.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import re
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run from a checkout without installing the package

from llamafactory_ext.data.converters.markdown import convert_markdown  # noqa: E402
from llamafactory_ext.data.pipeline import BuildOptions, build, tag_samples  # noqa: E402
from llamafactory_ext.data.sources.files import read_text  # noqa: E402
from llamafactory_ext.errors import DataError  # noqa: E402

TEMPLATES = REPO / "examples" / "crypto_notes"
LEXICON = REPO / "llamafactory_ext" / "data" / "lexicons" / "crypto.tsv"
MB = 1_000_000  # decimal megabytes of UTF-8, as in "MB/s"
FILE_BYTES = (50_000, 200_000)  # why: the size of a long real notes file; many files, not one huge one
TARGET_MBPS, TARGET_RATIO = 2.0, 1.5
SUBSTITUTIONS = 4  # why: a few term swaps per chunk keep chunks distinct without turning them into noise

_CHUNK_START = re.compile(r"^#{2,3} ")  # "## " / "### " headings start a shuffleable chunk
_FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
_Q_NUMBER = re.compile(r"^(#{2,3} Q)\d+", re.MULTILINE)
_CJK = re.compile(r"[\u4e00-\u9fff]")


# ---------------------------------------------------------------- corpus


def split_template(text: str) -> tuple[str, list[str]]:
    """(preamble, chunks): the text cut before every ##/### heading that is not inside a code fence."""
    parts: list[list[str]] = [[]]
    fence: str | None = None
    for line in text.splitlines(keepends=True):
        m = _FENCE.match(line)
        if m and fence is None:
            fence = m.group(1)[0]
        elif m and line.strip().startswith(fence * 3):
            fence = None
        elif fence is None and _CHUNK_START.match(line):
            parts.append([])
        parts[-1].append(line)
    blocks = ["".join(p).rstrip("\n") + "\n" for p in parts]
    return blocks[0], blocks[1:]


def load_terms() -> dict[str, list[str]]:
    """Chinese lexicon terms by category (first TSV column), for same-category substitution."""
    by_cat: dict[str, list[str]] = {}
    for line in LEXICON.read_text(encoding="utf-8").splitlines():
        cols = line.split("\t")
        if len(cols) == 3 and not line.startswith("#") and cols[0] != "term" and _CJK.search(cols[0]):
            by_cat.setdefault(cols[2].strip(), []).append(cols[0].strip())
    return {c: ts for c, ts in by_cat.items() if len(ts) > 1}


class Varier:
    """Seeded chunk variation: swap a few lexicon terms for others of the same category."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        by_cat = load_terms()
        self.category = {t: c for c, ts in by_cat.items() for t in ts}
        self.by_cat = by_cat
        names = sorted(self.category, key=len, reverse=True)  # longest first: 分组密码 before 密码
        self.pattern = re.compile("|".join(map(re.escape, names)))

    def vary(self, chunk: str) -> str:
        present = sorted(set(self.pattern.findall(chunk)))
        chosen = self.rng.sample(present, min(SUBSTITUTIONS, len(present)))
        swap = {t: self.rng.choice([o for o in self.by_cat[self.category[t]] if o != t]) for t in chosen}
        return self.pattern.sub(lambda m: swap.get(m.group(), m.group()), chunk) if swap else chunk


def renumber(text: str) -> str:
    """Number "## Q<n>." headings 1, 2, 3 … through the file."""
    counter = iter(range(1, 1_000_000))
    return _Q_NUMBER.sub(lambda m: f"{m.group(1)}{next(counter)}", text)


def make_corpus(folder: Path, mb: float, seed: int) -> list[Path]:
    """Write notes_NNNN.md files of 50–200 KB until they hold ``mb`` MB; same seed, same bytes."""
    rng = random.Random(seed)
    varier = Varier(rng)
    templates = [split_template(p.read_text(encoding="utf-8")) for p in sorted(TEMPLATES.glob("*.md"))]
    chunks = [c for _, cs in templates for c in cs]
    total, want, paths = 0, int(mb * MB), []
    while total < want:
        remaining = want - total
        target = rng.randint(*FILE_BYTES)
        if remaining - target < FILE_BYTES[0]:
            target = remaining  # no tiny last file
        preamble = rng.choice(templates)[0]
        parts = [preamble.replace("\n", f"（第 {len(paths) + 1} 册）\n", 1)]
        size = len(parts[0].encode())
        while size < target:
            part = varier.vary(rng.choice(chunks))
            parts.append(part)
            size += len(part.encode()) + 1
        data = renumber("\n".join(parts)).encode("utf-8")
        path = folder / f"notes_{len(paths):04d}.md"
        path.write_bytes(data)
        paths.append(path)
        total += len(data)
    return paths


# ---------------------------------------------------------------- timed lines


@dataclass
class Timing:
    """Wall seconds per stage for one pass, plus CPU seconds of the whole pass and what it produced."""

    stages: dict[str, float] = field(default_factory=dict)
    cpu: float = 0.0
    out: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> float:
        return sum(self.stages.values())


def ours(paths: list[Path]) -> Timing:
    """read_text → convert_markdown (thinking scan, markdown-it, Q&A rules, normalize) → tag_samples."""
    t = Timing(stages=dict.fromkeys(("read", "convert", "tag"), 0.0))
    c0 = time.process_time()
    samples, errors = [], []
    for p in paths:
        a = time.perf_counter()
        text = read_text(p)
        b = time.perf_counter()
        for item in convert_markdown(text, source=str(p), t2s="t2s"):
            (errors if isinstance(item, DataError) else samples).append(item)
        c = time.perf_counter()
        t.stages["read"] += b - a
        t.stages["convert"] += c - b
    a = time.perf_counter()
    tagged = tag_samples(samples, None)
    t.stages["tag"] = time.perf_counter() - a
    t.cpu = time.process_time() - c0
    t.out = {"samples": len(tagged), "errors": len(errors), "tagged": sum(bool(s.tags) for s in tagged)}
    if errors:
        print(f"  converter errors on the corpus (first): {errors[0]}", file=sys.stderr)
    return t


def convert_breakdown(paths: list[Path]) -> dict[str, float]:
    """Wall seconds of the convert sub-steps run on their own (normalize = convert minus these, see report)."""
    from llamafactory_ext.data.parse.markdown import parse_markdown
    from llamafactory_ext.data.parse.qa import find_units
    from llamafactory_ext.data.parse.thinking import scan_thinking

    out = dict.fromkeys(("thinking scan", "markdown-it parse", "Q&A rules"), 0.0)
    for p in paths:
        text, src = read_text(p), str(p)
        a = time.perf_counter()
        scan = scan_thinking(text, src)
        b = time.perf_counter()
        doc = parse_markdown(scan.text)
        c = time.perf_counter()
        find_units(scan, doc, src)
        d = time.perf_counter()
        out["thinking scan"] += b - a
        out["markdown-it parse"] += c - b
        out["Q&A rules"] += d - c
    return out


def bare(paths: list[Path]) -> Timing:
    """read bytes + decode → MarkdownIt("commonmark").enable("table").parse → jieba.lcut (global tokenizer)."""
    import jieba
    from markdown_it import MarkdownIt

    t = Timing(stages=dict.fromkeys(("read", "markdown-it", "jieba"), 0.0))
    md = MarkdownIt("commonmark").enable("table")
    c0 = time.process_time()
    tokens = words = 0
    for p in paths:
        a = time.perf_counter()
        text = p.read_bytes().decode("utf-8")
        b = time.perf_counter()
        tokens += len(md.parse(text))
        c = time.perf_counter()
        words += len(jieba.lcut(text))
        d = time.perf_counter()
        t.stages["read"] += b - a
        t.stages["markdown-it"] += c - b
        t.stages["jieba"] += d - c
    t.cpu = time.process_time() - c0
    t.out = {"md tokens": tokens, "jieba words": words}
    return t


def full(folder: Path) -> Timing:
    """pipeline.build on the folder: read, convert, tag, filter, reasoning checks, dedup, split."""
    t = Timing()
    c0 = time.process_time()
    a = time.perf_counter()
    with build(BuildOptions(source="markdown", inputs=(folder,), name="bench")) as result:
        t.stages["build"] = time.perf_counter() - a
    t.cpu = time.process_time() - c0
    t.out = {**result.counts, "errors": len(result.errors), "drops": len(result.drops)}
    return t


def warm_up() -> None:
    """jieba dictionaries (global and the lexicon's private tokenizer), OpenCC, markdown-it parsers, datasketch."""
    import jieba
    from markdown_it import MarkdownIt

    jieba.setLogLevel(60)
    jieba.initialize()
    templates = sorted(TEMPLATES.glob("*.md"))
    text = templates[0].read_text(encoding="utf-8")
    MarkdownIt("commonmark").enable("table").parse(text)
    jieba.lcut(text)
    tag_samples([s for s in convert_markdown(text, source="warmup.md") if not isinstance(s, DataError)], None)
    with build(BuildOptions(source="markdown", inputs=(TEMPLATES,), name="warmup")):
        pass


# ---------------------------------------------------------------- report


def best(fn: Callable[[], Timing], repeat: int) -> Timing:
    return min((fn() for _ in range(repeat)), key=lambda t: t.total)


def line(name: str, t: Timing, size: int) -> str:
    mbps = size / MB / t.total
    return f"{name:<11} {size / MB:6.2f} MB  {t.total:7.3f} s  {mbps:6.2f} MB/s  (CPU {t.cpu:.3f} s)  {t.out}"


def machine() -> str:
    mem = next(ln for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemTotal"))
    kb = int(mem.split()[1])
    import jieba
    import markdown_it
    import opencc  # noqa: F401

    return (f"nproc={os.cpu_count()} (affinity {len(os.sched_getaffinity(0))}), RAM {kb / 1024**2:.1f} GiB, "
            f"{platform.processor() or platform.machine()}, Python {platform.python_version()}, "
            f"markdown-it-py {markdown_it.__version__}, jieba {jieba.__version__}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=4.0, help="corpus size in MB of UTF-8 (default 4)")
    ap.add_argument("--repeat", type=int, default=3, help="timed passes per line; the best counts (default 3)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", choices=("all", "ours", "bare"), default="all", help="time one line (for cProfile)")
    ap.add_argument("--no-full", action="store_true", help="skip the pipeline.build line")
    args = ap.parse_args(argv)

    print(f"machine: {machine()}")
    print("single process, single thread: MB/s below is per core")
    with tempfile.TemporaryDirectory(prefix="md_bench_") as tmp:
        folder = Path(tmp)
        paths = make_corpus(folder, args.mb, args.seed)
        size = sum(p.stat().st_size for p in paths)
        sizes = sorted(p.stat().st_size for p in paths)
        print(f"corpus: {len(paths)} files, {size / MB:.2f} MB, {sizes[0] // 1000}–{sizes[-1] // 1000} KB each, "
              f"seed {args.seed}")
        warm_up()
        runs: dict[str, list[Timing]] = {"ours": [], "bare": []}
        for _ in range(args.repeat):  # interleaved, so drift on a shared machine hits both lines alike
            if args.only in ("all", "ours"):
                runs["ours"].append(ours(paths))
            if args.only in ("all", "bare"):
                runs["bare"].append(bare(paths))
        got = {k: min(v, key=lambda t: t.total) for k, v in runs.items() if v}
        print(f"\nbest of {args.repeat}:")
        for name, t in got.items():
            print(line(name, t, size))
        if args.only == "all" and not args.no_full:
            print(line("ours, full", best(lambda: full(folder), args.repeat), size))
        if "ours" in got:
            report_stages(got["ours"], paths)
        if "bare" in got:
            print("bare stages: " + ", ".join(f"{k} {v:.3f} s" for k, v in got["bare"].stages.items()))
        return verdict(got, size)


def report_stages(t: Timing, paths: list[Path]) -> None:
    print("\nours, where the time goes (best pass):")
    for k, v in t.stages.items():
        print(f"  {k:<9} {v:7.3f} s  {v / t.total:5.1%}")
    sub = convert_breakdown(paths)
    print("  convert, sub-steps timed separately:")
    for k, v in sub.items():
        print(f"    {k:<18} {v:7.3f} s")
    rest = t.stages["convert"] - sum(sub.values())
    print(f"    {'normalize+records':<18} {rest:7.3f} s  (convert minus the above)")


def verdict(got: dict[str, Timing], size: int) -> int:
    if set(got) != {"ours", "bare"}:
        return 0
    mbps = size / MB / got["ours"].total
    ratio = got["ours"].total / got["bare"].total
    ok1, ok2 = mbps >= TARGET_MBPS, ratio <= TARGET_RATIO
    print(f"\nratio ours/bare: {ratio:.2f}×")
    print(f"{'PASS' if ok1 else 'FAIL'}  ours ≥ {TARGET_MBPS} MB/s per core: {mbps:.2f} MB/s")
    print(f"{'PASS' if ok2 else 'FAIL'}  ours/bare ≤ {TARGET_RATIO}×: {ratio:.2f}×")
    return 0 if ok1 and ok2 else 1


if __name__ == "__main__":
    raise SystemExit(main())
