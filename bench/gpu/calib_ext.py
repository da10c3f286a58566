"""Write the YAMLs of the calibration extension (Qwen2.5 1.5B / 7B shapes, multimodal gemma-3-4b) for measure.py.

    python bench/gpu/calib_ext.py ASSETS_DIR OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

BASE = dict(trust_remote_code=True, stage="sft", do_train=True, finetuning_type="lora", lora_rank=8,
            lora_target="all", template="qwen", cutoff_len=2048, dataset="syn_zh", report_to="none",
            learning_rate=1.0e-4, lr_scheduler_type="cosine", bf16=True, flash_attn="sdpa", packing=True,
            gradient_accumulation_steps=1)
LIGER = dict(enable_liger_kernel=True)
VARIANTS = {
    "Q15_pack_liger_gc_bs4": ("qwen2.5-1.5b", dict(per_device_train_batch_size=4, **LIGER)),
    "Q15_pack_gc_bs4": ("qwen2.5-1.5b", dict(per_device_train_batch_size=4)),
    "Q15_q4_pack_liger_gc_bs4": ("qwen2.5-1.5b", dict(per_device_train_batch_size=4, quantization_bit=4, **LIGER)),
    "Q7_pack_liger_gc_bs2": ("qwen2.5-7b", dict(per_device_train_batch_size=2, **LIGER)),
    "Q7_q4_pack_liger_gc_bs2": ("qwen2.5-7b", dict(per_device_train_batch_size=2, quantization_bit=4, **LIGER)),
    "GMM_pack_liger_gc_bs4": ("gemma3_mm", dict(per_device_train_batch_size=4, template="gemma3", **LIGER)),
    "GMM_q4_pack_liger_gc_bs4": ("gemma3_mm", dict(per_device_train_batch_size=4, template="gemma3", quantization_bit=4,
                                                   **LIGER)),
    "Q7_pack_liger_nogc_bs1": ("qwen2.5-7b", dict(per_device_train_batch_size=1, disable_gradient_checkpointing=True,
                                                  **LIGER)),
}


def main(assets: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, (shape, extra) in VARIANTS.items():
        cfg = dict(BASE, model_name_or_path=str(assets / shape), dataset_dir=str(assets / "data"), **extra)
        (out / f"{name}.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        print(name, shape)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
