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
