"""``python -m llamafactory_ext.endpoint``: predictions from a served model, and OpenAI fine-tuning export.

    python -m llamafactory_ext.endpoint predict --endpoint http://127.0.0.1:8000/v1 --model tuned \\
        --name crypto --out saves/served_predict [--recipe recipes/qwen3_thinking_lora_predict.yaml]
    python -m llamafactory_ext.endpoint export-openai --name crypto --split train --out train.openai.jsonl

The API key is read from $OPENAI_API_KEY (or --api-key-env NAME) and never written. Answers are cached in
OUT/endpoint_cache.sqlite: a rerun after an interruption sends no request for a finished item.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ..errors import exit_code


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m llamafactory_ext.endpoint", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    pr = sub.add_parser("predict", help="answer a split's prompts with a served model → generated_predictions.jsonl")
    add_endpoint_args(pr)
    pr.add_argument("--recipe", type=Path, help="predict/chat recipe whose sampling settings to use")
    pr.add_argument("--out", type=Path, required=True, help="folder for generated_predictions.jsonl")
    ex = sub.add_parser("export-openai", help="a split as OpenAI fine-tuning JSONL")
    ex.add_argument("--reasoning", choices=("keep", "drop"), default="keep",
                    help="keep <think> blocks inline in assistant messages, or drop them (default keep)")
    ex.add_argument("--out", type=Path, required=True, help="output .jsonl file")
    for q in (pr, ex):
        q.add_argument("--dataset-dir", type=Path, default=Path("dataset_info"), help="default: dataset_info")
        q.add_argument("--name", required=True, help="dataset name (entries NAME_train / NAME_val / NAME_test)")
        q.add_argument("--split", default="test", choices=("train", "val", "test"), help="default: test")
    return p.parse_args(argv)


def add_endpoint_args(p: argparse.ArgumentParser) -> None:
    """The options every endpoint user shares (evaluate --endpoint, build_dataset --synthesize-reasoning)."""
    p.add_argument("--endpoint", required=True, help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1")
    p.add_argument("--model", required=True, help="model name the server expects")
    p.add_argument("--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the key")
    p.add_argument("--concurrency", type=int, default=4, help="requests in flight (default 4)")
    p.add_argument("--max-retries", type=int, default=5, help="retries per request on 429/5xx (default 5)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per request (default 120)")


def endpoint_config(args: argparse.Namespace):
    from pydantic import ValidationError

    from ..errors import UsageError
    from .client import EndpointConfig

    try:
        return EndpointConfig(base_url=args.endpoint, model=args.model, api_key_env=args.api_key_env,
                              concurrency=args.concurrency, max_retries=args.max_retries, timeout=args.timeout)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise UsageError(f"--{str(err['loc'][0]).replace('_', '-')}: {err['msg']}") from None


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return exit_code(lambda: _predict(args) if args.cmd == "predict" else _export(args), write_target=args.out)


def _predict(args: argparse.Namespace) -> int:
    from .client import ChatClient
    from .predict import predictions, request_params, split_rows

    _, rows = split_rows(args.dataset_dir, args.name, args.split)
    rows = list(rows)
    params = request_params(_read_recipe(args.recipe) if args.recipe else {})
    client = ChatClient(endpoint_config(args), args.out / "endpoint_cache.sqlite")
    try:
        preds, failures = predictions(rows, client, params)
    finally:
        client.close()
    if failures:  # a file with holes would pair later predictions with the wrong references
        for line in failures[:10]:
            print(f"error: {line}", file=sys.stderr)
        print(f"{len(failures)} of {len(rows)} requests failed; nothing written — rerun: the {len(preds)} finished "
              "answers are cached and will not be asked again", file=sys.stderr)
        return 1
    _write_jsonl(args.out / "generated_predictions.jsonl", preds)
    print(f"{len(preds)} predictions → {args.out / 'generated_predictions.jsonl'} "
          f"({client.requests} requests sent, the rest from the cache)")
    return 0


def _export(args: argparse.Namespace) -> int:
    from .predict import openai_finetune_rows, split_rows

    _, rows = split_rows(args.dataset_dir, args.name, args.split)
    out = list(openai_finetune_rows(rows, args.reasoning))
    _write_jsonl(args.out, out)
    print(f"{len(out)} conversations → {args.out}")
    return 0


def _read_recipe(path: Path) -> dict:
    import yaml

    from ..errors import UsageError

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise UsageError(f"--recipe {path}: cannot read ({exc})") from None
    if not isinstance(data, dict):
        raise UsageError(f"--recipe {path}: not a recipe (expected key: value lines)")
    return data


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    from ..io import jsonl_text, write_files

    write_files({path: jsonl_text(rows)})


if __name__ == "__main__":
    sys.exit(main())
