"""LLaMA-Factory itself reads our tool-calling and multimodal rows with the right roles and columns, and trains
on the tool-calling dataset (LF's own demo data, tiny local models, no mocks)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from lf_probe import lf_encode

from llamafactory_ext.build_dataset import main
from llamafactory_ext.data.converters.alpaca import convert_alpaca
from llamafactory_ext.data.converters.chat import OPENAI, SHAREGPT, convert_chat
from llamafactory_ext.data.formats import format_split
from llamafactory_ext.data.sources.files import iter_json_records
from llamafactory_ext.records import Sample

pytestmark = [pytest.mark.lf, pytest.mark.slow]

LF_DATA = Path(__file__).parent / "fixtures" / "real" / "llamafactory"
GLAIVE, MLLM, ALPACA = LF_DATA / "glaive_toolcall_zh_demo.json", LF_DATA / "mllm_demo.json", LF_DATA / "alpaca_zh_demo.json"
TEXT_ROWS = 3  # text-only rows mixed into the media split: rows without images must load beside rows with them


def samples(converted) -> list[Sample]:
    return [x for x in converted if isinstance(x, Sample)]


@pytest.fixture(scope="module")
def converted() -> dict[str, list[Sample]]:
    text = samples(convert_alpaca(iter_json_records(ALPACA), str(ALPACA)))[:TEXT_ROWS]
    return {"glaive": samples(convert_chat(iter_json_records(GLAIVE), str(GLAIVE), SHAREGPT)),
            "mllm": samples(convert_chat(iter_json_records(MLLM), str(MLLM), OPENAI)) + text}


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory, converted) -> Path:
    """Our rows and entries in a folder away from the fixtures, media paths written relative to it."""
    out = tmp_path_factory.mktemp("lf_structured") / "deep" / "dataset_info"
    out.mkdir(parents=True)
    entries = {}
    for name, items in converted.items():
        rows, entries[name] = format_split(items, f"{name}.jsonl", out_dir=out)
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        (out / f"{name}.jsonl").write_text(text, encoding="utf-8")
    (out / "dataset_info.json").write_text(json.dumps(entries, ensure_ascii=True), encoding="utf-8")
    return out


def test_lf_reads_tools_calls_and_observations_in_their_roles(dataset_dir, converted, tiny_qwen3, tmp_path):
    rows = lf_encode(tiny_qwen3, dataset_dir, "glaive", "qwen3_nothink", tmp_path, cutoff_len=8192)
    assert len(rows) == len(converted["glaive"])  # LF dropped no conversation as "abnormal"
    for row, sample in zip(rows, converted["glaive"], strict=True):
        names = [t["name"] for t in json.loads(sample.tools)]
        assert all(f'"name": "{n}"' in row["prompt"] for n in names)  # the tools reach the system prompt
        calls = [json.loads(t.content) for t in sample.turns if t.role == "function_call"]
        assert row["labels"].count("<tool_call>") == len(calls)  # each call is trained, as a call
        assert all(json.dumps(c["arguments"], ensure_ascii=False) in row["labels"] for c in calls)
        for obs in (t.content for t in sample.turns if t.role == "observation"):
            assert obs in row["prompt"] and obs not in row["labels"]  # tool results are read, never trained


def test_lf_reads_images_from_relative_paths_beside_text_rows(dataset_dir, converted, tiny_gemma3, tmp_path):
    entry = json.loads((dataset_dir / "dataset_info.json").read_text(encoding="utf-8"))["mllm"]
    first = json.loads((dataset_dir / "mllm.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert entry["columns"]["images"] == "images" and first["images"][0].startswith("../")
    rows = lf_encode(tiny_gemma3, dataset_dir, "mllm", "gemma3", tmp_path, cutoff_len=4096)
    assert len(rows) == len(converted["mllm"])
    for row, sample in zip(rows, converted["mllm"], strict=True):
        assert row["prompt"].count("<start_of_image>") == len(sample.images)  # every image reached the processor
        assert "<image>" not in row["prompt"] + row["labels"]  # no literal placeholder left as text


def test_llamafactory_cli_trains_two_steps_on_the_tool_calling_dataset(tmp_path, tiny_qwen3, run_lf):
    out = tmp_path / "dataset_info"
    assert main(["sharegpt", str(GLAIVE), "--name", "glaive", "--out", str(out), "--split", "100/0/0", "--quiet"]) == 0
    info = json.loads((out / "dataset_info.json").read_text(encoding="utf-8"))["glaive_train"]
    assert info["columns"]["tools"] == "tools" and info["tags"]["function_tag"] == "function_call"
    recipe = {"model_name_or_path": str(tiny_qwen3), "stage": "sft", "do_train": True, "finetuning_type": "lora",
              "lora_rank": 4, "lora_target": "all", "dataset": "glaive_train", "dataset_dir": str(out),
              "template": "qwen3_nothink", "cutoff_len": 1024, "max_samples": 8, "output_dir": str(tmp_path / "run"),
              "per_device_train_batch_size": 2, "max_steps": 2, "logging_steps": 1, "learning_rate": 1.0e-4,
              "report_to": "none", "bf16": False, "dataloader_num_workers": 0}
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(recipe, allow_unicode=True), encoding="utf-8")
    run_lf(["train", str(tmp_path / "train.yaml")], cwd=tmp_path)
    state = json.loads((tmp_path / "run" / "trainer_state.json").read_text(encoding="utf-8"))
    assert state["global_step"] == 2 and all(log.get("loss", 1) > 0 for log in state["log_history"])
