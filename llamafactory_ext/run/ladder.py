"""The OOM ladder (RUN flow: worker reports out-of-memory → **next rung** → resume from the last checkpoint).

Pure: (LF args, what this machine has) → the settings to change for the next attempt, or None when the ladder is
exhausted. Rungs, in order, each taken once it applies:

1. Batch: divide `per_device_train_batch_size` by its smallest prime factor and multiply
   `gradient_accumulation_steps` by the same factor, so batch × accumulation × world size (the global batch) and
   therefore the total steps stay the same. Repeats until the per-device batch is 1.
2. Liger kernels (`enable_liger_kernel: true`): fused cross-entropy never materialises the full logits. Needs a
   GPU and the liger-kernel package.
3. Gradient checkpointing back on when the recipe turned it off (`disable_gradient_checkpointing: false`), else
   unsloth's offloaded checkpointing (`use_unsloth_gc: true`, activations kept in CPU memory). LF checkpoints by
   default, so plain checkpointing is only a rung for recipes that disabled it.
4. 4-bit QLoRA (`quantization_bit: 4`): only for LoRA, on a GPU with bitsandbytes, and only when the caller allows
   it (the preset must support 4-bit; it changes the numerics, so it is never silent).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MAX_ATTEMPTS = 3  # the first try plus two restarts: the target is recovery in ≤2 restarts


@dataclass(frozen=True)
class Machine:
    gpu: bool
    liger: bool  # liger-kernel importable
    bitsandbytes: bool
    allow_4bit: bool = False


@dataclass(frozen=True)
class Rung:
    name: str
    changes: dict[str, Any]  # LF key → new value
    why: str


def smallest_factor(n: int) -> int:
    return next((p for p in range(2, int(n**0.5) + 1) if n % p == 0), n)


def _batch(args: dict[str, Any]) -> Rung | None:
    batch = int(args.get("per_device_train_batch_size", 1))
    if batch <= 1:
        return None
    p, accum = smallest_factor(batch), int(args.get("gradient_accumulation_steps", 1))
    return Rung("batch", {"per_device_train_batch_size": batch // p, "gradient_accumulation_steps": accum * p},
                f"per-device batch {batch}→{batch // p}, accumulation {accum}→{accum * p}: global batch unchanged")


def _liger(args: dict[str, Any], machine: Machine) -> Rung | None:
    if args.get("enable_liger_kernel") or not (machine.gpu and machine.liger):
        return None
    return Rung("liger", {"enable_liger_kernel": True}, "fused kernels: the full logits are never materialised")


def _checkpointing(args: dict[str, Any], machine: Machine) -> Rung | None:
    if args.get("disable_gradient_checkpointing"):
        return Rung("checkpointing", {"disable_gradient_checkpointing": False},
                    "gradient checkpointing back on: activations recomputed instead of stored")
    if machine.gpu and not args.get("use_unsloth_gc"):
        return Rung("offload", {"use_unsloth_gc": True}, "offloaded checkpointing: activations kept in CPU memory")
    return None


def _four_bit(args: dict[str, Any], machine: Machine) -> Rung | None:
    ok = machine.allow_4bit and machine.gpu and machine.bitsandbytes and args.get("finetuning_type") == "lora"
    if not ok or args.get("quantization_bit"):
        return None
    return Rung("4bit", {"quantization_bit": 4}, "4-bit QLoRA: base weights in 4 bits (numerics change)")


def next_rung(args: dict[str, Any], machine: Machine) -> Rung | None:
    """The first rung that still applies to `args`, or None (ladder exhausted)."""
    for rung in (_batch(args), _liger(args, machine), _checkpointing(args, machine), _four_bit(args, machine)):
        if rung is not None:
            return rung
    return None


def global_batch(args: dict[str, Any], world_size: int = 1) -> int:
    return int(args.get("per_device_train_batch_size", 1)) * int(args.get("gradient_accumulation_steps", 1)) * world_size
