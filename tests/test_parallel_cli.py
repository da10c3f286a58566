"""build_recipe --parallel: the switch reaches the train recipe, its config and the launch files; refusals name the
reason and the nearest allowed strategy; LF's own parser accepts the switched recipe."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from llamafactory_ext.build_recipe import main as build_recipe

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def work(tmp_path):
    shutil.copytree(ROOT / "dataset_info", tmp_path / "dataset_info")
    return tmp_path


def _run(work: Path, *extra: str) -> int:
    return build_recipe(["--dataset-dir", str(work / "dataset_info"), "--out", str(work / "r"), "--gpu",
                         "2xA100-40GB", "--saves", str(work / "saves"), *extra])


def test_auto_keeps_the_planned_layout_and_writes_launch_files(work, capsys):
    assert _run(work) == 0
    out = capsys.readouterr().out
    assert "* ddp" in out and "vs DDP" in out  # the table of alternatives, the planner's choice starred
    names = {p.name for p in (work / "r").iterdir()}
    assert {"qwen3_thinking_lora_launch.sh", "qwen3_thinking_lora_launch_elastic.sh", "qwen3_thinking_lora.sbatch",
            "qwen3_thinking_lora_ray.yaml"} <= names
    assert "deepspeed" not in yaml.safe_load((work / "r" / "qwen3_thinking_lora.yaml").read_text())


@pytest.mark.lf
def test_switch_to_zero2_writes_its_config_and_passes_lf(work):
    assert _run(work, "--parallel", "zero2", "--check") == 0
    recipe = yaml.safe_load((work / "r" / "qwen3_thinking_lora.yaml").read_text())
    assert recipe["deepspeed"].endswith("r/deepspeed/ds_z2_config.json")
    assert (work / "r" / "deepspeed" / "ds_z2_config.json").is_file()
    assert not (work / "r" / "deepspeed" / "ds_z3_config.json").exists()


def test_refused_strategy_names_the_reason_and_nearest(work, capsys):
    assert _run(work, "--parallel", "megatron") == 2
    err = capsys.readouterr().err
    assert "full only" in err and "nearest allowed: --parallel" in err
    assert not (work / "r").exists()
