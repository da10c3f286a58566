"""Ask LLaMA-Factory 0.9.5 itself whether it accepts a recipe: the last gate before a recipe file ships.

RECIPE flow: Recipe → render → **check_with_lf** → io. LF's parser runs in a child interpreter because it sets
process-wide state (seeds, logging, template objects, accelerate state) and counts the visible GPUs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import ExtError, RecipeError, UsageError
from .render import flat
from .schema import KINDS, Recipe

Job = tuple[Recipe | Mapping[str, Any], str | None, str]  # (recipe or flat LF dict, kind, source name)
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # so the child imports this very checkout
_LAUNCH_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
                "ALLOW_EXTRA_ARGS")  # a torchrun parent or a lenient shell must not change the verdict


def check_with_lf(recipe: Recipe | Mapping[str, Any], kind: str | None = None, *, source: str = "recipe",
                  workdir: str | Path | None = None, timeout: float = 600) -> tuple[str, ...]:
    """None of LF's complaints, or RecipeError naming `source` with LF's own message.

    `workdir` is the folder llamafactory-cli will run in (relative dataset_dir / paths resolve there).
    Returns the keys this machine cannot judge (e.g. bf16 without a GPU), which the schema checked instead.
    """
    return check_many([(recipe, kind, source)], workdir=workdir, timeout=timeout)[0]


def check_many(jobs: Sequence[Job], *, workdir: str | Path | None = None,
               timeout: float = 600) -> list[tuple[str, ...]]:
    """check_with_lf for several recipes in one child interpreter (LF's import costs seconds)."""
    payload = [{"kind": _kind(r, k), "args": flat(r) if isinstance(r, Recipe) else dict(r)} for r, k, _ in jobs]
    results = _run_child(payload, workdir, timeout)
    for (_, _, source), job, result in zip(jobs, payload, results, strict=True):
        if result["error"]:
            raise RecipeError(f"{source}: LLaMA-Factory 0.9.5 rejects this {job['kind']} recipe: {result['error']}")
    return [tuple(result["skipped"]) for result in results]


def _kind(recipe: Recipe | Mapping[str, Any], kind: str | None) -> str:
    kind = kind or getattr(recipe, "kind", None)
    if kind not in KINDS or (isinstance(recipe, Recipe) and recipe.kind != kind):
        raise UsageError(f"kind={kind!r}: give one of {', '.join(KINDS)} (a flat dict needs it; a recipe has it)")
    return kind


def _run_child(payload: list[dict], workdir: str | Path | None, timeout: float) -> list[dict]:
    env = {k: v for k, v in os.environ.items() if k not in _LAUNCH_VARS}
    env.update(DISABLE_VERSION_CHECK="1", HF_HUB_OFFLINE="1", LLAMAFACTORY_VERBOSITY="WARN",
               PYTHONPATH=os.pathsep.join(filter(None, [str(_PACKAGE_ROOT), env.get("PYTHONPATH")])))
    # One GPU at most: with several, LF wants a torchrun launch before it looks at the recipe.
    env["CUDA_VISIBLE_DEVICES"] = env.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        command = [sys.executable, "-m", "llamafactory_ext.recipe.lf_check", str(out)]
        try:
            proc = subprocess.run(command, input=json.dumps(payload), cwd=workdir, env=env, capture_output=True,
                                  text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise ExtError(f"LLaMA-Factory's argument check took over {timeout:.0f} s") from None
        if not out.exists():
            raise ExtError(f"LLaMA-Factory's argument check did not run (exit {proc.returncode}); install the "
                           f"pinned stack with `pip install -e .`:\n{proc.stderr[-3000:]}")
        return json.loads(out.read_text(encoding="utf-8"))


# ---- child side: everything below runs inside the child interpreter, with LF imported ---------------------------


def _host_view(args: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Drop keys whose verdict depends on this machine, not on the recipe; say which."""
    import importlib.util

    import torch

    skipped: list[str] = []

    def drop(key: str, why: str) -> None:
        if args.pop(key, None):
            skipped.append(f"{key} ({why})")

    drop("deepspeed", "needs a torchrun launch and the deepspeed package; the schema checks the ZeRO rules")
    if not (torch.cuda.is_available() and torch.cuda.is_bf16_supported()):
        drop("bf16", "no bf16 GPU on this machine; the target GPU decides")
        drop("pure_bf16", "no bf16 GPU on this machine; the target GPU decides")
    if importlib.util.find_spec("liger_kernel") is None:
        drop("enable_liger_kernel", "liger-kernel is not installed on this machine")
    return args, skipped


def _lf_validate(kind: str, args: dict[str, Any]) -> None:
    """LF's parser for this kind, then the cheap checks LF runs before loading weights."""
    from llamafactory.hparams import get_infer_args, get_train_args

    if kind in ("train", "predict"):
        model_args, data_args, _, finetuning_args, _ = get_train_args(args)
        _check_datasets(data_args, finetuning_args.stage)
    else:
        model_args, data_args, _, _ = get_infer_args(args)
    if kind == "export":  # the two checks of train/tuner.py export_model() that come before loading the model
        if model_args.export_dir is None:
            raise ValueError("Please specify `export_dir` to save model.")
        if model_args.adapter_name_or_path is not None and model_args.export_quantization_bit is not None:
            raise ValueError("Please merge adapters before quantizing the model.")
    _check_template(model_args, data_args)


def _check_template(model_args: Any, data_args: Any) -> None:
    """A local model: LF loads its tokenizer and fixes the template, as at launch. A hub id: name lookup only."""
    from llamafactory.data.template import TEMPLATES, get_template_and_fix_tokenizer

    if Path(model_args.model_name_or_path).is_dir():
        from llamafactory.model import load_tokenizer

        get_template_and_fix_tokenizer(load_tokenizer(model_args)["tokenizer"], data_args)
    elif data_args.template is not None and data_args.template not in TEMPLATES:
        raise ValueError(f"Template {data_args.template} does not exist.")


def _check_datasets(data_args: Any, stage: str) -> None:
    """LF's dataset_info lookup, file presence and ranking-vs-stage checks (data/loader.py), without loading."""
    from llamafactory.data.parser import get_dataset_list

    ranking = stage in ("rm", "dpo")  # LF's rm and dpo workflows load their data as stage "rm"
    for names in (data_args.dataset, data_args.eval_dataset):
        for attr in get_dataset_list(names, data_args.dataset_dir):
            if attr.ranking != ranking:
                raise ValueError(f"{attr}: The dataset is not applicable in the current training stage.")
            local_path = os.path.join(data_args.dataset_dir, attr.dataset_name)
            if attr.load_from == "file" and not os.path.exists(local_path):
                raise ValueError(f"File {local_path} not found.")


def _check_job(job: dict) -> dict:
    args, skipped = _host_view(dict(job["args"]))
    try:
        _lf_validate(job["kind"], args)
    except Exception as exc:  # LF reports every refusal as an exception; its text is what users would see
        return {"error": f"{type(exc).__name__}: {exc}", "skipped": skipped}
    return {"error": None, "skipped": skipped}


def _main(argv: list[str]) -> int:
    results = [_check_job(job) for job in json.load(sys.stdin)]
    Path(argv[0]).write_text(json.dumps(results), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
