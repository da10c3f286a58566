"""Choose how a run uses the GPU: LoRA or QLoRA, micro-batch, checkpointing, DDP or ZeRO-3 (pure).

Every candidate is priced by the VRAM model (memory.py) and scored by a rough speed model calibrated on the
H100 table (bench/vram_calibration.json); the fastest candidate that fits wins. 16-bit LoRA is preferred over 4-bit
QLoRA whenever it fits (QLoRA's quantization error costs quality), and DDP over ZeRO-3 (ZeRO-3 gathers weights
every layer).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import RecipeError
from .hardware import Hardware
from .memory import Estimate, TrainSetup, estimate, fits
from .shape import Shape

BATCHES = (16, 12, 8, 6, 4, 3, 2, 1)
UTIL_TOKENS = 4096  # why: below ~4k tokens per micro-batch kernels are too small to fill an H100 (calibration rows)
GC_SPEED = 0.75  # why: checkpointing recomputes the forward pass, ~1/3 more compute (C1 vs C2 in the table)
QUANT_PREFERENCE = 0.6  # why: not a speed figure — QLoRA is chosen only when 16-bit LoRA does not fit at all
ZERO3_SPEED = 0.85  # why: per-layer all-gathers of the sharded weights
OFFLOAD_SPEED = 0.3  # why: optimizer and weights cross PCIe every step
LIGER_SPEED = 1.15  # why: fused kernels, C1 vs B1 in the calibration table (+41% there; conservative here)


@dataclass(frozen=True)
class Layout:
    setup: TrainSetup
    estimate: Estimate
    score: float
    zero: str | None  # None (DDP / single GPU), "z3" or "z3_offload"


def speed(setup: TrainSetup) -> float:
    """Relative tokens/s of a setup (only the order matters)."""
    s = setup.tokens / (setup.tokens + UTIL_TOKENS)
    s *= 1.0 if not setup.grad_ckpt else GC_SPEED
    s *= LIGER_SPEED if setup.liger else 1.0
    return s


def candidates(shape: Shape, hw: Hardware, *, cutoff: int, longest: int, packing: bool, liger: bool,
               rank: int, quant: str, max_batch: int = BATCHES[0], act_bytes: int = 2) -> list[Layout]:
    """Every (bits, ZeRO, checkpointing, batch) combination that fits, best first; the micro-batch never exceeds
    ``max_batch`` (the effective batch per GPU), so a small dataset keeps its optimizer steps."""
    world = hw.world_size
    out = []
    for bits in _bits(quant):
        for zero in _zero_modes(world, bits):
            for gc in (False, True):
                for batch in (b for b in BATCHES if b <= max_batch):
                    setup = TrainSetup(batch=batch, cutoff_len=cutoff, packing=packing, liger=liger, grad_ckpt=gc,
                                       quant_bit=bits, lora_rank=rank, longest_row=longest,
                                       zero_stage=3 if zero else 0, n_gpus=world,
                                       offload_optimizer=zero == "z3_offload", offload_params=zero == "z3_offload",
                                       act_bytes=act_bytes)
                    est = estimate(shape, setup)
                    if hw.gpu and fits(est, hw.gpu.vram_gib):
                        out.append(Layout(setup, est, _score(setup, zero), zero))
                        break  # the largest batch that fits for this (bits, zero, gc)
    # DDP whenever it fits at a given precision: ZeRO-3 only where that precision needs the weights sharded
    ddp_bits = {lay.setup.quant_bit for lay in out if lay.zero is None}
    out = [lay for lay in out if lay.zero is None or lay.setup.quant_bit not in ddp_bits]
    # QLoRA only where 16-bit LoRA does not fit (offloading aside, which is slower than QLoRA)
    if any(lay.setup.quant_bit is None and lay.zero != "z3_offload" for lay in out):
        out = [lay for lay in out if lay.setup.quant_bit is None]
    return sorted(out, key=lambda lay: -lay.score)


def _bits(quant: str) -> tuple[int | None, ...]:
    return {"auto": (None, 4), "lora": (None,), "qlora": (4,)}[quant]


def _zero_modes(world: int, bits: int | None) -> tuple[str | None, ...]:
    # QLoRA stays on DDP: bnb 4-bit under ZeRO-3 needs extra settings LF does not write for you.
    return (None,) if world == 1 or bits else (None, "z3", "z3_offload")


def _score(setup: TrainSetup, zero: str | None) -> float:
    s = speed(setup) * (QUANT_PREFERENCE if setup.quant_bit else 1.0)
    return s * {None: 1.0, "z3": ZERO3_SPEED, "z3_offload": OFFLOAD_SPEED}[zero]


def choose(shape: Shape, hw: Hardware, force: bool = False, **kw) -> Layout:
    """The best layout, or a RecipeError that says what the smallest option would need (with ``force``: that
    smallest option, which the caller must flag as not fitting)."""
    found = candidates(shape, hw, **kw)
    if found:
        return found[0]
    smallest = TrainSetup(batch=1, cutoff_len=kw["cutoff"], packing=kw["packing"], liger=kw["liger"], grad_ckpt=True,
                          quant_bit=None if kw["quant"] == "lora" else 4, lora_rank=kw["rank"],
                          longest_row=kw["longest"], act_bytes=kw.get("act_bytes", 2), n_gpus=hw.world_size or 1)
    est = estimate(shape, smallest)
    if force:
        return Layout(smallest, est, 0.0, None)
    need = est.need_gib
    have = hw.gpu.vram_gib if hw.gpu else 0
    raise RecipeError(
        f"the model does not fit on {hw.gpus}x {have:.0f} GiB even as 4-bit QLoRA, batch 1, checkpointing, "
        f"cutoff_len {kw['cutoff']} (needs ~{need:.1f} GiB): lower cutoff_len (--set cutoff_len=…), choose a smaller "
        "model, plan for a bigger GPU (--gpu), or write it anyway with --force"
    )
