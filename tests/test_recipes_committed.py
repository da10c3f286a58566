"""recipes/ is generated output: regenerating every seed scenario reproduces the committed files byte for byte,
and LLaMA-Factory's own parser accepts every one of them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from llamafactory_ext.build_recipe import build_seed
from llamafactory_ext.recipe.seeds import SEEDS

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("seeds")
    out = tmp / "recipes"
    import os

    cwd = os.getcwd()
    os.chdir(tmp)  # seeds write relative paths (dataset_info/, recipes/), as from the project root
    try:
        for seed in SEEDS:
            build_seed(seed, Path("recipes"), Path("dataset_info"))
    finally:
        os.chdir(cwd)
    return tmp, out


def test_every_committed_recipe_is_regenerated_identically(regenerated):
    _, out = regenerated
    def files(folder):
        return {p.relative_to(folder).as_posix(): p.read_text(encoding="utf-8")
                for pattern in ("*.yaml", "deepspeed/*.json") for p in sorted(folder.glob(pattern))}

    fresh, committed = files(out), files(ROOT / "recipes")
    assert sorted(fresh) == sorted(committed), "run: python -m llamafactory_ext.build_recipe --seeds"
    for name in fresh:
        assert fresh[name] == committed[name], f"{name} is stale: python -m llamafactory_ext.build_recipe --seeds"


def test_committed_dataset_matches_the_example_corpus(regenerated):
    tmp, _ = regenerated
    for split in ("train", "val", "test"):
        name = f"crypto_{split}.jsonl"
        assert (tmp / "dataset_info" / name).read_text(encoding="utf-8") == \
            (ROOT / "dataset_info" / name).read_text(encoding="utf-8")


@pytest.mark.lf
@pytest.mark.slow
def test_lf_parser_accepts_every_committed_recipe(regenerated, tiny_qwen3, tiny_gemma3, tmp_path):
    """Every committed recipe passes LF's own argument parser (model path swapped for a tiny local model;
    Belle recipes get a tiny Belle-format dataset built by our CLI)."""
    import yaml

    from llamafactory_ext.build_dataset import main as build
    from llamafactory_ext.recipe.lf_check import check_many
    from llamafactory_ext.recipe.render import from_flat

    data = tmp_path / "dataset_info"
    shutil.copytree(ROOT / "dataset_info", data)
    rows = [{"instruction": f"请用一句话解释第{i}个概念：{w}", "input": "", "output": f"{w}是密码学中的重要概念，编号{i}。"}
            for i, w in enumerate(["对称加密", "哈希函数", "数字签名", "密钥交换", "消息认证码", "随机数"] * 5)]
    belle = tmp_path / "belle.jsonl"
    belle.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    assert build(["belle", str(belle), "--name", "belle", "--out", str(data), "--quiet"]) == 0
    (data / "belle_gptq_calib.jsonl").write_text('{"text": "x"}\n')
    (data / "crypto_gptq_calib.jsonl").write_text('{"text": "x"}\n')
    jobs = []
    for path in sorted((ROOT / "recipes").glob("*.yaml")):
        flat = yaml.safe_load(path.read_text(encoding="utf-8"))
        model = tiny_gemma3 if flat.get("template") == "gemma3" else tiny_qwen3
        if not path.stem.endswith("_gptq"):
            flat["model_name_or_path"] = str(model)
        else:
            flat["model_name_or_path"] = str(model)  # the merged model would be here after export
        if "dataset_dir" in flat:
            flat["dataset_dir"] = str(data)
        if "export_quantization_dataset" in flat:
            flat["export_quantization_dataset"] = str(data / Path(flat["export_quantization_dataset"]).name)
        flat.pop("adapter_name_or_path", None)  # no trained adapter exists in this test
        kind = {"_predict": "predict", "_merge": "export", "_gptq": "export", "_chat": "chat"}.get(
            next((s for s in ("_predict", "_merge", "_gptq", "_chat") if path.stem.endswith(s)), ""), "train")
        if kind == "export" and not path.stem.endswith("_gptq"):
            continue  # a merge recipe without its adapter is not a merge; covered end to end in test_recipe_e2e
        jobs.append((from_flat(kind, flat, source=str(path)), kind, str(path)))
    check_many(jobs, workdir=ROOT)
