"""Save a random-weight bf16 model of a given architecture next to the kit's tokenizer, for calibration runs.

    python bench/gpu/build_shape.py ASSETS_DIR NAME    NAME in SHAPES (qwen2.5-1.5b, qwen2.5-7b)
Shapes are the real configs' numbers (llamafactory_ext.recipe.models presets); weights are random.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

SHAPES = {
    "qwen2.5-1.5b": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                         num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True),
    "qwen2.5-7b": dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                       num_key_value_heads=4, vocab_size=152064, tie_word_embeddings=False),
}


def main(assets: Path, name: str) -> None:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    out = assets / name
    if (out / "config.json").exists():
        return
    t0 = time.time()
    cfg = Qwen2Config(rms_norm_eps=1e-6, rope_theta=1000000.0, max_position_embeddings=32768, bos_token_id=0,
                      eos_token_id=2, pad_token_id=0, **SHAPES[name])
    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)
    with torch.device("cuda"):
        model = Qwen2ForCausalLM(cfg)
    torch.set_default_dtype(torch.float32)
    model.config.dtype = torch.bfloat16
    model.save_pretrained(out, max_shard_size="5GB")
    for f in (assets / "model").glob("tokenizer*"):
        shutil.copy(f, out / f.name)
    for f in (assets / "model").glob("special_tokens_map.json"):
        shutil.copy(f, out / f.name)
    n = sum(p.numel() for p in model.parameters())
    print(f"{name}: {n / 1e9:.3f}B params saved in {time.time() - t0:.1f}s", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
