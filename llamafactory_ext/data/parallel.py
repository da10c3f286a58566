"""The per-sample stages (convert, normalize, tag, filter, reasoning checks, dedup keys) over worker processes.

Work goes out in chunks of consecutive records and comes back in input order (a bounded window of ``apply_async``), and every stage is a
pure function of one record, so the result is the same for any worker count: ``--workers 1`` runs the very same
functions in this process. Only the dedup *decisions* and the split need the whole set; they stay in the caller.
Workers come from a forkserver and load the lexicon, jieba's dictionary and OpenCC once each.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain, islice
from pathlib import Path
from typing import NamedTuple

from ..errors import DataError
from ..records import TOOL_ROLES, Note, Sample, Skipped, Turn
from .dedup import Drop, keys
from .rows import RowSpec, prepare

CHUNK = 400  # why: ~0.1 s of work per task on Belle rows: pickling stays a few % and the bar moves often


@dataclass(frozen=True)
class Stages:
    """What the workers run (picklable settings taken from BuildOptions)."""

    t2s: str | None  # None: no normalize step (the markdown converter normalizes itself)
    terms: bool
    lexicon: Path | None
    max_chars: int
    long: str
    require_reasoning: bool
    strict_reasoning: bool
    near: bool
    finish: bool = True  # False: stop after normalize (reasoning synthesis runs in between, in the caller)
    rows: RowSpec = RowSpec()  # how kept samples are written (their rows are made here, in the workers)


class Outcome(NamedTuple):
    """One sample after the per-sample stages: kept, or dropped by ``stage`` ("filter" / "reasoning"). A sample
    that passed travels pickled (``packed``): the main process unpacks it only if dedup drops it. A NamedTuple:
    hundreds of thousands cross between processes, and tuples unpickle ~4x faster than dataclasses."""

    sample: Sample | None
    drop: Drop | None = None
    stage: str = ""
    issues: tuple = ()
    key: str = ""
    sig: bytes | None = None
    kept: tuple | None = None  # (split unit, store flags, pickled Written) of a sample that passed the checks
    packed: bytes | None = None

    def unpacked(self) -> Sample:
        import pickle

        return self.sample if self.sample is not None else pickle.loads(self.packed)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class _Error:
    """A DataError in transit: exceptions with keyword-shaped constructors do not survive pickling."""

    path: str
    line: int | None
    reason: str
    fix: str
    col: int | None

    def error(self) -> DataError:
        return DataError(self.path, self.line, self.reason, self.fix, self.col)


Result = Outcome | DataError | Skipped | Note


def default_workers() -> int:
    """The cores this process may use (a container or taskset may allow fewer than the machine has)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def run(tasks: Iterable[tuple], workers: int, summary: dict | None = None) -> Iterator[Result]:
    """Results of every task, flattened, in task order; ``workers`` > 1 forks a pool. ``summary`` (optional) gets
    per worker process ``pid → [tasks, records, busy seconds]``, for the closing line of a long build."""
    tasks = iter(tasks)
    head = list(islice(tasks, 2))
    summary = {} if summary is None else summary
    if workers <= 1 or len(head) < 2:  # why: one chunk of work is not worth starting processes for
        for task in chain(head, tasks):
            yield from _thaw(_tally(summary, _timed(task)))
        return
    import multiprocessing

    # why forkserver: workers start from a fresh single-threaded server, so a lock held by another thread of
    # this process (pytest, tqdm's monitor) at fork time cannot deadlock them; each loads jieba once.
    context = multiprocessing.get_context("forkserver")
    pending: deque = deque()
    with context.Pool(workers, initializer=_worker_signals) as pool:  # leaving the block terminates the workers
        # Tasks are made here, not in the pool's feeder thread: a reader error then raises in the caller (a
        # failing task iterable hangs Pool.imap on Python 3.11), and at most 2 tasks per worker are in flight.
        for task in chain(head, tasks):
            pending.append(pool.apply_async(_timed, (task,)))
            if len(pending) > 2 * workers:
                yield from _thaw(_tally(summary, pending.popleft().get()))
        while pending:
            yield from _thaw(_tally(summary, pending.popleft().get()))


def _timed(task: tuple) -> tuple[int, float, list]:
    import time

    start = time.perf_counter()
    results = _do(task)
    return os.getpid(), time.perf_counter() - start, results


def _tally(summary: dict, timed: tuple[int, float, list]) -> list:
    pid, seconds, results = timed
    row = summary.setdefault(pid, [0, 0, 0.0])
    row[0], row[1], row[2] = row[0] + 1, row[1] + len(results), row[2] + seconds
    return results


def summary_line(summary: dict, wall: float) -> str:
    """``workers: 2 — 160,000 records, 79,600–80,400 per worker (1% apart), busy 93% of 36 s``: how evenly and how
    fully they worked."""
    if not summary:
        return ""
    records = [r for _, r, _ in summary.values()]
    busy = sum(s for _, _, s in summary.values()) / (len(summary) * wall) if wall > 0 else 0.0
    spread = (max(records) - min(records)) / max(1, max(records))
    return (f"workers: {len(summary)} — {sum(records):,} records, {min(records):,}–{max(records):,} per worker "
            f"({spread:.0%} apart), busy {min(busy, 1.0):.0%} of {wall:.0f} s")


def _worker_signals() -> None:
    """Ctrl-C reaches the whole process group: only the parent handles it (and stops the pool)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _thaw(batch: list) -> Iterator[Result]:
    for item in batch:
        yield item.error() if isinstance(item, _Error) else item


def warm(stages: Stages, here: bool = True) -> None:
    """Check the lexicon (a bad --lexicon raises here, before any work) and, when the stages run ``here`` (one
    worker), load what they need up front: jieba's dictionary, OpenCC, numpy. Worker processes start from a
    forkserver and load these themselves, so the main process of a parallel build stays small."""
    if stages.terms and stages.finish:
        _LEXICONS.clear()  # why: the file may have changed since an earlier build in this process
        lexicon = _lexicon(stages.lexicon)
    if not here:
        return
    if stages.t2s is not None:
        from .normalize import normalize

        normalize("預熱", stages.t2s)
    if stages.terms and stages.finish:
        from .terms import tag_terms

        if lexicon.cjk_pattern is not None:
            lexicon.tokenizer.initialize()
        tag_terms("预热 AES 对称加密", lexicon)
    if stages.finish:
        keys(Sample((Turn("user", "预热"), Turn("assistant", "预热"))), stages.near)


# ---------------------------------------------------------------- tasks (run in the workers)


def belle_task(stages: Stages, source: str, media: dict, rows: Sequence[tuple[int, bytes]], first: bool) -> tuple:
    """Raw Belle lines → decode → convert → the per-sample stages. Only the first chunk checks the row kind,
    as the sequential converter checks only the file's first row."""
    return (_belle, stages, source, media, rows, first)


def items_task(stages: Stages, items: Sequence) -> tuple:
    """Converted items (samples, errors, drops, notes) → the per-sample stages."""
    return (_items, stages, [_freeze(i) for i in items])


def samples_task(stages: Stages, samples: Sequence[Sample]) -> tuple:
    """Normalized samples (e.g. after synthesis) → tag, filter, reasoning checks, dedup keys."""
    return (_samples, stages, list(samples))


def _do(task: tuple) -> list:
    return [_freeze(i) for i in task[0](*task[1:])]


def _freeze(item: object) -> object:
    return _Error(item.path, item.line, item.reason, item.fix, item.col) if isinstance(item, DataError) else item


def _belle(stages: Stages, source: str, media: dict, rows: Sequence[tuple[int, bytes]], first: bool) -> Iterator:
    from .converters.alpaca import convert_alpaca
    from .sources.belle import _decode

    def records() -> Iterator[tuple[int, dict] | DataError]:
        for number, raw in rows:
            try:
                yield number, _decode(Path(source), number, raw)
            except DataError as err:
                yield err

    yield from _items(stages, convert_alpaca(records(), source, kind="belle" if first else "", **media))


def _items(stages: Stages, items: Iterable) -> Iterator:
    for item in items:
        item = item.error() if isinstance(item, _Error) else item
        if not isinstance(item, Sample):
            yield item
            continue
        bad = unencodable(item)
        if bad is not None:
            yield bad
            continue
        sample = normalize_sample(item, stages.t2s) if stages.t2s is not None else item
        yield finish(sample, stages) if stages.finish else Outcome(sample)


def _samples(stages: Stages, samples: Iterable[Sample]) -> Iterator:
    return (finish(s, stages) for s in samples)


def finish(s: Sample, stages: Stages) -> Outcome:
    """Tag, filter, reasoning checks and dedup keys of one sample."""
    from .filters import filter_samples
    from .quality import check_reasoning

    if stages.terms:
        s = tag(s, _lexicon(stages.lexicon))
    filtered = next(filter_samples([s], max_chars=stages.max_chars, long=stages.long))  # type: ignore[arg-type]
    if isinstance(filtered, Drop):
        return Outcome(s, filtered, "filter")
    s = filtered
    issues = tuple(check_reasoning(s)) if s.has_reasoning else ()
    if stages.require_reasoning and not s.has_reasoning:
        return Outcome(s, Drop(s, "no_reasoning", "--require-reasoning"), "reasoning", issues)
    if stages.strict_reasoning and issues:
        return Outcome(s, Drop(s, "weak_reasoning", "; ".join(i.code for i in issues)), "reasoning", issues)
    import pickle

    return Outcome(None, None, "", issues, *keys(s, stages.near), prepare(s, stages.rows),
                   pickle.dumps(s, protocol=pickle.HIGHEST_PROTOCOL))


# ---------------------------------------------------------------- the per-sample steps


def unencodable(s: Sample) -> DataError | None:
    """A lone surrogate (e.g. a JSON escape \\ud800 without its pair) is not Unicode text: no tokenizer or writer
    takes it, so the record is an error at its own line."""
    try:
        s.text.encode("utf-8")
    except UnicodeEncodeError as e:
        bad = e.object[e.start]
        return DataError(s.source, s.line, f"lone surrogate \\u{ord(bad):04x} in the text (not valid Unicode)",
                         "fix the escape: a \\ud800–\\udbff must be followed by its \\udc00–\\udfff pair, or remove it")
    return None


def normalize_sample(s: Sample, t2s: str) -> Sample:
    from .normalize import normalize

    def n(text: str | None) -> str | None:
        return normalize(text, t2s) if text else text

    # tool calls and observations are JSON: punctuation normalization would change their arguments
    turns = tuple(t if t.role in TOOL_ROLES else Turn(t.role, n(t.content) or "", n(t.reasoning)) for t in s.turns)
    return s.with_(turns=turns, system=n(s.system) or "")


def tag(s: Sample, lexicon) -> Sample:
    """Domain-term categories as ``tags`` (the split stratifies on them) and the terms in ``meta``."""
    from .terms import tag_terms

    terms, categories = tag_terms(s.text, lexicon)
    return s.with_(tags=tuple(categories), meta={**s.meta, "terms": list(terms)})


_LEXICONS: dict = {}


def _lexicon(path: Path | None):
    """The lexicon, loaded once per process (its jieba tokenizer is built on first use and kept)."""
    from .terms import load_lexicon

    if path not in _LEXICONS:
        _LEXICONS[path] = load_lexicon(path)
    return _LEXICONS[path]


def chunked(items: Iterable, size: int = CHUNK) -> Iterator[list]:
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


Progress = Callable[[Iterable], Iterable]
