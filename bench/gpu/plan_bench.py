"""Write the recipes the GPU bench compares: LF's example values (the baseline) and our planner's recipe for each
GPU budget, all on the kit's random-weight Qwen3-4B-shaped model and synthetic Chinese data.

    python bench/gpu/plan_bench.py ASSETS_DIR OUT_DIR 80 24 16 8
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from llamafactory_ext.build_recipe import write_plan
from llamafactory_ext.recipe.facts import DataFacts
from llamafactory_ext.recipe.hardware import describe
from llamafactory_ext.recipe.models import preset_from_local
from llamafactory_ext.recipe.plan import Choices, plan

# LLaMA-Factory examples/train_lora/qwen3_lora_sft.yaml values (warmup_ratio → warmup_steps for transformers 5)
EXAMPLE = dict(trust_remote_code=True, stage="sft", do_train=True, finetuning_type="lora", lora_rank=8,
               lora_target="all", template="qwen3", cutoff_len=2048, preprocessing_num_workers=16,
               dataloader_num_workers=4, logging_steps=10, save_steps=500, plot_loss=True, overwrite_output_dir=True,
               save_only_model=False, report_to="none", per_device_train_batch_size=1, gradient_accumulation_steps=8,
               learning_rate=1.0e-4, num_train_epochs=3.0, lr_scheduler_type="cosine", warmup_steps=0.1, bf16=True,
               ddp_timeout=180000000)


def main(assets: Path, out: Path, budgets: list[int]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    stats = json.loads((assets / "data" / "length_stats.json").read_text())
    facts = DataFacts(name="syn_zh", train=int(stats["n"]), tokens_p50=int(stats["median"]),
                      tokens_p99=int(stats["p99"]), tokens_max=int(stats["max"]), with_reasoning=0.35)
    preset = preset_from_local(assets / "model", "qwen3", "hybrid")
    example = dict(EXAMPLE, model_name_or_path=str(assets / "model"), dataset="syn_zh", dataset_dir=str(assets / "data"),
                   output_dir="/tmp/measure/example")
    import yaml

    (out / "example.yaml").write_text(yaml.safe_dump(example, sort_keys=False))
    for gib in budgets:
        result = plan(preset, str(assets / "model"), facts, describe(f"1x{gib}GB" if gib != 80 else "1xH100-80GB"),
                      Choices(dataset_dir=str(assets / "data")))
        # the kit's data file is one dataset, syn_zh (no val split): train on it, no eval
        written = write_plan(result, out, f"planned_{gib}", ["dataset=syn_zh"],
                             describe("1xH100-80GB"))
        print(f"{gib} GiB: {written[''].name}: " + "; ".join(n for n in result.notes if n.startswith("memory")))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), [int(x) for x in sys.argv[3:]])
