"""Run length and multi-GPU scaling (pure): optimizer steps, checkpoint cadence, global batch and expected speed-up.

RECIPE flow: plan.py asks here how many rows an epoch has, how far the global batch may grow with the GPU count,
how often to save and evaluate, and what the extra GPUs buy, so the printed plan can say it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import RecipeError
from .facts import DataFacts
from .hardware import Hardware
from .layout import OFFLOAD_SPEED, ZERO3_SPEED, Layout, choose, speed

MIN_STEPS_PER_EPOCH = 8  # why: fewer optimizer steps per epoch leave warm-up and the cosine schedule nothing to shape
CHECKPOINTS_PER_RUN = 4  # why: a crash loses at most a quarter of the run, and eval/best-model has points to compare
KEEP_CHECKPOINTS = 2  # why: the newest (to resume) and the best by eval loss (HF keeps it on top of the limit)
DDP_EFFICIENCY = 0.95  # why: LoRA gradients are a few MB, so DDP's all-reduce hides behind the backward pass
ZERO_SPEED = {None: 1.0, "z3": ZERO3_SPEED, "z3_offload": OFFLOAD_SPEED}  # per-layer all-gathers; PCIe traffic
QLORA_SPEED = 0.75  # why: bnb dequantizes every 4-bit weight for each matmul, ~25-35% slower than 16-bit LoRA


@dataclass(frozen=True)
class Scale:
    gpus_used: int  # how many of the GPUs the global batch grew for (1..world)
    effective_batch: int  # global: samples (or packed rows) per optimizer step
    lr_factor: float  # learning rate multiplier: sqrt(global batch growth), the square-root rule for Adam
    steps: int  # optimizer steps of the whole run


def rows_per_epoch(facts: DataFacts, cutoff: int, packed: bool) -> int:
    """Training rows in one epoch: samples, or packed rows of cutoff_len (the p50 length stands in for the mean)."""
    if not packed:
        return facts.train
    return max(1, math.ceil(facts.train * facts.tokens_p50 / cutoff))


def grow_batch(base: int, rows: int, world: int, fixed: int | None) -> tuple[int, int]:
    """(global batch, GPUs it grew for). The batch grows with the GPU count while every epoch keeps
    MIN_STEPS_PER_EPOCH optimizer steps; a batch the user fixed (--effective-batch) never grows."""
    if fixed:
        return fixed, 1
    k = world
    while k > 1 and rows / (base * k) < MIN_STEPS_PER_EPOCH:
        k -= 1
    return base * k, k


def run_steps(rows: int, effective_batch: int, epochs: float) -> int:
    return max(1, math.ceil(math.ceil(rows / effective_batch) * epochs))


def save_every(steps: int) -> int:
    """Checkpoint (and evaluate) every this many optimizer steps: CHECKPOINTS_PER_RUN times per run."""
    return max(1, math.ceil(steps / CHECKPOINTS_PER_RUN))


def scale(facts: DataFacts, hw: Hardware, base_batch: int, epochs: float, cutoff: int, packed: bool,
          fixed: int | None = None) -> Scale:
    rows = rows_per_epoch(facts, cutoff, packed)
    eff, k = grow_batch(base_batch, rows, max(1, hw.world_size), fixed)
    lr_factor = 1.0 if fixed else math.sqrt(eff / base_batch)
    return Scale(gpus_used=k, effective_batch=eff, lr_factor=lr_factor, steps=run_steps(rows, eff, epochs))


def speedup(layout: Layout, hw: Hardware, single: Layout | None) -> float | None:
    """Expected wall-clock speed-up of this layout on every GPU over the best single-GPU layout (None: no single GPU
    layout fits). Throughput per GPU follows layout.speed, ZeRO and QLoRA slow-downs and DDP's all-reduce; never
    more than linear (the speed model cannot promise more)."""
    if single is None:
        return None
    ratio = hw.world_size * DDP_EFFICIENCY * throughput(layout) / throughput(single)
    return min(ratio, hw.world_size * DDP_EFFICIENCY)


def throughput(layout: Layout) -> float:
    """Relative tokens/s of one GPU running this layout."""
    return speed(layout.setup) * ZERO_SPEED[layout.zero] * (QLORA_SPEED if layout.setup.quant_bit else 1.0)


def single_gpu_layout(hw: Hardware, **kw) -> Layout | None:
    """The layout one GPU of the same card would run (for the speed-up), or None when it does not fit one."""
    if hw.gpu is None:
        return None
    one = hw.model_copy(update={"gpus": 1, "nodes": 1, "gpu": hw.gpu.model_copy(update={"count": 1})})
    try:
        return choose(kw.pop("shape"), one, **kw)
    except RecipeError:
        return None

