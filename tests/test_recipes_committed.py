"""recipes/ is generated output: regenerating every seed scenario reproduces the committed files byte for byte,
and LLaMA-Factory's own parser accepts every one of them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from llamafactory_ext.build_recipe import build_seed
from llamafactory_ext.recipe.seeds import SEEDS

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ("recipes", "dataset_info")


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, check=False)


def committed_copy(dest: Path) -> Path:
    """The committed recipes/ and dataset_info/ copied into ``dest``: from git HEAD in a checkout (so the
    README's "Using it" commands, which rewrite the working files, never change the verdict), else the shipped files."""
    listed = _git("ls-tree", "-r", "-z", "--name-only", "HEAD", "--", *SHIPPED)
    names = [n for n in listed.stdout.decode().split("\0") if n] if listed.returncode == 0 else []
    if not names:  # not a git checkout (an sdist or a copy): the files as shipped
        for folder in SHIPPED:
            shutil.copytree(ROOT / folder, dest / folder)
        return dest
    for name in names:
        blob = _git("show", f"HEAD:{name}")
        assert blob.returncode == 0, blob.stderr.decode()
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        (dest / name).write_bytes(blob.stdout)
    return dest


@pytest.fixture(scope="module")
def committed(tmp_path_factory) -> Path:
    return committed_copy(tmp_path_factory.mktemp("committed"))


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory, committed):
    """A fresh build in a temporary folder: the example dataset built from the committed notes, then every seed."""
    tmp = tmp_path_factory.mktemp("seeds")
    cwd = os.getcwd()
    os.chdir(tmp)  # seeds write relative paths (dataset_info/, recipes/), as from the project root
    try:
        for seed in SEEDS:
            build_seed(seed, Path("recipes"), Path("dataset_info"))
    finally:
        os.chdir(cwd)
    return tmp, tmp / "recipes"


def files(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): p.read_text(encoding="utf-8")
            for pattern in ("*.yaml", "deepspeed/*.json") for p in sorted(folder.glob(pattern))}


def test_every_committed_recipe_is_regenerated_identically(regenerated, committed):
    _, out = regenerated
    fresh, kept = files(out), files(committed / "recipes")
    assert sorted(fresh) == sorted(kept), "run: python -m llamafactory_ext.build_recipe --seeds (then commit)"
    for name in fresh:
        assert fresh[name] == kept[name], f"{name} is stale: python -m llamafactory_ext.build_recipe --seeds"


def test_committed_dataset_matches_the_example_corpus(regenerated, committed):
    tmp, _ = regenerated
    for split in ("train", "val", "test"):
        name = f"crypto_{split}.jsonl"
        assert (tmp / "dataset_info" / name).read_text(encoding="utf-8") == \
            (committed / "dataset_info" / name).read_text(encoding="utf-8")


def test_the_check_never_reads_the_working_files(tmp_path):
    """A user who reruns the README's commands changes recipes/ and dataset_info/; the reference stays the commit."""
    copy = committed_copy(tmp_path)
    assert (copy / "recipes").is_dir() and (copy / "dataset_info" / "crypto_train.jsonl").is_file()
    assert not copy.is_relative_to(ROOT)


@pytest.mark.lf
@pytest.mark.slow
def test_lf_parser_accepts_every_committed_recipe(committed, tiny_qwen3, tiny_gemma3, tmp_path):
    """Every committed recipe passes LF's own argument parser (model path swapped for a tiny local model;
    Belle recipes get a tiny Belle-format dataset built by our CLI)."""
    import yaml

    from llamafactory_ext.build_dataset import main as build
    from llamafactory_ext.recipe.lf_check import check_many
    from llamafactory_ext.recipe.render import from_flat

    data = tmp_path / "dataset_info"
    shutil.copytree(committed / "dataset_info", data)
    rows = [{"instruction": f"请用一句话解释第{i}个概念：{w}", "input": "", "output": f"{w}是密码学中的重要概念，编号{i}。"}
            for i, w in enumerate(["对称加密", "哈希函数", "数字签名", "密钥交换", "消息认证码", "随机数"] * 5)]
    belle = tmp_path / "belle.jsonl"
    belle.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    assert build(["belle", str(belle), "--name", "belle", "--out", str(data), "--quiet"]) == 0
    (data / "belle_gptq_calib.jsonl").write_text('{"text": "x"}\n')
    (data / "crypto_gptq_calib.jsonl").write_text('{"text": "x"}\n')
    jobs = []
    for path in sorted((committed / "recipes").glob("*.yaml")):
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
    check_many(jobs, workdir=committed)
