"""The dataset flow end to end, without writing: read → convert → normalize → tag → filter → dedup → split.

``build(options)`` returns a BuildResult (plain data); build_dataset.py formats it and hands it to io.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..errors import DataError
from ..records import TOOL_ROLES, Note, Sample, Skipped, Turn
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
    strict: bool = False  # markdown: a question without an answer is an error, not a counted drop
    exclude: tuple[Path, ...] = ()  # folders never read as input (the output folder)
    allow_media: bool = True  # False for a text-only --model: media rows are refused with their line
    media_root: Path | None = None  # where relative media paths start (default: each data file's folder)
    # samples → (samples, summary): reasoning written by an endpoint for samples without it (endpoint/synthesis.py)
    synthesize: Callable[[list[Sample]], tuple[list[Sample], dict]] | None = None


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
    skipped: list[Skipped] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    synthesis: dict = field(default_factory=dict)  # the reasoning-synthesis summary, when it ran

    @property
    def samples(self) -> list[Sample]:
        return [s for part in self.splits.values() for s in part]


def build(opts: BuildOptions, progress: Callable[[Iterable], Iterable] = lambda items: items) -> BuildResult:
    """Run every stage; data errors are collected (the caller decides fail or skip), usage errors raise.

    ``progress`` wraps the stream of converted records (the CLI passes a tqdm bar that shows after 2 s)."""
    result = BuildResult(splits={})
    converted = _separate(progress(read_and_convert(opts, result.files, result.warnings, result.skipped)), result)
    result.counts["read"] = len(converted) + len(result.errors)
    result.counts["converted"] = len(converted)
    samples = [_normalize(s, opts.t2s) for s in converted] if opts.source != "markdown" else converted
    if opts.synthesize is not None:  # before the checks, dedup and split: they must see the final text
        samples, result.synthesis = opts.synthesize(samples)
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


def _separate(items: Iterable[Item], result: BuildResult) -> list[Sample]:
    """Sort the converters' stream: samples kept, errors, deliberate drops and notices collected."""
    kept = []
    for item in items:
        if isinstance(item, Sample):
            bad = _unencodable(item)
            (result.errors if bad else kept).append(bad or item)  # type: ignore[arg-type]
        elif isinstance(item, Skipped):
            result.skipped.append(item)
        elif isinstance(item, Note):
            result.notes.append(item)
        else:
            result.errors.append(item)
    return kept


def _unencodable(s: Sample) -> DataError | None:
    """A lone surrogate (e.g. a JSON escape \\ud800 without its pair) is not Unicode text: no tokenizer or writer
    takes it, so the record is an error at its own line."""
    try:
        s.text.encode("utf-8")
    except UnicodeEncodeError as e:
        bad = e.object[e.start]
        return DataError(s.source, s.line, f"lone surrogate \\u{ord(bad):04x} in the text (not valid Unicode)",
                         "fix the escape: a \\ud800–\\udbff must be followed by its \\udc00–\\udfff pair, or remove it")
    return None


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

    # tool calls and observations are JSON: punctuation normalization would change their arguments
    turns = tuple(t if t.role in TOOL_ROLES else Turn(t.role, n(t.content) or "", n(t.reasoning)) for t in s.turns)
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
