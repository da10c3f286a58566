"""Evaluate LLaMA-Factory predictions in Chinese: metrics, base vs tuned, perplexity, expert review, export check.

Usage:
    python -m llamafactory_ext.evaluate metrics saves/…/predict                 # generated_predictions.jsonl
    python -m llamafactory_ext.evaluate metrics --recipe recipes/x_predict.yaml --run   # predict first
    python -m llamafactory_ext.evaluate metrics --endpoint http://127.0.0.1:8000/v1 --model tuned --name crypto \
        --recipe recipes/x_predict.yaml                                        # a served model, same sampling
    python -m llamafactory_ext.evaluate compare BASE_EVAL_DIR TUNED_EVAL_DIR --out DIR
    python -m llamafactory_ext.evaluate ppl --model M --adapter A --dataset crypto_test --template qwen3 --out DIR
    python -m llamafactory_ext.evaluate review-export PRED_DIR [PRED_DIR2] --out review/
    python -m llamafactory_ext.evaluate review-import review/ alice.csv bob.csv
    python -m llamafactory_ext.evaluate verify-export --model M --adapter A --export-dir merged/ --dataset crypto_test
    python -m llamafactory_ext.evaluate report EVAL_DIR [--review review/] [--export merged/]

Every number is written with its definition (eval_totals.json "definitions"). Exit 0 ok, 1 data, 2 usage.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from .errors import UsageError, exit_code


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m llamafactory_ext.evaluate", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n")[1])
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("metrics", help="score generated_predictions.jsonl")
    m.add_argument("pred", nargs="?", type=Path, help="LF predict output dir or its generated_predictions.jsonl")
    m.add_argument("--recipe", type=Path, help="the *_predict.yaml: gives output dir, tokenizer, max_new_tokens")
    m.add_argument("--run", action="store_true", help="run the predict recipe first (llamafactory-cli train)")
    m.add_argument("--tokenizer", help="tokenizer folder, to count generated tokens for the truncation check")
    m.add_argument("--max-new-tokens", type=int, help="generation limit of the predict run (truncation check)")
    m.add_argument("--provenance", type=Path, help="NAME.provenance.jsonl (default: beside the dataset)")
    m.add_argument("--out", type=Path, help="eval folder (default PRED_DIR/eval)")
    _endpoint_args(m)
    c = sub.add_parser("compare", help="base vs tuned on the same samples, paired-bootstrap 95%% CIs")
    c.add_argument("base", type=Path, help="eval folder of the base model")
    c.add_argument("tuned", type=Path, help="eval folder of the tuned model")
    c.add_argument("--out", type=Path, help="where compare.json goes (default: TUNED)")
    q = sub.add_parser("ppl", help="perplexity on the test split, adapter unmerged")
    _model_args(q)
    q.add_argument("--label", default="tuned", help="name of this model in perplexity.json")
    q.add_argument("--out", type=Path, required=True, help="eval folder; perplexity.json is updated there")
    e = sub.add_parser("review-export", help="write a blind review sheet (CSV + HTML)")
    e.add_argument("preds", nargs="+", type=Path, help="one or two predict dirs (two: blind and shuffled)")
    e.add_argument("--names", nargs="+", help="system names (default base/tuned or the dir names)")
    e.add_argument("--out", type=Path, required=True, help="review folder")
    e.add_argument("--seed", type=int, default=0)
    i = sub.add_parser("review-import", help="import filled sheets, agreement, adjudication queue")
    i.add_argument("review", type=Path, help="review folder written by review-export")
    i.add_argument("sheets", nargs="+", type=Path, help="filled CSV sheets, one per reviewer (name = file stem)")
    i.add_argument("--replace", action="store_true", help="overwrite the scores of a reviewer already imported")
    v = sub.add_parser("verify-export", help="check a merged export against the unmerged adapter")
    _model_args(v)
    v.add_argument("--export-dir", type=Path, required=True, help="export_dir of llamafactory-cli export")
    v.add_argument("--n", type=int, default=8, help="test prompts to generate on")
    v.add_argument("--max-new-tokens", type=int, default=256)
    r = sub.add_parser("report", help="render eval_report.html")
    r.add_argument("eval_dir", type=Path)
    r.add_argument("--review", type=Path, help="review folder with summary.json")
    r.add_argument("--export", type=Path, help="export dir with export_metadata.json")
    r.add_argument("--votes", type=Path, help="the web app's --votes-dir: blind A/B votes → Bradley–Terry ranking")
    r.add_argument("--train-dir", type=Path, help="training output dir (all_results.json: train vs eval loss)")
    r.add_argument("--out", type=Path, help="default EVAL_DIR/eval_report.html")
    return p


def _endpoint_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("a served model (any OpenAI-compatible server) instead of a local predict run")
    g.add_argument("--endpoint", help="base URL, e.g. http://127.0.0.1:8000/v1 (llamafactory-cli api, vLLM, …)")
    g.add_argument("--model", dest="served_model", help="the model name the server expects")
    g.add_argument("--name", help="dataset name: its NAME_test entry supplies prompts and references")
    g.add_argument("--dataset-dir", type=Path, default=Path("dataset_info"))
    g.add_argument("--split", default="test", choices=("train", "val", "test"))
    g.add_argument("--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the key")
    g.add_argument("--concurrency", type=int, default=4)
    g.add_argument("--fresh", action="store_true",
                   help="ask again for every prompt (the cache keeps answers per URL + model name: pass this after "
                        "the server started serving another checkpoint under the same name)")


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="base model folder")
    p.add_argument("--adapter", help="LoRA adapter folder (kept unmerged)")
    p.add_argument("--dataset", required=True, help="test split name in dataset_info.json, e.g. crypto_test")
    p.add_argument("--dataset-dir", type=Path, default=Path("dataset_info"))
    p.add_argument("--template", default="qwen3", help="LF template used in training")
    p.add_argument("--cutoff-len", type=int, default=2048, help="LF cutoff_len used in training")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    from .eval import cli_more

    commands = {"metrics": cmd_metrics, "compare": cmd_compare, "ppl": cmd_ppl, "review-export": cli_more.review_export,
                "review-import": cli_more.review_import, "verify-export": cli_more.verify, "report": cli_more.report}
    return exit_code(lambda: commands[args.cmd](args), debug=args.debug, write_target=getattr(args, "out", None))


def _write(files: dict[Path, str]) -> None:
    from .io import write_files

    write_files(files)


def cmd_metrics(args: argparse.Namespace) -> int:
    from .eval import pipeline as pl

    cfg = pl.read_recipe(args.recipe) if args.recipe else {}
    pred = args.pred
    if args.run:
        if not args.recipe:
            raise UsageError("--run needs --recipe: the *_predict.yaml to run")
        pred = pl.run_predict(args.recipe, Path.cwd())
    if args.endpoint:
        pred = _served_predictions(args, cfg)
    pred = pred or (Path(cfg["output_dir"]) if cfg.get("output_dir") else None)
    if pred is None:
        raise UsageError("pass a predict output dir, or --recipe with its output_dir")
    rows = pl.read_predictions(pred)
    tokenizer = args.tokenizer or cfg.get("adapter_name_or_path") or cfg.get("model_name_or_path")
    max_new = args.max_new_tokens or cfg.get("max_new_tokens")
    counts = pl.token_counts([r["predict"] for r in rows], tokenizer if max_new else None)
    samples, totals = pl.evaluate(rows, counts=counts, max_new_tokens=max_new, provenance=_provenance(args, cfg))
    if args.endpoint:  # why: only prompt log-probabilities give a perplexity; the chat protocol has none for prompts
        totals["perplexity"] = {"available": False, "why": "the endpoint returns no prompt log-probabilities through "
                                "chat completions; run `evaluate ppl` on the model files for perplexity"}
    out = args.out or (pred if pred.is_dir() else pred.parent) / "eval"
    _write({out / "eval_samples.jsonl": "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in samples),
            out / "eval_totals.json": pl.dumps(totals), out / "predictions.jsonl": _jsonl(rows)})
    print_table(totals)
    print(f"wrote {out}/eval_samples.jsonl, eval_totals.json")
    return 0


def _served_predictions(args: argparse.Namespace, cfg: dict) -> Path:
    """Ask the endpoint for the split's answers with the predict recipe's sampling; returns the predictions dir."""
    from .endpoint.client import ChatClient, EndpointConfig
    from .endpoint.predict import predictions, request_params, split_rows

    if not (args.served_model and args.name):
        raise UsageError("--endpoint needs --model (the served model's name) and --name (the dataset)")
    folder = args.out or Path("saves") / "endpoint_eval" / args.served_model.replace("/", "_")
    _, rows = split_rows(args.dataset_dir, args.name, args.split)
    config = EndpointConfig(base_url=args.endpoint, model=args.served_model, api_key_env=args.api_key_env,
                            concurrency=args.concurrency)
    cache = folder / "endpoint_cache.sqlite"
    if args.fresh:
        for path in (cache, cache.with_name(cache.name + "-wal"), cache.with_name(cache.name + "-shm")):
            path.unlink(missing_ok=True)
    client, rows = ChatClient(config, cache), list(rows)
    try:
        preds, failures = predictions(rows, client, request_params(cfg))
    finally:
        client.close()
    print(f"{args.endpoint}: {client.requests} request(s) sent, {len(rows) - client.requests} answer(s) from {cache}"
          + (" — pass --fresh if the server now serves another model under this name" if client.requests < len(rows)
             else ""))
    if failures:
        raise UsageError(f"{len(failures)} request(s) failed; first: {failures[0]} — rerun: finished ones are cached")
    _write({folder / "generated_predictions.jsonl": _jsonl(preds)})
    provenance = args.dataset_dir / f"{args.name}.provenance.jsonl"
    # the provenance file's term sets are read for the test split's rows: other splits tag their references instead
    args.provenance = args.provenance or (provenance if provenance.is_file() and args.split == "test" else None)
    args.out = args.out or folder / "eval"
    return folder


def _jsonl(rows: list[dict]) -> str:
    from .io import jsonl_text

    return jsonl_text(rows)


def _provenance(args: argparse.Namespace, cfg: dict) -> Path | None:
    if args.provenance:
        return args.provenance
    name, folder = cfg.get("eval_dataset"), cfg.get("dataset_dir")
    if not (name and folder):
        return None
    return Path(folder) / f"{str(name).split(',')[0].removesuffix('_test')}.provenance.jsonl"


def print_table(totals: dict) -> None:
    views = list(totals["metrics"])
    print(f"{'metric':<16}" + "".join(f"{v:>12}" for v in views))
    for k in totals["metrics"][views[0]]:
        print(f"{k:<16}" + "".join(f"{totals['metrics'][v][k]:>12.4f}" for v in views))
    th, te = totals["thinking"], totals["terms"]
    print(f"thinking compliance {th['compliance']:.1f}%  failures {th['failures']}")
    print(f"term recall {_pct(te['recall'])}  precision {_pct(te['precision'])}  ({te['source']})")


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.1f}%"


def cmd_compare(args: argparse.Namespace) -> int:
    from .eval import pipeline as pl

    result = pl.compare_samples(pl.read_samples(args.base), pl.read_samples(args.tuned))
    out = args.out or args.tuned
    _write({out / "compare.json": pl.dumps(result)})
    print(f"{'metric':<22}{'base':>10}{'tuned':>10}{'delta':>10}{'95% CI':>22}{'better':>8}{'worse':>7}")
    for k, c in result.items():
        ci = f"[{c['ci_low']:.3f}, {c['ci_high']:.3f}]"
        print(f"{k:<22}{c['base']:>10.3f}{c['tuned']:>10.3f}{c['delta']:>10.3f}{ci:>22}{c['better']:>8}{c['worse']:>7}")
    return 0


def cmd_ppl(args: argparse.Namespace) -> int:
    from .eval import perplexity as ppl
    from .eval.pipeline import dumps

    model, tok = ppl.load_model(args.model, args.adapter)
    rows = ppl.read_split(args.dataset_dir, args.dataset)
    res = ppl.perplexity(ppl.sample_nll(model, ppl.encode(rows, tok, args.template, args.cutoff_len)))
    path = args.out / "perplexity.json"
    old = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    _write({path: dumps({**old, args.label: {**res, "adapter": args.adapter, "definitions": ppl.DEFINITIONS}})})
    print(f"{args.label}: perplexity {res['perplexity']:.4f} (corpus, {res['tokens']} tokens), "
          f"geometric mean {res['perplexity_geomean']:.4f}")
    return 0



if __name__ == "__main__":
    raise SystemExit(main())
