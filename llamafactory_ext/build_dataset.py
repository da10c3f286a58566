"""Turn your data into a LLaMA-Factory dataset folder (data files + dataset_info.json).

Usage:
    python -m llamafactory_ext.build_dataset markdown examples/crypto_notes --name crypto
    python -m llamafactory_ext.build_dataset alpaca my.jsonl --name mine --format alpaca
    python -m llamafactory_ext.build_dataset openai chats.jsonl --name chats --on-error skip
    python -m llamafactory_ext.build_dataset belle Belle_open_source_0.5M.json --name belle --sample 2000

Writes <out>/<name>_{train,val,test}.jsonl, their dataset_info.json entries (merged), <name>.manifest.json,
<name>.report.md, <name>.drops.jsonl (every dropped item, located) and <name>.provenance.jsonl (each sample's
split, source file:line, kind and terms). Exit 0 on success, 1 on data errors (printed as file:line: reason — fix),
2 on usage errors, 130/143 when interrupted (nothing changed), 70 on an internal error (traceback in a log file).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import DataError, UsageError, exit_code

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
MAX_PRINTED_ERRORS = 50  # why: enough to see the pattern; the rest is in the count and the rejects file
MAX_PRINTED_DROPS = 20  # why: a screenful; every drop is in NAME.drops.jsonl
MAX_LISTED_PATHS = 3  # why: a build over 500 notes must not print 500 paths in one message
SLOW_BUILD = 5.0  # seconds; why: below that the stage timings are noise, not something to act on


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    from .data.formats import FORMATS
    from .data.normalize import T2S_MODES
    from .data.pipeline import SOURCES
    from .endpoint.cli_synth import add_args as add_synthesis_args

    p = argparse.ArgumentParser(prog="python -m llamafactory_ext.build_dataset",
                                description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", choices=SOURCES, help="input kind")
    p.add_argument("inputs", nargs="+", type=Path,
                   help="files or folders (searched recursively); belle also takes the hub id BelleGroup/train_0.5M_CN")
    p.add_argument("--name", required=True, help="dataset name: entries become NAME_train / NAME_val / NAME_test")
    p.add_argument("--out", type=Path, default=Path("dataset_info"), help="output folder (default: dataset_info)")
    p.add_argument("--split", default="70/15/15", help="train/val/test ratios (default 70/15/15)")
    p.add_argument("--seed", type=int, default=0, help="seed for sampling and the split (default 0)")
    p.add_argument("--sample", type=int, default=2000, help="belle: rows to sample (default 2000)")
    p.add_argument("--t2s", choices=T2S_MODES, default="t2s", help="traditional→simplified mode (default t2s)")
    p.add_argument("--on-error", choices=("fail", "skip"), default="fail",
                   help="fail: write nothing on data errors; skip: drop bad records and write NAME.rejects.jsonl")
    p.add_argument("--format", choices=FORMATS, default="sharegpt", help="row format (default sharegpt, role/content)")
    p.add_argument("--model", help="model preset (e.g. qwen3-4b-thinking): derives --template-mode and reasoning checks")
    p.add_argument("--template-mode", choices=("reasoning", "plain"),
                   help="reasoning: <think> blocks for qwen3-style templates; plain: see --plain-reasoning")
    p.add_argument("--plain-reasoning", choices=("drop", "text"), default="drop",
                   help="plain mode: drop the reasoning or keep it as visible text (default drop)")
    p.add_argument("--lexicon", type=Path, help="extra domain terms (TSV: term, aliases, category)")
    p.add_argument("--media-dir", type=Path,
                   help="where relative images/videos/audios paths start (default: each data file's folder)")
    p.add_argument("--no-terms", action="store_true", help="skip domain-term tagging")
    p.add_argument("--no-near-dedup", action="store_true", help="keep near-duplicates (exact ones are still removed)")
    p.add_argument("--max-chars", type=int, default=None, help="samples longer than this are dropped or flagged")
    p.add_argument("--long", choices=("drop", "flag"), default="drop", help="what to do with over-long samples")
    p.add_argument("--strict-reasoning", action="store_true", help="drop samples whose reasoning fails the checks")
    p.add_argument("--require-reasoning", action="store_true", help="drop samples without reasoning")
    add_synthesis_args(p)
    p.add_argument("--workers", type=int, default=None,
                   help="processes for convert/normalize/tag/filter (default: every core this process may use); "
                        "the output is the same for any number")
    p.add_argument("--engine", choices=("local", "datatrove"), default="local",
                   help="local: this machine's cores; datatrove: the same stages as datatrove pipeline steps "
                        "(its local executor here; see --engine-dir)")
    p.add_argument("--engine-dir", type=Path, default=None,
                   help="datatrove: folder for its tasks, logs and results (default: a temporary folder; on a "
                        "cluster: storage every node sees)")
    p.add_argument("--engine-executor", choices=("local", "slurm", "ray"), default=None,
                   help="datatrove: which of its executors runs the tasks (default: $LLAMAFACTORY_EXT_EXECUTOR or "
                        "local); slurm and ray are not tested in this release")
    p.add_argument("--engine-option", action="append", default=[], metavar="KEY=VALUE",
                   help="datatrove: an argument of its executor, e.g. partition=cpu time=02:00:00 (repeatable)")
    p.add_argument("--strict", action="store_true",
                   help="markdown: a question without an answer is an error (default: a counted, located drop)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing entry or data file of this name")
    p.add_argument("--quiet", action="store_true", help="print only errors and the final line")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    from .errors import Interrupted, signals_as_exceptions

    with signals_as_exceptions():  # from the first moment: Ctrl-C while parsing is one line too
        try:
            args = parse_args(argv)
        except SystemExit as exc:  # argparse: --help is 0, bad usage is 2
            return int(exc.code or 0)
        except Interrupted as exc:
            print("interrupted — nothing was changed", file=sys.stderr)
            return exc.exit_code
        args.argv = [str(a) for a in (sys.argv[1:] if argv is None else argv)]  # for the manifest
        return exit_code(lambda: run(args), debug=args.debug, write_target=args.out)


def run(args: argparse.Namespace) -> int:
    from .data.pipeline import build

    opts, mode, preset = _options(args)
    with build(opts, progress=_progress(args)) as result:
        return _finish(args, opts, mode, preset, result)


def _finish(args, opts, mode, preset, result) -> int:
    if not args.quiet:
        _print_drops(args, result, writes=bool(result.kept) and not (result.errors and args.on_error == "fail"))
    if result.errors and args.on_error == "fail":
        _print_errors(result.errors)
        print(f"{len(result.errors)} data error(s); nothing was written (fix them, or pass --on-error skip)",
              file=sys.stderr)
        return 1
    _gate(result, preset)
    if not result.kept:
        from .data.pipeline import drop_counts

        _print_errors(result.errors)
        dropped = drop_counts(result.drops) | _skip_counts(result.skipped)
        raise DataError(summarize_paths(opts.inputs), None,
                        f"no sample left to write ({len(result.errors)} rejected, dropped {dropped})",
                        "fix the errors above or relax the filters; nothing was written")
    output = _write(args, opts, result, mode)
    _summary(args, result, output)
    return 0


def summarize_paths(paths: Sequence[object]) -> str:
    """``a, b, c and 497 more``: long lists of inputs stay one line."""
    shown = ", ".join(str(p) for p in list(paths)[:MAX_LISTED_PATHS])
    more = len(paths) - MAX_LISTED_PATHS
    return shown + (f" and {more} more" if more > 0 else "")


def _skip_counts(skipped) -> dict[str, int]:
    from collections import Counter

    return dict(Counter(k.reason for k in skipped).most_common())


def _progress(args: argparse.Namespace):
    """A progress bar on stderr for inputs that take more than a couple of seconds (none with --quiet)."""
    from tqdm import tqdm

    workers = _workers(args)
    desc = f"{args.source} records" + (f" ({workers} workers)" if workers > 1 else "")
    return lambda items: tqdm(items, desc=desc, unit=" rec", delay=2, disable=args.quiet, leave=False)


def _bar(args: argparse.Namespace, desc: str, total: int):
    """A later stage's bar, with the whole count as its total (so it shows an ETA); none with --quiet."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit=" row", delay=2, disable=args.quiet, leave=False)

    def wrap(items):
        for item in items:
            yield item
            bar.update()
        if bar.n >= total:
            bar.close()

    return wrap


def _options(args: argparse.Namespace):
    from .data.filters import MAX_CHARS
    from .data.pipeline import BuildOptions
    from .data.rows import RowSpec
    from .data.split import parse_ratios
    from .endpoint.cli_synth import synthesizer

    if not NAME_RE.fullmatch(args.name) or ".." in args.name:
        raise UsageError(f"--name {args.name!r}: it names files inside --out and dataset_info.json keys — "
                         "use letters, digits, '_', '-', '.' only (no '/', no '..', not starting with '.')")
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers {args.workers}: must be at least 1 — pass 1 for one process, or leave it out "
                         "to use every core")
    if args.sample < 1:
        raise UsageError(f"--sample {args.sample}: must be at least 1 — pass how many Belle rows to use, e.g. 2000")
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out}: exists and is not a folder — pass a folder (it is created if missing)")
    if any(c in str(args.out) for c in "\n\r\0"):
        raise UsageError(f"--out {str(args.out)!r}: holds a control character — choose a plain folder name")
    preset = None
    if args.model:
        from .recipe.models import get_preset

        preset = get_preset(args.model)
    template_mode = args.template_mode or ("plain" if preset and preset.reasoning == "none" else "reasoning")
    mode = "think" if template_mode == "reasoning" else args.plain_reasoning
    opts = BuildOptions(
        source=args.source, inputs=tuple(args.inputs), name=args.name, ratios=parse_ratios(args.split),
        seed=args.seed, t2s=args.t2s, sample=args.sample, max_chars=MAX_CHARS if args.max_chars is None else args.max_chars, long=args.long,
        near_dedup=not args.no_near_dedup, terms=not args.no_terms, lexicon=args.lexicon,
        strict_reasoning=args.strict_reasoning, require_reasoning=args.require_reasoning,
        strict=args.strict, exclude=(args.out,), allow_media=not preset or preset.multimodal,
        media_root=args.media_dir, synthesize=synthesizer(args, args.quiet), workers=_workers(args),
        engine=args.engine, engine_dir=args.engine_dir, engine_executor=args.engine_executor,
        engine_options=_engine_options(args.engine_option),
        rows=RowSpec(fmt=args.format, mode=mode, out_dir=str(args.out), model=args.model),
    )
    return opts, mode, preset


def _engine_options(pairs: list[str]) -> tuple[tuple[str, object], ...]:
    out = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise UsageError(f"--engine-option {pair!r}: expected KEY=VALUE with KEY an argument name of datatrove's "
                             "executor, e.g. partition=cpu")
        out.append((key, int(value) if value.isdigit() else value))
    return tuple(out)


def _workers(args: argparse.Namespace) -> int:
    from .data.parallel import default_workers

    return args.workers or default_workers()


def _gate(result, preset) -> None:
    """Refuse data that would teach a thinking-only model to skip thinking."""
    if preset is None or preset.reasoning != "thinking_only":
        return
    from .data.quality import gate_thinking_only

    gate = gate_thinking_only(result.store.reasoning())
    if not gate.ok:  # a data problem for this model: exit 1, nothing written
        raise DataError(summarize_paths(result.files) or "input", None, f"{preset.key}: {gate.message}")


def _print_errors(errors: Sequence[DataError]) -> None:
    for err in errors[:MAX_PRINTED_ERRORS]:
        print(err.render(), file=sys.stderr)
    if len(errors) > MAX_PRINTED_ERRORS:
        print(f"… and {len(errors) - MAX_PRINTED_ERRORS} more", file=sys.stderr)


def _write(args, opts, result, mode):
    """Stream the splits to files (data/store.py), then write them with the side files as one transaction."""
    import time

    from .data.split import SPLITS
    from .data.store import write
    from .transaction import write_dataset

    start = time.perf_counter()
    output = write(result.store, result.parts, args.name, args.format, _counter(args).name,
                   progress=_bar(args, "writing rows", len(result.store)))
    result.seconds["write"] = time.perf_counter() - start
    side = _side_files(args, opts, result, mode, output)
    stale = [f"{args.name}_{k}" for k in SPLITS if k not in output.written]  # an earlier build's, if --overwrite
    write_dataset(args.out, output.files, output.entries, overwrite=args.overwrite, side_files=side, stale=stale,
                  name=args.name, notify=lambda line: print(line, file=sys.stderr))
    return output


def _side_files(args, opts, result, mode, output) -> dict:
    """Report, drops, provenance, rejects (with --on-error skip, or to replace an old one) and the manifest."""
    from . import io
    from .data.manifest import manifest_text
    from .data.quality import summarize
    from .data.report import drop_rows, render_report

    report = render_report(args.name, result.counts, result.drops, output.stats, summarize(result.quality),
                           result.warnings, result.skipped, output.leaks, result.notes)
    side = {f"{args.name}.report.md": report,
            f"{args.name}.drops.jsonl": io.jsonl_text(drop_rows(result.skipped, result.drops)),
            f"{args.name}.provenance.jsonl": output.provenance}
    rejects = args.out / f"{args.name}.rejects.jsonl"
    if args.on_error == "skip" or rejects.exists():  # an old rejects file must not outlive the run it describes
        side[rejects.name] = io.jsonl_text(e.as_dict() for e in result.errors)
    side[f"{args.name}.manifest.json"] = manifest_text(args, opts, result, output.stats, {**output.files, **side},
                                                       mode, output.leaks)
    return side


def _counter(args):
    """The model's token counter when --model names one (exact for the Qwen family offline), else the estimator."""
    from .tokens import counter_for, estimator

    return counter_for(args.model) if args.model else estimator()


def _print_drops(args, result, writes: bool) -> None:
    """Notes once per code; the first drops (converter skips first), then where the rest are."""
    from .data.report import drop_rows, note_summary

    for line in note_summary(result.notes):
        print(f"note: {line}", file=sys.stderr)
    rows = drop_rows(result.skipped, result.drops)
    for r in rows[:MAX_PRINTED_DROPS]:
        if r["kind"] in ("file", "folder"):  # a path the reader could not or must not use
            print(f"skipped {r['file']}: {r['excerpt']}", file=sys.stderr)
            continue
        detail = f" ({r['detail']})" if r["detail"] else ""
        where = f"{r['file']}:{r['line']}" if r["line"] else r["file"]
        print(f"dropped {where} ({r['kind']}): {r['reason']}{detail}" + (f": {r['excerpt'][:60]}" if r["excerpt"] else ""),
              file=sys.stderr)
    if len(rows) > MAX_PRINTED_DROPS:
        where = args.out / (args.name + ".drops.jsonl") if writes else "the drops file once the build succeeds"
        print(f"… {len(rows) - MAX_PRINTED_DROPS} more in {where}", file=sys.stderr)


def _summary(args, result, output) -> None:
    from .data.pipeline import drop_counts

    if not args.quiet and sum(result.seconds.values()) > SLOW_BUILD:
        print(_timing_line(result), file=sys.stderr)
    if not args.quiet:
        for w in result.warnings:
            print(f"warning: {w}", file=sys.stderr)
        for q in result.quality[:20]:
            print(f"warning: {q.sample_origin}: reasoning {q.code}: {q.message}", file=sys.stderr)
        if len(result.quality) > 20:
            print(f"… {len(result.quality) - 20} more reasoning warnings: see the report", file=sys.stderr)
        if result.errors:
            _print_errors(result.errors)
            print(f"skipped {len(result.errors)} bad record(s): see {args.out / (args.name + '.rejects.jsonl')}",
                  file=sys.stderr)
        if any(output.leaks.values()):
            print(f"warning: shared across splits: {output.leaks} — see {args.name}.report.md", file=sys.stderr)
    drops = drop_counts(result.drops) | _skip_counts(result.skipped)
    written = output.written
    parts = ", ".join(f"{k} {v}" for k, v in written.items())
    print(f"wrote {args.out}/: {parts}" + (f"; dropped {drops}" if drops else "")
          + f"; entries {', '.join(f'{args.name}_{k}' for k in written)}")


def _timing_line(result) -> str:
    """Where a long build spent its time, and how the workers shared the per-sample stages."""
    from .data.parallel import summary_line

    sec = result.seconds
    records = result.counts.get("read", 0)
    line = (f"timing: records {sec.get('records', 0):.1f} s ({records / max(sec.get('records', 0), 1e-9):,.0f}/s), "
            f"split {sec.get('split', 0):.1f} s, write {sec.get('write', 0):.1f} s")
    workers = summary_line(result.workers, sec.get("records", 0))
    return line + (f"; {workers}" if workers else "")


def cli() -> None:
    raise SystemExit(main())


if __name__ == "__main__":
    cli()
