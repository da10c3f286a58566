"""The dataset flow end to end, without writing: read → convert → normalize → tag → filter → dedup → split.

``build(options)`` returns a BuildResult (plain data); build_dataset.py formats it and hands it to io.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..errors import DataError
from ..records import Note, Sample, Skipped
from . import parallel
from . import split as splitting
from .dedup import Deduper, Drop
from .filters import MAX_CHARS
from .rows import RowSpec
from .store import Store

SOURCES = ("alpaca", "sharegpt", "openai", "belle", "markdown")
JSON_SUFFIXES = (".json", ".jsonl")
MD_SUFFIXES = (".md", ".markdown")
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


@dataclass(frozen=True)
class BuildOptions:
    """Everything that decides the output; recorded in the manifest."""

    source: str
    inputs: tuple[Path, ...]
    name: str
    ratios: tuple[float, float, float] = splitting.DEFAULT_RATIOS
    seed: int = 0
    t2s: str = "t2s"
    sample: int = 2000  # why: Belle's usual slice for a LoRA run; 500k rows would take hours per epoch on one GPU
    max_chars: int = MAX_CHARS
    long: str = "drop"
    near_dedup: bool = True
    terms: bool = True
    lexicon: Path | None = None
    strict_reasoning: bool = False
    require_reasoning: bool = False
    strict: bool = False  # markdown: a question without an answer is an error, not a counted drop
    exclude: tuple[Path, ...] = ()  # folders never read as input (the output folder)
    allow_media: bool = True  # False for a text-only --model: media rows are refused with their line
    media_root: Path | None = None  # where relative media paths start (default: each data file's folder)
    # samples → (samples, summary): reasoning written by an endpoint for samples without it (endpoint/synthesis.py)
    synthesize: Callable[[list[Sample]], tuple[list[Sample], dict]] | None = None
    workers: int = 1  # processes for the per-sample stages; the output is the same for any number
    engine: str = "local"  # local: data/parallel.py's pool; datatrove: data/engine.py (its executors)
    engine_dir: Path | None = None  # datatrove: where its tasks, logs and results go (shared storage on a cluster)
    engine_executor: str | None = None  # datatrove: local / slurm / ray (None: $LLAMAFACTORY_EXT_EXECUTOR or local)
    engine_options: tuple[tuple[str, object], ...] = ()  # datatrove: its executor's keyword arguments
    rows: RowSpec = RowSpec()  # how rows are written: made in the workers, streamed to the files afterwards


@dataclass
class BuildResult:
    """What a build produced, before writing: the kept samples (in a Store), their split, rejects, drops, counts."""

    store: Store | None = None
    parts: dict[str, list[int]] = field(default_factory=dict)  # split → store indices, in file order
    errors: list[DataError] = field(default_factory=list)
    drops: list[Drop] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    quality: list = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    synthesis: dict = field(default_factory=dict)  # the reasoning-synthesis summary, when it ran
    workers: dict = field(default_factory=dict)  # per worker process: [tasks, records, busy seconds]
    seconds: dict[str, float] = field(default_factory=dict)  # wall time of the long stages

    @property
    def kept(self) -> int:
        return len(self.store) if self.store is not None else 0


@contextmanager
def build(opts: BuildOptions, progress: Callable[[Iterable], Iterable] = lambda items: items) -> Iterator[BuildResult]:
    """Run every stage; data errors are collected (the caller decides fail or skip), usage errors raise.

    The per-sample stages run in ``opts.workers`` processes (data/parallel.py); the result does not depend on
    that number. Kept samples go to a Store in a temporary folder, removed when the block ends. ``progress`` wraps
    the stream of processed records (the CLI passes a tqdm bar shown after 2 s)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="lfx-build-") as tmp:
        result = BuildResult(store=Store(Path(tmp)))
        try:
            _build(opts, progress, result)
            yield result
        finally:
            result.store.close()  # type: ignore[union-attr]


def _build(opts: BuildOptions, progress: Callable[[Iterable], Iterable], result: BuildResult) -> None:
    stages = _stages(opts)
    here = opts.workers <= 1 and opts.engine == "local"
    parallel.warm(stages, here)  # a bad --lexicon raises here, before any work
    decider = _Decider(opts, result)
    converted = 0
    kept: list[Sample] = []
    start, bars = time.perf_counter(), []
    tasks = _tasks(opts, stages, result, expect=lambda n: _expect(bars, n))
    bars.append(progress(_runner(opts, result)(tasks, opts.workers)))
    for item in bars[0]:
        if isinstance(item, parallel.Outcome):
            converted += 1
            kept.append(item.sample) if opts.synthesize is not None else decider.add(item)
        else:
            _sort_item(item, result)
    result.counts = {"read": converted + len(result.errors), "converted": converted}
    result.seconds["records"] = time.perf_counter() - start
    if opts.synthesize is not None:  # before the checks, dedup and split: they must see the final text
        kept, result.synthesis = opts.synthesize(kept)
        if stages.t2s is not None:  # the teacher's reasoning gets the same normalization as the rest of the data
            kept = [parallel.normalize_sample(s, stages.t2s) if "reasoning_synth" in s.meta else s for s in kept]
        stages = replace(stages, finish=True)
        parallel.warm(stages, here)
        tasks = (parallel.samples_task(stages, chunk) for chunk in parallel.chunked(kept))
        for item in progress(parallel.run(tasks, opts.workers)):
            decider.add(item)  # type: ignore[arg-type]
    decider.close()
    start = time.perf_counter()
    result.parts = splitting.assign(result.store.units(), opts.ratios, opts.seed)  # type: ignore[union-attr]
    result.seconds["split"] = time.perf_counter() - start
    warning = splitting.small_data_warning(result.parts)
    if warning:
        result.warnings.append(warning)


def _expect(bars: list, n: int) -> None:
    """A reader knows how many records are coming: the progress bar (if any) gets a total, hence an ETA."""
    for bar in bars:
        if hasattr(bar, "total"):
            bar.total = (bar.total or 0) + n  # shown from its next update (no refresh: it keeps its 2 s delay)


def _runner(opts: BuildOptions, result: BuildResult) -> Callable[[Iterable[tuple], int], Iterator[parallel.Result]]:
    """What runs the per-sample tasks: this machine's pool, or an existing distributed engine (same results)."""
    if opts.engine == "local":
        return lambda tasks, workers: parallel.run(tasks, workers, result.workers)
    from . import engine

    return lambda tasks, workers: engine.run(tasks, workers, opts.engine_dir, opts.engine_executor,
                                             **dict(opts.engine_options))


def _stages(opts: BuildOptions) -> parallel.Stages:
    return parallel.Stages(
        t2s=None if opts.source == "markdown" else opts.t2s, terms=opts.terms, lexicon=opts.lexicon,
        max_chars=opts.max_chars, long=opts.long, require_reasoning=opts.require_reasoning,
        strict_reasoning=opts.strict_reasoning, near=opts.near_dedup, finish=opts.synthesize is None, rows=opts.rows)


def _tasks(opts: BuildOptions, stages: parallel.Stages, result: BuildResult,
           expect: Callable[[int], None] = lambda n: None) -> Iterator[tuple]:
    """Work for the pool in input order: raw Belle lines (decoded in the workers), else converted items."""
    if opts.source == "belle" and not _is_hub_id(opts.inputs):
        yield from _belle_tasks(opts, stages, result, expect)
        return
    items = read_and_convert(opts, result.files, result.warnings, result.skipped)
    yield from (parallel.items_task(stages, chunk) for chunk in parallel.chunked(items))


def _belle_tasks(opts: BuildOptions, stages: parallel.Stages, result: BuildResult,
                 expect: Callable[[int], None]) -> Iterator[tuple]:
    from .sources.belle import stream_raw
    from .sources.files import find_files

    for path in find_files(list(opts.inputs), JSON_SUFFIXES, exclude=opts.exclude, skipped=result.skipped):
        result.files.append(path)
        try:
            count, rows = stream_raw(path, opts.sample, opts.seed)  # streamed: a 0.5M-row file is never held
        except DataError as err:
            yield parallel.items_task(stages, [err])
            continue
        expect(count)
        if count < opts.sample:
            result.warnings.append(f"{path}: only {count} rows, fewer than --sample {opts.sample}: all were used")
        for i, chunk in enumerate(parallel.chunked(rows)):
            yield parallel.belle_task(stages, str(path), _media(opts), chunk, first=i == 0)


class _Decider:
    """The order-dependent decisions, fed one Outcome at a time in input order: stage counts, drops, dedup; kept
    samples go to the result's Store."""

    def __init__(self, opts: BuildOptions, result: BuildResult):
        self.result, self.deduper = result, Deduper(spill=result.store.folder)  # type: ignore[union-attr]
        self.drops: dict[str, list[Drop]] = {"filter": [], "reasoning": [], "dedup": []}
        self.filtered = self.checked = 0

    def add(self, o: parallel.Outcome) -> None:
        if o.stage == "filter":
            self.drops["filter"].append(o.drop)  # type: ignore[arg-type]
            return
        self.filtered += 1
        self.result.quality.extend(o.issues)
        if o.stage == "reasoning":
            self.drops["reasoning"].append(o.drop)  # type: ignore[arg-type]
            return
        self.checked += 1
        unit = o.kept[0]  # type: ignore[index]
        verdict = self.deduper.check(unit.order[:2], o.key, o.sig)
        if verdict is None:
            self.result.store.add(*o.kept)  # type: ignore[union-attr,misc]
        else:
            self.drops["dedup"].append(Drop(o.unpacked(), *verdict))

    def close(self) -> None:
        """Drops in stage order (filters, reasoning, dedup) as the sequential stages wrote them; the counts."""
        r = self.result
        r.drops += [d for stage in self.drops.values() for d in stage]
        r.counts |= {"filtered": self.filtered, "reasoning_checked": self.checked, "deduplicated": r.kept}
        self.deduper = None  # type: ignore[assignment]  # why: its hash index is not needed by the split


Item = Sample | DataError | Skipped | Note


def read_and_convert(opts: BuildOptions, files: list[Path], warnings: list[str],
                     skipped: list[Skipped] | None = None) -> Iterator[Item]:
    """Samples, per-record errors, drops and notes from every input, in input order; unreadable files become
    errors, and files that are not regular (FIFOs, sockets, devices) are skipped unopened."""
    from ..data.sources.files import find_files

    if opts.source == "belle" and _is_hub_id(opts.inputs):
        yield from _belle_hub(str(opts.inputs[0]), opts)
        return
    suffixes = MD_SUFFIXES if opts.source == "markdown" else JSON_SUFFIXES
    found = find_files(list(opts.inputs), suffixes, exclude=opts.exclude, skipped=skipped)
    for path in found:
        files.append(path)
        try:
            yield from _convert_file(path, opts, warnings)
        except DataError as err:
            yield err
        except RecursionError:
            yield DataError(path, None, "nested too deeply to read (over ~1000 levels)",
                            "flatten the deeply nested records (training rows need only a few levels)")


def _is_hub_id(inputs: tuple[Path, ...]) -> bool:
    """One input that is not a local path but looks like ``Org/Name`` (e.g. BelleGroup/train_0.5M_CN)."""
    text = str(inputs[0]) if len(inputs) == 1 else ""
    return bool(HUB_ID.fullmatch(text)) and not Path(text).exists()


def _belle_hub(name: str, opts: BuildOptions) -> Iterator[Sample | DataError]:
    from .converters.alpaca import convert_alpaca
    from .sources.belle import load_hub

    yield from convert_alpaca(load_hub(name, opts.sample, opts.seed), f"hf://{name}", kind="belle", **_media(opts))


def _convert_file(path: Path, opts: BuildOptions, warnings: list[str]) -> Iterator[Sample | DataError]:
    from .converters.alpaca import convert_alpaca
    from .converters.chat import OPENAI, SHAREGPT, convert_chat
    from .sources.files import iter_json_records, read_text

    if opts.source == "markdown":
        from .converters.markdown import convert_markdown

        extra = {"strict": opts.strict} if _accepts(convert_markdown, "strict") else {}
        text = read_text(path)
        yield from _with_excerpts(convert_markdown(text, source=str(path), t2s=opts.t2s, **extra), text)
    elif opts.source == "belle":
        from .sources.belle import sample_records

        records = sample_records(path, opts.sample, opts.seed)
        if len(records) < opts.sample:
            warnings.append(f"{path}: only {len(records)} rows, fewer than --sample {opts.sample}: all were used")
        yield from convert_alpaca(records, str(path), kind="belle", **_media(opts))
    elif opts.source == "alpaca":
        yield from convert_alpaca(iter_json_records(path), str(path), **_media(opts))
    else:
        dialect = SHAREGPT if opts.source == "sharegpt" else OPENAI
        yield from convert_chat(iter_json_records(path), str(path), dialect, **_media(opts))


def _media(opts: BuildOptions) -> dict:
    return {"allow_media": opts.allow_media, "media_root": opts.media_root}


def _with_excerpts(items: Iterable[Item], text: str) -> Iterator[Item]:
    """A drop without an excerpt gets its source line, so NAME.drops.jsonl always shows what was dropped."""
    lines = text.split("\n")
    for item in items:
        if isinstance(item, Skipped) and not item.excerpt and 1 <= item.line <= len(lines):
            item = replace(item, excerpt=lines[item.line - 1].strip())
        yield item


def _accepts(func: Callable, name: str) -> bool:
    import inspect

    return name in inspect.signature(func).parameters


def _sort_item(item: object, result: BuildResult) -> None:
    """Errors, deliberate drops and notices from the converters, collected in input order."""
    if isinstance(item, Skipped):
        result.skipped.append(item)
    elif isinstance(item, Note):
        result.notes.append(item)
    else:
        result.errors.append(item)  # type: ignore[arg-type]


def tag_samples(samples: list[Sample], lexicon: Path | None) -> list[Sample]:
    """Attach domain-term categories as ``tags`` (the split stratifies on them) and the terms in ``meta``."""
    from .terms import load_lexicon

    lex = load_lexicon(lexicon)
    return [parallel.tag(s, lex) for s in samples]


def drop_counts(drops: Iterable[Drop]) -> dict[str, int]:
    return dict(Counter(d.reason for d in drops).most_common())
