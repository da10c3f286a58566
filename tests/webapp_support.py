"""Test helpers for the web app: tiny LoRA adapters trained for real with llamafactory-cli, and planted faults."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

ENTRY = {"file_name": "d.jsonl", "formatting": "sharegpt", "columns": {"messages": "messages"},
         "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant",
                  "system_tag": "system"}}


def dataset(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"messages": [{"role": "user", "content": f"问题{i}：什么是对称加密？"},
                          {"role": "assistant", "content": f"对称加密用同一个密钥加密和解密。{i}"}]} for i in range(12)]
    (folder / "d.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    (folder / "d_test.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows[:3]), "utf-8")
    info = {"d": ENTRY, "d_test": {**ENTRY, "file_name": "d_test.jsonl"}}
    (folder / "dataset_info.json").write_text(json.dumps(info), "utf-8")
    return folder


def train_adapter(run_lf, model: Path, data: Path, out: Path, lr: float, seed: int) -> Path:
    """A real LoRA run of a few steps; a large learning rate so the adapter visibly moves the logits."""
    recipe = {"model_name_or_path": str(model), "template": "qwen3", "stage": "sft", "do_train": True,
              "finetuning_type": "lora", "lora_target": "all", "dataset": "d", "dataset_dir": str(data),
              "cutoff_len": 64, "max_steps": 3, "per_device_train_batch_size": 2, "learning_rate": lr, "seed": seed,
              "output_dir": str(out), "report_to": "none", "save_strategy": "no"}
    path = out.with_suffix(".yaml")
    path.write_text(yaml.safe_dump(recipe), "utf-8")
    run_lf(["train", str(path)], cwd=out.parent)
    return out


def untrained_adapter(model: Path, out: Path) -> Path:
    """A LoRA adapter saved straight after init: B = 0, so it answers exactly like the base (the planted fault)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(model)
    get_peft_model(base, LoraConfig(r=4, target_modules="all-linear")).save_pretrained(out)
    return out


def foreign_adapter(adapter: Path, out: Path, other_base: str) -> Path:
    """A copy of ``adapter`` that says it was trained on another base model."""
    shutil.copytree(adapter, out)
    cfg = json.loads((out / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = other_base
    (out / "adapter_config.json").write_text(json.dumps(cfg))
    return out
