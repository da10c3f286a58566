"""Save a random-weight gemma-3-4b-it-shaped Gemma3ForConditionalGeneration (vision tower included) with a
Gemma3Processor, so LF's `gemma3` template (which needs the processor) can be measured.

    python bench/gpu/build_gemma_mm.py OUT_DIR
The tokenizer is a small BPE with gemma's special tokens (tests/tiny_models.py); the model keeps the real
262,208-entry vocabulary, so logits cost what they cost on the real model.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))


def main(out: Path) -> None:
    import torch
    from tiny_models import GEMMA_CHAT_TEMPLATE, _gemma_tokenizer
    from transformers import (
        Gemma3Config,
        Gemma3ForConditionalGeneration,
        Gemma3ImageProcessor,
        Gemma3Processor,
        Gemma3TextConfig,
        SiglipVisionConfig,
    )

    if (out / "config.json").exists():
        return
    t0 = time.time()
    tok = _gemma_tokenizer(out)
    proc = Gemma3Processor(image_processor=Gemma3ImageProcessor(size={"height": 896, "width": 896},
                                                                image_mean=[0.5] * 3, image_std=[0.5] * 3),
                           tokenizer=tok, chat_template=GEMMA_CHAT_TEMPLATE, image_seq_length=256)
    proc.save_pretrained(out)
    ids = tok.convert_tokens_to_ids
    text = Gemma3TextConfig(vocab_size=262208, hidden_size=2560, intermediate_size=10240, num_hidden_layers=34,
                            num_attention_heads=8, num_key_value_heads=4, head_dim=256, query_pre_attn_scalar=256,
                            sliding_window=1024, max_position_embeddings=131072,
                            layer_types=[("full_attention" if (i + 1) % 6 == 0 else "sliding_attention")
                                         for i in range(34)],
                            pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                            eos_token_id=[tok.eos_token_id, ids("<end_of_turn>")])
    vision = SiglipVisionConfig(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16,
                                image_size=896, patch_size=14, vision_use_head=False)
    cfg = Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=256,
                       boi_token_index=ids("<start_of_image>"), eoi_token_index=ids("<end_of_image>"),
                       image_token_index=ids("<image_soft_token>"))
    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)
    with torch.device("cuda"):
        model = Gemma3ForConditionalGeneration(cfg)
    torch.set_default_dtype(torch.float32)
    model.config.dtype = torch.bfloat16
    model.save_pretrained(out, max_shard_size="5GB")
    n = sum(p.numel() for p in model.parameters())
    print(f"gemma3-mm: {n / 1e9:.3f}B params saved in {time.time() - t0:.1f}s", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
