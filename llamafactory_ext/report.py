"""Rebuild a training report: `python -m llamafactory_ext.report OUTPUT_DIR`.

Works on any LLaMA-Factory output dir — supervised runs, plain `llamafactory-cli train` or the web UI (then from
trainer_state.json / trainer_log.jsonl alone; the report lists what is missing). Writes report.html and report.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import UsageError, exit_code


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m llamafactory_ext.report", description=__doc__.split("\n\n")[0])
    p.add_argument("output_dir", type=Path, help="LF output_dir of a training run")
    return p


def run(out: Path) -> int:
    if not out.is_dir():
        raise UsageError(f"{out}: no such folder — give the output_dir of a training run")
    logs = ("trainer_state.json", "trainer_log.jsonl", "run_events.jsonl")
    if not any((out / name).is_file() for name in logs):
        raise UsageError(f"{out}: none of {', '.join(logs)} found — is this an LF output_dir (or a checkpoint-*)?")
    from .run.report_html import write_report

    print(write_report(out))
    return 0


def main(argv: list[str] | None = None) -> int:
    opts = build_parser().parse_args(argv)
    return exit_code(lambda: run(opts.output_dir))


if __name__ == "__main__":
    sys.exit(main())
