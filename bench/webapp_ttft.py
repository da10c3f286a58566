"""Time to first token: base + 3 LoRA adapters in one batched generate (the web app's engine) vs the base alone.

A random Qwen3-shaped model (hidden 512, 8 layers, ~40M params; the tests' BPE tokenizer) and three random rank-8
LoRA adapters on every linear layer are built in a temp folder; both engines answer the same prompt greedily,
REPEAT times each, interleaved; the medians and their ratio are printed (target ≤1.3×).

    python bench/webapp_ttft.py [--repeat 5] [--new-tokens 32]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def build(folder: Path) -> tuple[Path, dict[str, str]]:
    import torch
    from peft import LoraConfig, get_peft_model
    from tiny_models import build_tokenizer
    from transformers import AutoTokenizer, Qwen3Config, Qwen3ForCausalLM

    build_tokenizer(folder / "base")
    tok = AutoTokenizer.from_pretrained(folder / "base")
    cfg = Qwen3Config(vocab_size=len(tok), hidden_size=512, intermediate_size=1536, num_hidden_layers=8,
                      num_attention_heads=8, num_key_value_heads=4, head_dim=64, tie_word_embeddings=True,
                      bos_token_id=None, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, dtype="float32")
    torch.manual_seed(0)
    Qwen3ForCausalLM(cfg).save_pretrained(folder / "base")
    adapters = {}
    for i in range(3):
        base = Qwen3ForCausalLM.from_pretrained(folder / "base")
        lora = LoraConfig(r=8, target_modules="all-linear", init_lora_weights=False)  # random B: a "trained" adapter
        get_peft_model(base, lora).save_pretrained(folder / f"a{i}")
        adapters[f"a{i}"] = str(folder / f"a{i}")
    return folder / "base", adapters


def main(argv: list[str] | None = None) -> int:
    from llamafactory_ext.serve.engine import Engine, Settings

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--new-tokens", type=int, default=32)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        base, adapters = build(Path(tmp))
        recipe = {"model_name_or_path": str(base), "template": "qwen3"}
        single, multi = Engine(recipe, {}), Engine(recipe, adapters)
        single.load()
        multi.load()
        settings = Settings(max_new_tokens=args.new_tokens, greedy=True)
        prompt = "请解释 AES 的轮函数由哪几步组成，并说明每一步的作用。"
        runs: dict[str, list[tuple[float, float]]] = {"single": [], "multi": []}
        for _ in range(args.repeat):
            for name, engine in (("single", single), ("multi", multi)):
                t0 = time.perf_counter()
                answers, _ = engine.generate(prompt, settings, engine.columns)
                runs[name].append((max(a.ttft for a in answers), time.perf_counter() - t0))
    ttft = {k: statistics.median(r[0] for r in v) for k, v in runs.items()}
    total = {k: statistics.median(r[1] for r in v) for k, v in runs.items()}
    print(f"columns: single = base; multi = base + {len(adapters)} adapters, one batched generate")
    print(f"TTFT   single {ttft['single'] * 1000:8.1f} ms   multi {ttft['multi'] * 1000:8.1f} ms   "
          f"ratio {ttft['multi'] / ttft['single']:.2f}x (target <= 1.3x)")
    print(f"total  single {total['single'] * 1000:8.1f} ms   multi {total['multi'] * 1000:8.1f} ms   "
          f"ratio {total['multi'] / total['single']:.2f}x ({args.new_tokens} new tokens, median of {args.repeat})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
