"""build_recipe CLI: the main job's outputs, and every bad request answered with the key and the fix (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from llamafactory_ext.build_recipe import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """The committed example dataset, copied so tests never touch the repo."""
    folder = tmp_path_factory.mktemp("data") / "dataset_info"
    folder.mkdir()
    for p in (ROOT / "dataset_info").glob("crypto*"):
        (folder / p.name).write_bytes(p.read_bytes())
    (folder / "dataset_info.json").write_bytes((ROOT / "dataset_info" / "dataset_info.json").read_bytes())
    return folder


def run(capsys, *args) -> tuple[int, str]:
    code = main([str(a) for a in args])
    cap = capsys.readouterr()
    return code, cap.out + cap.err


def test_help(capsys):
    code, text = run(capsys, "--help")
    assert code == 0 and "--gpu" in text and "--set" in text


def test_main_job_writes_a_consistent_set_and_prints_next_commands(data, tmp_path, capsys):
    code, text = run(capsys, "--dataset-dir", data, "--out", tmp_path / "r", "--gpu", "1x24GB")
    assert code == 0, text
    names = sorted(p.name for p in (tmp_path / "r").iterdir())
    assert names == [f"qwen3_thinking_lora{s}.yaml" for s in ("", "_chat", "_gptq", "_merge", "_predict")]
    assert f"llamafactory-cli train {tmp_path / 'r' / 'qwen3_thinking_lora.yaml'}" in text
    assert "memory: ~" in text and "GiB needed of" in text  # the estimate next to the GPU's memory
    train = yaml.safe_load((tmp_path / "r" / "qwen3_thinking_lora.yaml").read_text(encoding="utf-8"))
    assert train["template"] == "qwen3" and train["enable_thinking"] is True
    assert isinstance(train["learning_rate"], float) and isinstance(train["warmup_steps"], float)
    assert "warmup_ratio" not in train
    calib = [json.loads(x) for x in (data / "crypto_gptq_calib.jsonl").read_text(encoding="utf-8").splitlines()]
    assert calib and all(len(r["text"]) >= 3000 for r in calib)  # LF's GPTQ needs texts longer than maxlen


def test_zero3_plan_writes_the_deepspeed_json_it_references(tmp_path, capsys):
    facts_dir = tmp_path / "d"
    facts_dir.mkdir()
    splits = {"train": {"samples": 1400, "with_reasoning": 0, "kinds": {"instruction": 1400},
                        "tokens_est": {"p50": 180, "p99": 900, "max": 1400}}}
    (facts_dir / "belle.manifest.json").write_text(json.dumps({"splits": splits}))
    rows = [{"instruction": f"问题{i}", "input": "", "output": "答案" * 50} for i in range(1400)]
    (facts_dir / "belle_train.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    (facts_dir / "dataset_info.json").write_text(json.dumps({"belle_train": {"file_name": "belle_train.jsonl"}}))
    out = tmp_path / "r"
    code, text = run(capsys, "--model", "qwen2.5-7b-instruct", "--dataset", "belle", "--dataset-dir", facts_dir,
                     "--out", out, "--gpu", "2x16GB")
    assert code == 0, text
    train = yaml.safe_load((out / "qwen25_7b_lora_ds_z3.yaml").read_text())
    assert train["deepspeed"] == f"{out.as_posix()}/deepspeed/ds_z3_config.json"
    assert json.loads(Path(train["deepspeed"]).read_text())["zero_optimization"]["stage"] == 3
    assert "FORCE_TORCHRUN=1 llamafactory-cli train" in text


@pytest.mark.parametrize("args,parts", [
    (["--model", "qwen3-4b-thinkin"], ["Unknown model", "qwen3-4b-thinking"]),
    (["--model", "baichuan2-7b-chat"], ["baichuan2", "qwen2.5-7b-instruct"]),
    (["--set", "lerning_rate=1e-4"], ["lerning_rate", "learning_rate"]),
    (["--set", "warmup_ratio=0.1"], ["warmup_ratio", "warmup_steps"]),
    (["--set", "learning_rate=fast"], ["learning_rate"]),
    (["--dataset", "nope"], ["nope.manifest.json", "build_dataset"]),
    (["--gpu", "2xA100-48GB"], ["A100"]),
    (["--template", "qwen"], ["--template goes with --model-path"]),
    (["--model-path", "nowhere"], ["pass --template"]),
    (["--set", "output_dir=saves/mine"], ["--saves"]),
    (["--set", "enable_thinking=false"], ["thinks in every answer"]),
    (["--set", "template=qwen3_nothink"], ["thinks in every answer"]),
    (["--model-path", "nowhere", "--template", "qwen"], ["nowhere"]),
])
def test_bad_requests_name_the_key_and_write_nothing(args, parts, data, tmp_path, capsys):
    code, text = run(capsys, "--dataset-dir", data, "--out", tmp_path / "r", "--gpu", "1x24GB", *args)
    assert code in (1, 2), text
    for part in parts:
        assert part in text, f"{part!r} not in {text!r}"
    assert not (tmp_path / "r").exists()


def test_thinking_model_refuses_a_plain_mode_dataset(tmp_path, capsys):
    from llamafactory_ext.build_dataset import main as build

    corpus = ROOT / "examples" / "crypto_notes"
    data = tmp_path / "d"
    assert build(["markdown", str(corpus), "--name", "crypto", "--out", str(data), "--model", "qwen3-4b-instruct",
                  "--quiet"]) == 0
    code, text = run(capsys, "--dataset-dir", data, "--out", tmp_path / "r", "--gpu", "1x24GB")
    assert code == 2 and "thinking-only" in text and "0%" in text and not (tmp_path / "r").exists()


def test_a_refused_request_writes_no_calibration_file_either(data, tmp_path, capsys):
    calib = data / "crypto_gptq_calib.jsonl"
    before = calib.read_bytes() if calib.exists() else None
    calib.unlink(missing_ok=True)
    code, _ = run(capsys, "--dataset-dir", data, "--out", tmp_path / "r", "--set", "lerning_rate=1")
    assert code == 2 and not calib.exists()
    if before is not None:
        calib.write_bytes(before)


def test_overrides_are_repriced_and_a_plan_that_does_not_fit_needs_force(data, tmp_path, capsys):
    over = ["--set", "per_device_train_batch_size=16", "cutoff_len=8192"]
    code, text = run(capsys, "--dataset-dir", data, "--out", tmp_path / "r", "--gpu", "1x24GB", *over)
    assert code == 2 and "does not fit" in text and "--force" in text and not (tmp_path / "r").exists()
    code, text = run(capsys, "--dataset-dir", data, "--out", tmp_path / "r", "--gpu", "1x24GB", *over, "--force")
    assert code == 0, text
    header = (tmp_path / "r" / "qwen3_thinking_lora.yaml").read_text(encoding="utf-8")
    assert "after --set" in header and "DOES NOT FIT" in header and "batch 16, cutoff 8192" in header


@pytest.mark.parametrize("over", [["neat_packing=true"], ["flash_attn=disabled"], ["disable_gradient_checkpointing=true"]])
def test_every_memory_relevant_override_is_repriced(over, data, tmp_path, capsys):
    code, text = run(capsys, "--dataset-dir", data, "--out", tmp_path / "r", "--gpu", "1x24GB", "--force",
                     "--set", "cutoff_len=8192", *over)
    assert code == 0, text
    base = (tmp_path / "r" / "qwen3_thinking_lora.yaml").read_text(encoding="utf-8")
    priced = float(base.split("after --set: ~")[1].split(" GiB")[0])
    code, text = run(capsys, "--dataset-dir", data, "--out", tmp_path / "s", "--gpu", "1x24GB", "--force",
                     "--set", "cutoff_len=8192")
    plain = float((tmp_path / "s" / "qwen3_thinking_lora.yaml").read_text(encoding="utf-8")
                  .split("after --set: ~")[1].split(" GiB")[0])
    assert priced > plain  # each of these needs more memory than the same cutoff without it
