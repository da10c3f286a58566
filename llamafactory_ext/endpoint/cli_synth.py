"""build_dataset's ``--synthesize-reasoning`` options and the stage they make (the CLI glue for synthesis.py).

    python -m llamafactory_ext.build_dataset belle Belle.json --name belle --model qwen3-4b-thinking \\
        --synthesize-reasoning --endpoint http://127.0.0.1:8000/v1 --endpoint-model Qwen3-32B --limit 500
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import UsageError

DEFAULT_CACHE = Path.home() / ".cache" / "llamafactory_ext" / "synthesis.sqlite"  # why: outlives --out rebuilds
PARAMS = {"temperature": 0.6, "top_p": 0.95, "max_tokens": 2048}  # why: Qwen's thinking-mode sampling; ~1.5k chars


def add_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("reasoning synthesis (an OpenAI-compatible endpoint writes reasoning for the answer)")
    g.add_argument("--synthesize-reasoning", action="store_true",
                   help="ask --endpoint for reasoning for samples without it (the answer is never rewritten)")
    g.add_argument("--endpoint", help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1")
    g.add_argument("--endpoint-model", help="the teacher model's name on that server")
    g.add_argument("--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the key")
    g.add_argument("--concurrency", type=int, default=4, help="requests in flight (default 4)")
    g.add_argument("--limit", type=int, help="ask for at most this many samples")
    g.add_argument("--synth-cache", type=Path, default=DEFAULT_CACHE,
                   help=f"answer cache: a rerun sends nothing for finished items (default {DEFAULT_CACHE})")


def synthesizer(args: argparse.Namespace, quiet: bool = False):
    """The pipeline stage for these options, or None when --synthesize-reasoning is off."""
    if not args.synthesize_reasoning:
        return None
    if not args.endpoint or not args.endpoint_model:
        raise UsageError("--synthesize-reasoning needs --endpoint URL and --endpoint-model NAME")
    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit {args.limit}: give a positive number of samples")
    from pydantic import ValidationError

    from .client import EndpointConfig

    try:
        config = EndpointConfig(base_url=args.endpoint, model=args.endpoint_model, api_key_env=args.api_key_env,
                                concurrency=args.concurrency)
    except ValidationError as exc:
        raise UsageError(f"--concurrency {args.concurrency}: {exc.errors()[0]['msg']}") from None
    return lambda samples: _run(samples, config, args, quiet)


def _run(samples: list, config, args: argparse.Namespace, quiet: bool) -> tuple[list, dict]:
    from tqdm import tqdm

    from .client import ChatClient
    from .synthesis import candidates, estimate_tokens, synthesize

    todo = candidates(samples)[: args.limit] if args.limit else candidates(samples)
    cost = estimate_tokens(samples[i] for i in todo)
    print(f"reasoning synthesis: {len(todo)} of {len(samples)} samples lack reasoning"
          f"{f' (--limit {args.limit})' if args.limit else ''}; ≈{cost:,} tokens at {config.base_url} "
          f"({config.model}); cache {args.synth_cache}", file=sys.stderr)
    client = ChatClient(config, args.synth_cache)
    bar = tqdm(total=len(todo), desc="reasoning", unit=" sample", delay=2, disable=quiet, leave=False)
    try:
        out, report = synthesize(samples, client, limit=args.limit, params=PARAMS, progress=lambda n: bar.update(1))
    finally:
        bar.close()
        client.close()
    _print_summary(report, client.requests)
    return out, {**report.as_dict(), "model": config.model, "endpoint": config.base_url, "params": PARAMS}


def _print_summary(report, requests: int) -> None:
    print(f"reasoning synthesis: {report.accepted} accepted, {sum(report.rejected.values())} rejected "
          f"{dict(report.rejected) or ''}, {len(report.failed)} failed; {requests} requests sent, "
          f"{report.cached} answers from the cache", file=sys.stderr)
    for line in report.examples[:3] + report.failed[:5]:
        print(f"  {line}", file=sys.stderr)
    if report.failed:
        print("  failed samples keep no reasoning; rerun the same command to retry only them", file=sys.stderr)
