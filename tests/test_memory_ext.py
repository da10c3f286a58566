"""The VRAM model on shapes it was NOT fitted on: Qwen2.5-1.5B and 7B and the multimodal gemma-3-4b-it, measured on an
H100 (bench/vram_calibration_ext.json)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llamafactory_ext.recipe.memory import TrainSetup, estimate
from llamafactory_ext.recipe.models import get_preset

ROWS = json.loads((Path(__file__).resolve().parents[1] / "bench" / "vram_calibration_ext.json").read_text())["rows"]
PRESET = {"qwen2.5-1.5b": "qwen2.5-1.5b-instruct", "qwen2.5-7b": "qwen2.5-7b-instruct",
          "gemma-3-4b-it-multimodal": "gemma-3-4b-it"}


@pytest.mark.parametrize("row", ROWS, ids=[r["name"] for r in ROWS])
def test_unseen_shapes_predicted_within_10_percent(row):
    setup = TrainSetup(batch=row["per_device_train_batch_size"], cutoff_len=row["cutoff_len"], packing=row["packing"],
                       liger=row["liger"], grad_ckpt=row["gradient_checkpointing"], quant_bit=row["quantization_bit"],
                       lora_rank=row["lora_rank"])
    est = estimate(get_preset(PRESET[row["model"]]).shape, setup)
    assert est.total_gib == pytest.approx(row["peak_alloc_gib"], rel=0.10), est.explain()


def test_fp16_prices_activations_as_lf_runs_them():
    """LF's fp16 keeps bf16 weights and switches autocast only: the residual stream is fp32, activations double."""
    shape = get_preset("qwen2.5-1.5b-instruct").shape
    base = dict(batch=4, cutoff_len=2048, packing=True, liger=False, grad_ckpt=True, quant_bit=None, lora_rank=16)
    bf16, fp16 = estimate(shape, TrainSetup(**base)), estimate(shape, TrainSetup(**base, act_bytes=4))
    assert fp16.terms["weights"] == bf16.terms["weights"]
    assert fp16.terms["activations"] == pytest.approx(2 * bf16.terms["activations"], rel=0.05)


def test_inference_memory_counts_the_whole_model_and_the_kv_cache():
    from llamafactory_ext.recipe.memory import inference_need_gib

    shape = get_preset("qwen2.5-7b-instruct").shape
    one = inference_need_gib(shape, batch=1, prompt=1024, new_tokens=1024)
    assert one > 14.2  # bf16 weights alone: the predict companion cannot run on a 16 GB card (15.x usable)
    assert inference_need_gib(shape, batch=1, prompt=1024, new_tokens=1024, quant_bit=4) < 0.5 * one
    assert inference_need_gib(shape, batch=8, prompt=1024, new_tokens=8192) > one + 3.5  # 4 GiB of KV cache (GQA)
