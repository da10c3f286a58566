"""Hyper-parameters by dataset size: documented presets, overridable with key=value like any recipe key.

| size            | epochs | learning rate | LoRA r / alpha / dropout | warmup | effective batch |
|-----------------|--------|---------------|--------------------------|--------|-----------------|
| small  (<100)   | 5      | 2.0e-4        | 8 / 16 / 0.05            | 0.1    | 4               |
| medium (100–1k) | 3      | 1.0e-4        | 16 / 32 / 0.05           | 0.1    | 8               |
| large  (>1k)    | 2      | 1.0e-4        | 32 / 64 / 0.0            | 0.03   | 16              |

Why: few samples need more passes and a higher rate to move at all, a small rank and some dropout to avoid
memorising them, and a small batch so an epoch still has several optimizer steps; with many samples a larger
rank has the data to fit, two epochs avoid over-fitting, and dropout slows LoRA more than it helps.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Hyper:
    size: str
    epochs: float
    learning_rate: float
    lora_rank: int
    lora_alpha: int
    lora_dropout: float
    warmup: float  # written as warmup_steps: a float below 1 is a ratio (transformers >= 5.2 dropped warmup_ratio)
    effective_batch: int  # samples (or packed rows) per optimizer step, over all GPUs


SMALL = Hyper("small", 5.0, 2.0e-4, 8, 16, 0.05, 0.1, 4)
MEDIUM = Hyper("medium", 3.0, 1.0e-4, 16, 32, 0.05, 0.1, 8)
LARGE = Hyper("large", 2.0, 1.0e-4, 32, 64, 0.0, 0.03, 16)


def hyper_for(train_samples: int) -> Hyper:
    """The preset for a training set of this size.

    >>> hyper_for(40).size, hyper_for(500).size, hyper_for(1400).size
    ('small', 'medium', 'large')
    """
    if train_samples < 100:
        return SMALL
    return MEDIUM if train_samples <= 1000 else LARGE
