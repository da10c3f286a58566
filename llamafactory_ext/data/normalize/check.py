"""Check that normalize() leaves code and formulas byte-identical, on real files.

    python -m llamafactory_ext.data.normalize.check data/alpaca_zh_demo.json notes/ [--normalizer mod:func]

A FILE is a JSON array (every string value in it is one text: alpaca, sharegpt rows) or a markdown / text
file (one text); a folder means its *.md files. The detector is codelike.py's, per kind: fenced code lines,
code lines outside fences, formulas ($…$, $$…$$, \\(…\\)) and inline code (calls, groups, factorials,
assignments). A span counts as changed when the output no longer holds it as often as the input did.
Exit 1 when anything changed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

from ...errors import DataError
from . import codelike
from .segments import code_blocks, split
from .unicode import prepare

KINDS = ("fenced code line", "code line", "formula", "inline code")


def code_spans(text: str) -> Iterator[tuple[str, str]]:
    """(kind, span text) for every code-like piece of ``text`` that normalize() must keep."""
    text = prepare(text)
    for block in code_blocks(text):
        yield from (("fenced code line", line) for line in block.split("\n")[1:-1] if line.strip())
    for segment in split(text):
        if not segment.protected:
            for start, end in codelike.spans(segment.text):
                yield _kind(segment.text, start, end), segment.text[start:end]


def _kind(text: str, start: int, end: int) -> str:
    span = text[start:end]
    if span.startswith(("$", "\\(", "\\[")):
        return "formula"
    whole_line = text[start - 1 : start] in ("", "\n") and text[end : end + 1] in ("", "\n")
    return "code line" if whole_line and codelike.is_code_line(span) else "inline code"


def changed(text: str, normalize: Callable[[str], str]) -> Iterator[tuple[str, str]]:
    """(kind, span) for the code-like spans of ``text`` that normalize(text) does not keep byte-identical."""
    wanted = Counter(code_spans(text))
    out = normalize(text)
    for (kind, span), count in wanted.items():
        if out.count(span) < count:
            yield kind, span


def texts(path: Path) -> Iterator[tuple[str, str]]:
    """(location, text) of every text in a JSON array file, a markdown / text file or a folder of *.md."""
    if path.is_dir():
        for md in sorted(path.rglob("*.md")):
            yield from texts(md)
    elif path.suffix == ".json":
        for i, row in enumerate(_json(path)):
            yield from ((f"{path}[{i}]", s) for s in _strings(row))
    else:
        yield str(path), _read(path)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(str(path), None, "not UTF-8 text", "save the file as UTF-8") from None
    except OSError as e:
        raise DataError(str(path), None, f"cannot read ({e.strerror})", "check the path") from None


def _json(path: Path) -> list:
    try:
        rows = json.loads(_read(path))
    except json.JSONDecodeError as e:
        raise DataError(
            str(path), e.lineno, f"not valid JSON ({e.msg})", "give a JSON array of rows"
        ) from None
    if not isinstance(rows, list):
        raise DataError(str(path), 1, "not a JSON array", "give a JSON array of rows (alpaca, sharegpt)")
    return rows


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict | list):
        for item in value.values() if isinstance(value, dict) else value:
            yield from _strings(item)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", type=Path, help="JSON array files, markdown files or folders")
    parser.add_argument("--normalizer", default=f"{__package__}:normalize", help="module:function to check")
    parser.add_argument("--show", type=int, default=10, help="print up to this many changed spans")
    args = parser.parse_args(argv)
    module, _, name = args.normalizer.partition(":")
    try:
        normalize = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        parser.error(f"--normalizer {args.normalizer}: no such module:function")
    try:
        found = [(where, text) for path in args.paths for where, text in texts(path)]
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return _report(found, normalize, args.show)


def _report(found: list[tuple[str, str]], normalize: Callable[[str], str], show: int) -> int:
    total: Counter[str] = Counter()
    bad: Counter[str] = Counter()
    for where, text in found:
        total.update(kind for kind, _ in code_spans(text))
        for kind, span in changed(text, normalize):
            bad[kind] += 1
            if sum(bad.values()) <= show:
                print(f"{where}: {kind} changed: {span[:120]!r}")
    for kind in KINDS:
        print(f"{kind:18} {total[kind]:6} found {bad[kind]:5} changed")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
