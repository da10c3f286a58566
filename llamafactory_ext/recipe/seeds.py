"""The committed seed scenarios in recipes/: which model, data and GPU each one plans for.

The shipped crypto corpus is built for real; Belle's facts are those of a 2,000-row sample (build_dataset belle
… --sample 2000, split 70/15/15) because the 290 MB source file is not shipped. tests/test_recipes_committed.py
regenerates every seed and diffs it against recipes/.
"""

from __future__ import annotations

from dataclasses import dataclass

from .facts import DataFacts

# A 2,000-row Belle sample, as build_dataset reports it (token lengths estimated the same way).
BELLE_2K = DataFacts(name="belle", train=1400, val=300, test=300, tokens_p50=180, tokens_p99=900, tokens_max=1400)


@dataclass(frozen=True)
class Seed:
    stem: str
    model: str
    gpu: str
    dataset: str  # "crypto" is built from examples/crypto_notes; "belle" uses BELLE_2K
    quant: str = "auto"
    why: str = ""


SEEDS = (
    Seed("qwen3_thinking_lora", "qwen3-4b-thinking", "1x24GB", "crypto",
         why="the main job: thinking model on the shipped crypto notes, one 24 GB card"),
    Seed("gemma3_qlora_belle", "gemma-3-4b-it", "1x3070", "belle", quant="qlora",
         why="4-bit QLoRA on a 2,000-sample Belle set, an 8 GB Ampere card (gemma-3 needs bf16)"),
    Seed("qwen25_1.5b_lora", "qwen2.5-1.5b-instruct", "1x12GB", "belle", why="small instruct model, 12 GB card"),
    Seed("qwen25_7b_lora_ds_z3", "qwen2.5-7b-instruct", "2x16GB", "belle",
         why="7B bf16 LoRA does not fit one 16 GB card: DeepSpeed ZeRO-3 over two"),
)
