"""The dataset flow end to end, without writing: read → convert → normalize → tag → filter → dedup → split.

``build(options)`` returns a BuildResult (plain data); build_dataset.py formats it and hands it to io.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError
from ..records import Sample, Turn
from . import split as splitting
from .dedup import Drop, dedup
from .filters import MAX_CHARS, filter_samples

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


@dataclass
class BuildResult:
    """What a build produced, before formatting: splits, rejects, drops and per-stage counts."""

    splits: dict[str, list[Sample]]
    errors: list[DataError] = field(default_factory=list)
    drops: list[Drop] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    quality: list = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)

    @property
    def samples(self) -> list[Sample]:
        return [s for part in self.splits.values() for s in part]


def build(opts: BuildOptions, progress: Callable[[Iterable], Iterable] = lambda items: items) -> BuildResult:
    """Run every stage; data errors are collected (the caller decides fail or skip), usage errors raise.

    ``progress`` wraps the stream of converted records (the CLI passes a tqdm bar that shows after 2 s)."""
    result = BuildResult(splits={})
    converted = _separate(progress(read_and_convert(opts, result.files, result.warnings)), result)
    result.counts["read"] = len(converted) + len(result.errors)
    result.counts["converted"] = len(converted)
    samples = [_normalize(s, opts.t2s) for s in converted] if opts.source != "markdown" else converted
    if opts.terms:
        samples = tag_samples(samples, opts.lexicon)
    samples = _stage(filter_samples(samples, max_chars=opts.max_chars, long=opts.long), result, "filtered")  # type: ignore[arg-type]
    samples = _reasoning_stage(samples, opts, result)
    samples = _stage(dedup(samples, near=opts.near_dedup), result, "deduplicated")
    result.splits = splitting.split(samples, opts.ratios, opts.seed)
    warning = splitting.small_data_warning(result.splits)
    if warning:
        result.warnings.append(warning)
    return result


def read_and_convert(opts: BuildOptions, files: list[Path], warnings: list[str]) -> Iterator[Sample | DataError]:
    """Samples and per-record errors from every input, in input order; unreadable files become errors."""
    from ..data.sources.files import find_files

    if opts.source == "belle" and _is_hub_id(opts.inputs):
        yield from _belle_hub(str(opts.inputs[0]), opts)
        return
    suffixes = MD_SUFFIXES if opts.source == "markdown" else JSON_SUFFIXES
    for path in find_files(list(opts.inputs), suffixes):
        files.append(path)
        try:
            yield from _convert_file(path, opts, warnings)
        except DataError as err:
            yield err


def _is_hub_id(inputs: tuple[Path, ...]) -> bool:
    """One input that is not a local path but looks like ``Org/Name`` (e.g. BelleGroup/train_0.5M_CN)."""
    text = str(inputs[0]) if len(inputs) == 1 else ""
    return bool(HUB_ID.fullmatch(text)) and not Path(text).exists()


def _belle_hub(name: str, opts: BuildOptions) -> Iterator[Sample | DataError]:
    from .converters.alpaca import convert_alpaca
    from .sources.belle import load_hub

    yield from convert_alpaca(load_hub(name, opts.sample, opts.seed), f"hf://{name}")


def _convert_file(path: Path, opts: BuildOptions, warnings: list[str]) -> Iterator[Sample | DataError]:
    from .converters.alpaca import convert_alpaca
    from .converters.chat import OPENAI, SHAREGPT, convert_chat
    from .sources.files import iter_json_records, read_text

    if opts.source == "markdown":
        from .converters.markdown import convert_markdown

        yield from convert_markdown(read_text(path), source=str(path), t2s=opts.t2s)
    elif opts.source == "belle":
        from .sources.belle import sample_records

        records = sample_records(path, opts.sample, opts.seed)
        if len(records) < opts.sample:
            warnings.append(f"{path}: only {len(records)} rows, fewer than --sample {opts.sample}: all were used")
        yield from convert_alpaca(records, str(path))
    elif opts.source == "alpaca":
        yield from convert_alpaca(iter_json_records(path), str(path))
    else:
        dialect = SHAREGPT if opts.source == "sharegpt" else OPENAI
        yield from convert_chat(iter_json_records(path), str(path), dialect)


def _separate(items: Iterable[Sample | DataError], result: BuildResult) -> list[Sample]:
    kept = []
    for item in items:
        (result.errors if isinstance(item, DataError) else kept).append(item)  # type: ignore[arg-type]
    return kept


def _stage(items: Iterable[Sample | Drop], result: BuildResult, name: str) -> list[Sample]:
    kept = []
    for item in items:
        (result.drops if isinstance(item, Drop) else kept).append(item)  # type: ignore[arg-type]
    result.counts[name] = len(kept)
    return kept


def _normalize(s: Sample, t2s: str) -> Sample:
    from .normalize import normalize

    def n(text: str | None) -> str | None:
        return normalize(text, t2s) if text else text

    turns = tuple(Turn(t.role, n(t.content) or "", n(t.reasoning)) for t in s.turns)
    return s.with_(turns=turns, system=n(s.system) or "")


def tag_samples(samples: list[Sample], lexicon: Path | None) -> list[Sample]:
    """Attach domain-term categories as ``tags`` (the split stratifies on them) and the terms in ``meta``."""
    from .terms import load_lexicon, tag_terms

    lex = load_lexicon(lexicon)
    out = []
    for s in samples:
        terms, categories = tag_terms(s.text, lex)
        out.append(s.with_(tags=tuple(categories), meta={**s.meta, "terms": list(terms)}))
    return out


def _reasoning_stage(samples: list[Sample], opts: BuildOptions, result: BuildResult) -> list[Sample]:
    from .quality import check_reasoning

    kept = []
    for s in samples:
        issues = check_reasoning(s) if s.has_reasoning else []
        result.quality.extend(issues)
        if opts.require_reasoning and not s.has_reasoning:
            result.drops.append(Drop(s, "no_reasoning", "--require-reasoning"))
        elif opts.strict_reasoning and issues:
            result.drops.append(Drop(s, "weak_reasoning", "; ".join(i.code for i in issues)))
        else:
            kept.append(s)
    result.counts["reasoning_checked"] = len(kept)
    return kept


def drop_counts(drops: Iterable[Drop]) -> dict[str, int]:
    return dict(Counter(d.reason for d in drops).most_common())
