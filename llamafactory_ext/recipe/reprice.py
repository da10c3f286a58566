"""Overrides skip the planner (build_recipe --set, --parallel): re-apply its rules and re-price memory for the
recipe as it will run (RECIPE flow, between render and write)."""

from __future__ import annotations

from pathlib import Path


def recheck(result, train, preset, hw, force: bool = False) -> None:
    """Overrides skip the planner: re-apply the thinking-only rule and re-price memory with every memory-relevant
    key (batch, cutoff, packing, quantization, checkpointing, liger, attention, DeepSpeed, precision)."""
    from ..errors import RecipeError, UsageError
    from .memory import estimate, fits

    if preset is not None and preset.reasoning == "thinking_only" and (
            train.value("template") != preset.template or train.value("enable_thinking") is False):
        raise UsageError(f"{preset.key} thinks in every answer: keep template {preset.template} and enable_thinking "
                         "true, or plan for an instruct model (e.g. --model qwen3-4b-instruct)")
    s = result.layout.setup
    new = setup_of(train, s, hw)
    if new == s or hw.gpu is None or preset is None:
        return
    est = estimate(preset.shape, new)
    ok = fits(est, hw.gpu.vram_gib)
    what = (f"batch {new.batch}, cutoff {new.cutoff_len}, packing {'on' if new.packing or new.neat_packing else 'off'}, "
            f"checkpointing {'on' if new.grad_ckpt else 'off'}, ZeRO {new.zero_stage or 'off'}")
    if not ok and not force:
        raise RecipeError(f"--set: the changed recipe needs ~{est.need_gib:.1f} GiB of {hw.gpu.vram_gib:g} GiB per "
                          f"GPU ({what}) and does not fit: drop or lower the override, or pass --force to write it")
    verdict = "fits" if ok else "DOES NOT FIT (written because of --force; expect OOM)"
    result.notes.append(f"after --set: ~{est.need_gib:.1f} GiB needed of {hw.gpu.vram_gib:g} GiB ({verdict}; {what})")


def setup_of(train, s, hw):
    """The TrainSetup a (possibly overridden) train recipe runs."""
    from dataclasses import replace

    from .rules import zero_stage

    ds = train.value("deepspeed")
    zero = zero_stage(ds) or 0
    offload = bool(ds) and "offload" in Path(ds).name
    cutoff = train.value("cutoff_len") or 2048
    return replace(s, batch=train.value("per_device_train_batch_size"), cutoff_len=cutoff, longest_row=cutoff,
                   packing=bool(train.value("packing")), neat_packing=bool(train.value("neat_packing")),
                   quant_bit=train.value("quantization_bit"), grad_ckpt=not train.value("disable_gradient_checkpointing"),
                   liger=bool(train.value("enable_liger_kernel")) and s.liger,
                   attention="eager" if train.value("flash_attn") == "disabled" else "sdpa",
                   act_bytes=4 if train.value("fp16") else s.act_bytes,
                   grad_accum=train.value("gradient_accumulation_steps") or 1,
                   zero_stage=zero, n_gpus=hw.world_size or 1,
                   offload_optimizer=offload and zero > 0, offload_params=offload and zero == 3)
