"""Shared by the eval tests: a real tiny-model job (dataset → train → predict base and tuned → merge export).

Values are meaningless (random 0.3M-parameter model), the pipeline is real: LF writes every file read here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import yaml

from llamafactory_ext.build_dataset import main as build_dataset
from llamafactory_ext.build_recipe import main as build_recipe

REPO = Path(__file__).resolve().parent.parent
CRYPTO_NOTES = REPO / "examples" / "crypto_notes"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "eval"
# CPU overrides only (see test_recipe_e2e): fp32, no Liger, two steps, four test rows, a short generation.
MAX_NEW = 24  # long enough for a few words, short enough that the random model hits the limit (truncation check)
CPU = ["bf16=false", "enable_liger_kernel=false", "max_steps=2", "max_samples=4", f"max_new_tokens={MAX_NEW}"]


def flat(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def plan_job(work: Path, tiny: Path) -> dict[str, Path]:
    """Dataset + recipes for the tiny Qwen3 in ``work``; returns suffix → recipe file."""
    data = work / "dataset_info"
    assert build_dataset(["markdown", str(CRYPTO_NOTES), "--name", "crypto", "--out", str(data),
                          "--model", "qwen3-4b-thinking", "--require-reasoning", "--quiet"]) == 0
    assert build_recipe(["--dataset-dir", str(data), "--out", str(work / "recipes"), "--gpu", "1x24GB",
                         "--set", f"model_name_or_path={tiny}", *CPU]) == 0
    (predict,) = (work / "recipes").glob("*_predict.yaml")
    stem = predict.name.removesuffix("_predict.yaml")
    return {s: work / "recipes" / f"{stem}{s}.yaml" for s in ("", "_predict", "_merge")}


def base_predict_recipe(predict: Path) -> Path:
    """The same predict recipe without the adapter: the base model on the same test rows."""
    cfg = flat(predict)
    cfg.pop("adapter_name_or_path", None)
    cfg["output_dir"] = cfg["output_dir"].rstrip("/") + "_base"
    out = predict.with_name(predict.stem + "_base.yaml")
    out.write_text(yaml.safe_dump(cfg, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return out


def run_job(work: Path, tiny: Path, run_lf: Callable) -> dict:
    """Train, predict with the adapter, merge; the base predict recipe is written, left for `metrics --run`."""
    files = plan_job(work, tiny)
    run_lf(["train", str(files[""])], cwd=work)
    run_lf(["train", str(files["_predict"])], cwd=work)
    base = base_predict_recipe(files["_predict"])
    run_lf(["export", str(files["_merge"])], cwd=work)
    pred = flat(files["_predict"])
    return {"work": work, "files": files, "data": work / "dataset_info", "tuned": work / pred["output_dir"],
            "base": work / flat(base)["output_dir"], "adapter": work / pred["adapter_name_or_path"],
            "merged": work / flat(files["_merge"])["export_dir"], "template": pred["template"], "model": tiny,
            "cutoff_len": pred.get("cutoff_len", 2048), "base_recipe": base}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path
