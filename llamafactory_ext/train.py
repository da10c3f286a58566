"""Supervised training: `python -m llamafactory_ext.train RECIPE.yaml [key=value …] [--yes] [--stop-on …]`.

RUN flow: read the recipe → pre-flight (probe + pure checks + LF's own argument check, no model loaded) → summary
and confirmation → supervisor (worker running LF's run_exp with our callback; OOM ladder; Ctrl-C = clean stop)
→ report.html / report.md in the output dir. Exit codes: 0 done, 1 error, 2 pre-flight or usage, 3 stopped by an
alert, 4 out of memory on every rung, 130 stopped by Ctrl-C (resume command printed).
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import sys
from pathlib import Path
from typing import Any

import yaml

from .errors import DataError, UsageError, exit_code

_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def parse_value(raw: str) -> Any:
    """`1e-4` → 1e-4 (PyYAML would keep it a string, and LF does no coercion), else YAML's reading."""
    if _NUMBER.fullmatch(raw.strip()):
        return int(raw) if re.fullmatch(r"[-+]?\d+", raw.strip()) else float(raw)
    return yaml.safe_load(raw) if raw.strip() else None


def load_recipe(path: Path, overrides: list[str]) -> tuple[dict[str, Any], str]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the recipe ({exc.strerror}) — give the path of a train YAML") from None
    try:
        args = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise DataError(str(path), mark.line + 1 if mark else None, f"not valid YAML ({exc})", "fix the syntax") \
            from None
    if not isinstance(args, dict):
        raise DataError(str(path), None, "a recipe is a mapping of LF keys", "see recipes/*.yaml")
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"override '{item}': write key=value (e.g. learning_rate=1.0e-4)")
        args[key.strip()] = parse_value(raw)
    return args, text


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m llamafactory_ext.train", description=__doc__.split("\n\n")[0])
    p.add_argument("recipe", type=Path, help="LF train recipe (YAML)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="LF keys to change for this run")
    p.add_argument("--yes", "-y", action="store_true", help="start without the confirmation prompt")
    p.add_argument("--stop-on", default=None,
                   help="alert kinds that stop the run (comma list of nonfinite, spike, grad_norm, overfit, memory, "
                        "stall; or 'any')")
    p.add_argument("--lang", choices=("en", "zh"), default="en", help="language of alerts")
    p.add_argument("--max-attempts", type=int, default=3, help="attempts on out-of-memory (first try included)")
    p.add_argument("--allow-4bit", action="store_true", help="let the OOM ladder switch LoRA to 4-bit QLoRA")
    p.add_argument("--memory-budget-gb", type=float, default=None,
                   help="cap what the worker may allocate (RLIMIT_AS on CPU, memory fraction on a GPU)")
    p.add_argument("--skip-lf-check", action="store_true", help="skip LF's own argument check (saves seconds)")
    p.add_argument("--dry-run", action="store_true", help="pre-flight and summary only")
    return p


def _preflight(args: dict[str, Any], text: str, opts: argparse.Namespace) -> tuple[Any, list[str]]:
    from .run import checks, preflight

    facts = preflight.probe(args, Path.cwd(), text)
    problems = checks.check(args, facts)
    if problems:
        raise UsageError("pre-flight failed (nothing was loaded):\n  " + "\n  ".join(p.render() for p in problems))
    if not opts.skip_lf_check:
        from .recipe.lf_check import check_with_lf

        check_with_lf(args, "train", source=str(opts.recipe), workdir=Path.cwd())
    return facts, checks.notes(args, facts)


def summary(args: dict[str, Any], facts: Any, notes: list[str]) -> str:
    from .run import checks, ladder

    world = checks.world_size(facts)
    rows = ", ".join(f"{d.name}: {d.rows} rows" for d in facts.datasets)
    device = ", ".join(g["name"] for g in facts.gpus) or "CPU"
    mem = f"~{facts.memory_estimate_gib:.1f} GiB per GPU (recipe)" if facts.memory_estimate_gib else "no estimate"
    lines = [f"model        {args.get('model_name_or_path')}",
             f"method       {args.get('stage', 'sft')} / {args.get('finetuning_type', 'lora')}",
             f"data         {rows}",
             f"batch        {args.get('per_device_train_batch_size', 1)} x accumulation "
             f"{args.get('gradient_accumulation_steps', 1)} x {world} device(s) = global "
             f"{ladder.global_batch(args, world)}",
             f"steps        {checks.planned_steps(args, facts) or '?'}",
             f"device       {device}; memory {mem}",
             "time         timed from the first steps (ETA shown live)",
             f"output       {args.get('output_dir')}"]
    return "\n".join(lines + [f"note         {n}" for n in notes])


def _confirm(yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise UsageError("no terminal to confirm on and no --yes: pass --yes to start without asking")
    if input("Start training? [y/N] ").strip().lower() not in ("y", "yes"):
        raise UsageError("not started (answer y to start, or pass --yes)")


def _manifest(args: dict[str, Any]) -> str | None:
    root = Path(str(args.get("dataset_dir", "data")))
    for name in str(args.get("dataset", "")).split(","):
        for stem in (name.strip(), re.sub(r"_(train|val|test)$", "", name.strip())):
            if (root / f"{stem}.manifest.json").is_file():
                return str(root / f"{stem}.manifest.json")
    return None


def _options(opts: argparse.Namespace, facts: Any) -> Any:
    from .run import alerts, checks, ladder
    from .run.supervisor import Options

    try:
        alerts.parse_stop_on(opts.stop_on)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    machine = ladder.Machine(gpu=bool(facts.gpus), liger=importlib.util.find_spec("liger_kernel") is not None,
                             bitsandbytes=facts.versions.get("bitsandbytes") is not None, allow_4bit=opts.allow_4bit)
    return Options(lang=opts.lang, stop_on=opts.stop_on, max_attempts=max(1, opts.max_attempts),
                   memory_budget_gb=opts.memory_budget_gb, world=checks.world_size(facts), machine=machine)


def _record(args: dict[str, Any], opts: argparse.Namespace) -> Any:
    from .run import record

    out = Path.cwd() / str(args["output_dir"])
    old = None if args.get("overwrite_output_dir") else record.load(out)
    same = old is not None and old.args.get("model_name_or_path") == args.get("model_name_or_path")
    if same:  # a resume: keep the history of earlier attempts
        old.args, old.status, old.ended = args, "running", None
        return old
    return record.RunRecord(recipe=str(opts.recipe), overrides=list(opts.overrides), args=args,
                            manifest=_manifest(args))


def run(opts: argparse.Namespace) -> int:
    from .run import alerts

    try:  # a typo in --stop-on is a usage error before anything is read, loaded or asked
        alerts.parse_stop_on(opts.stop_on)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    args, text = load_recipe(opts.recipe, opts.overrides)
    facts, notes = _preflight(args, text, opts)
    print(summary(args, facts, notes), flush=True)
    if opts.dry_run:
        return 0
    _confirm(opts.yes)
    options = _options(opts, facts)
    from .run.report_html import write_report
    from .run.supervisor import supervise

    record = _record(args, opts)
    code = supervise(args, record, options, Path.cwd())
    out = Path.cwd() / str(args["output_dir"])
    print(f"[lfx] report: {write_report(out)}", flush=True)
    if record.resume_command:
        print(f"[lfx] {record.status}; resume with:\n  {record.resume_command}", flush=True)
    return code


def main(argv: list[str] | None = None) -> int:
    opts = build_parser().parse_args(argv)
    return exit_code(lambda: run(opts))


if __name__ == "__main__":
    sys.exit(main())
