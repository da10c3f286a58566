"""Compare the base model and its LoRA adapters side by side in the browser (Gradio, loopback by default).

Usage:
    python -m llamafactory_ext.webapp --recipe recipes/qwen3_thinking_lora_chat.yaml --adapter tuned=saves/…/lora
    python -m llamafactory_ext.webapp --model-path ./tiny --template qwen3 --adapter a=out/a --adapter b=out/b \\
        --dataset-dir dataset_info --name crypto          # adds the test-split sample picker

The base loads once (as `llamafactory-cli chat` would, same template and thinking setting); every adapter answers
from it in one batched generate. A self-test at load refuses comparison if two columns answer identically.
Blind votes go to --votes-dir (votes.jsonl + blind_map.jsonl) and become a Bradley–Terry ranking.
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from .errors import UsageError, exit_code

MAX_ADAPTERS = 3  # why: base + 3 columns is what one page shows legibly and one batch serves in ~1.3× one model


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m llamafactory_ext.webapp", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", type=Path, help="a chat recipe (build_recipe's *_chat.yaml): base, template, thinking")
    p.add_argument("--model-path", help="base model folder (instead of --recipe)")
    p.add_argument("--template", help="LF template (with --model-path; default from the recipe)")
    p.add_argument("--adapter", action="append", default=[], metavar="NAME=PATH", help="a LoRA adapter column (≤3)")
    p.add_argument("--dataset-dir", type=Path, help="dataset folder for the test-split sample picker")
    p.add_argument("--name", help="dataset name for the sample picker")
    p.add_argument("--votes-dir", type=Path, default=Path("saves/webapp_votes"), help="where blind votes go")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default loopback only)")
    p.add_argument("--port", type=int, default=7860)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return exit_code(lambda: serve(args))


def serve(args: argparse.Namespace, block: bool = True):
    from .serve.app import AppState, start
    from .serve.engine import Engine
    from .serve.ui import build

    recipe = recipe_from(args)
    state = AppState(Engine(recipe, adapters_from(args.adapter, recipe)), args.votes_dir, samples_from(args))
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: --host {args.host} exposes the models to the network; there is no authentication",
              file=sys.stderr)
    threading.Thread(target=start, args=(state,), daemon=True).start()  # the page serves while models load
    demo = build(state)
    demo.queue(default_concurrency_limit=1, max_size=16)
    demo.launch(server_name=args.host, server_port=args.port, prevent_thread_lock=not block, show_error=True,
                quiet=True)
    return (demo, state) if not block else 0


def recipe_from(args: argparse.Namespace) -> dict:
    import yaml

    recipe: dict = {}
    if args.recipe:
        try:
            recipe = yaml.safe_load(args.recipe.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise UsageError(f"--recipe {args.recipe}: cannot read ({exc})") from None
        if not isinstance(recipe, dict) or "model_name_or_path" not in recipe:
            raise UsageError(f"--recipe {args.recipe}: not a chat recipe (no model_name_or_path)")
    if args.model_path:
        recipe["model_name_or_path"] = args.model_path
    if args.template:
        recipe["template"] = args.template
    if "model_name_or_path" not in recipe or "template" not in recipe:
        raise UsageError("give --recipe, or --model-path with --template")
    return recipe


def adapters_from(specs: list[str], recipe: dict | None = None) -> dict[str, str]:
    """--adapter NAME=PATH columns; without any, the chat recipe's own adapter becomes the column 'tuned'."""
    if not specs and recipe and recipe.get("adapter_name_or_path"):
        return {"tuned": str(recipe["adapter_name_or_path"]).split(",")[0]}
    if len(specs) > MAX_ADAPTERS:
        raise UsageError(f"--adapter given {len(specs)} times: at most {MAX_ADAPTERS} beside the base")
    out: dict[str, str] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name.strip() or not path.strip() or name in out or name == "base":
            raise UsageError(f"--adapter {spec!r}: expected a unique NAME=PATH (NAME not 'base')")
        out[name.strip()] = path.strip()
    return out


def samples_from(args: argparse.Namespace) -> list[dict]:
    if not (args.dataset_dir and args.name):
        return []
    from .endpoint.predict import split_rows

    _, rows = split_rows(args.dataset_dir, args.name, "test")
    return list(rows)


if __name__ == "__main__":
    sys.exit(main())
