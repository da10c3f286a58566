"""Architecture numbers of a causal LM: what the memory model needs and presets carry.

Plain data shared by recipe/models.py (presets, config.json reading) and recipe/memory.py (VRAM model).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Shape:
    """Transformer dimensions. ``params`` counts the language model's weights, embeddings included (in units, not
    billions); a multimodal tower is counted apart in ``vision_params``."""

    params: int
    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied_embeddings: bool = False
    vision_params: int = 0  # multimodal towers (gemma-3's SigLIP): loaded and frozen, never LoRA-trained

    @property
    def linear_params_per_layer(self) -> int:
        """Weights of the Linear modules LoRA targets with ``lora_target: all`` in one decoder layer."""
        attn = self.hidden * self.head_dim * (self.heads + 2 * self.kv_heads) + self.heads * self.head_dim * self.hidden
        mlp = 3 * self.hidden * self.intermediate
        return attn + mlp
