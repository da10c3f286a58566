"""The build manifest: what is needed to reproduce and audit a dataset (pure, apart from hashing sources)."""

from __future__ import annotations

import json
import platform
from collections import Counter
from importlib import metadata
from pathlib import Path

PACKAGES = ("llamafactory-ext", "llamafactory", "opencc", "jieba", "datasketch", "markdown-it-py", "transformers")


def versions() -> dict[str, str | None]:
    """Installed versions, read from metadata (no imports, so no torch start-up)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def manifest_text(args, opts, result, stats: dict, files: dict, reasoning_mode: str = "think",
                  leaks: dict[str, int] | None = None) -> str:
    """JSON text: sources with sha256, counts after each stage, drops, seed, versions, arguments, output hashes,
    how reasoning was written (think: <think> blocks; drop / text: none in the rows), and ``written``: every file
    this build wrote with its sha256 — what a later --overwrite may remove and a rerun may replace."""
    from ..io import content_sha256, sha256_file
    from .pipeline import drop_counts

    data = {
        "name": opts.name,
        "command": ["python", "-m", "llamafactory_ext.build_dataset", *getattr(args, "argv", [])],
        "arguments": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                      if not isinstance(v, list)} | {"inputs": [str(p) for p in args.inputs]},
        "seed": opts.seed,
        "reasoning_mode": reasoning_mode,
        "ratios": list(opts.ratios),
        "sources": [{"path": str(p), "sha256": sha256_file(p)} for p in result.files],
        "counts": result.counts,
        "drops": drop_counts(result.drops),
        "skipped": dict(Counter(f"{k.kind}: {k.reason}" for k in result.skipped).most_common()),
        "notes": dict(Counter(n.code for n in result.notes).most_common()),
        "shared_across_splits": leaks or {},
        "reasoning_synthesis": result.synthesis,
        "errors_skipped": len(result.errors),
        "splits": stats,
        "outputs": {n: content_sha256(t) for n, t in sorted(files.items()) if n.endswith(".jsonl")},
        "written": {n: content_sha256(t) for n, t in sorted(files.items())},
        "versions": versions(),
    }
    return json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n"
