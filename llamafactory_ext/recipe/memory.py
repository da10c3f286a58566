"""VRAM model of a LoRA / QLoRA SFT step under LLaMA-Factory 0.9.5: (Shape, TrainSetup) -> Estimate.

Pure arithmetic used by recipe/plan.py to size batch, cutoff and method for a GPU; the physics and the fit
against bench/vram_calibration.json (28 H100 runs) are written up in bench/memory_model.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from llamafactory_ext.errors import UsageError, lookup
from llamafactory_ext.recipe.shape import Shape

GIB = 2**30

# --- weights -------------------------------------------------------------------------------------------
# bnb nf4 with double quant (LF's default): 4-bit codes, one 8-bit absmax per 64-weight block and one fp32
# second-level absmax per 256 blocks. Only decoder Linears are quantized: embeddings, lm_head, norms stay 16-bit.
NF4_BYTES_PER_PARAM = 0.5 + 1 / 64 + 4 / (64 * 256)
INT8_BYTES_PER_PARAM = 1.0  # LLM.int8: one byte per weight; the fp32 per-row scales add ~4/in_features
ADAPTER_BYTES = 4  # LF upcasts trainable LoRA weights to fp32 (and so their grads) unless pure_bf16
LORA_LINEARS = 7  # q, k, v, o, gate, up, down: what ``lora_target: all`` wraps in a decoder layer
NORMS_PER_LAYER = 2  # pre-attention and pre-MLP RMSNorm (Gemma 3 has 4; with GC only one layer is live)

# Optimizer state bytes per trainable parameter.
OPTIMIZER_BYTES = {
    "adamw": 8,  # fp32 m and v
    "adamw_torch": 8,
    "adamw_torch_fused": 8,
    "paged_adamw_32bit": 8,  # paged states can spill to host, but count them on the GPU (worst case)
    "adamw_8bit": 2,  # bnb blockwise 8-bit m and v
    "adamw_bnb_8bit": 2,
    "paged_adamw_8bit": 2,
    "lion": 4,  # one fp32 momentum
    "sgd": 0,  # HF's SGD default has no momentum
    "adafactor": 0,  # factored row/column moments: negligible for LoRA's thin matrices
}

# --- activations and loss --------------------------------------------------------------------------------
HF_NORM_SAVE_BYTES = 4  # HF RMSNorm saves its fp32 upcast of the input; Liger's fused norm saves the bf16 input
# HF ForCausalLMLoss upcasts the logits to fp32; in its backward the saved fp32 log-softmax, its gradient and the
# upcast's gradient coexist: 3 x 4 bytes per (token, vocab) entry. Fitted on B1/M03/M10/G2/G4 (fit: 12.0).
LOGITS_BYTES_PER_ENTRY = 12.0
# 4D mask of neat_packing: the collator's bf16 mask plus SDPA's aligned copy and mask temporaries,
# fitted on C4_neat_liger - C1_pack_liger (+0.25 GiB at 8 x 2049^2).
NEAT_MASK_BYTES = 8.0
EAGER_SCORE_BYTES = 4  # eager attention keeps the fp32 softmax (plus its bf16 cast) per head and key

# --- runtime ---------------------------------------------------------------------------------------------
# cuBLAS workspaces, rotary caches, the batch tensors, allocator rounding: the fit's intercept (median residual).
OVERHEAD_GIB = 0.05
# Reserved minus allocated (caching-allocator slack), fitted on the peak_reserved_gib column. Each GC layer
# recompute frees and reallocates its activations; HF-loss logits blocks are the largest of the step; unpacked
# steps change shape every batch and strand logits blocks of many sizes (A_recipe: 7.5 GiB on 2.6 GiB of logits).
RESERVE_BASE_GIB = 0.15
RESERVE_FRAC_BACKWARD = 0.15  # of the backward phase's transient memory (recomputed layer + its grads)
RESERVE_LOGITS_PACKED = 0.22  # of the HF-loss logits, when every step has the same shape
RESERVE_LOGITS_UNPACKED = 2.5  # of the HF-loss logits, when row lengths vary (stranded, but releasable) blocks
CUDA_CONTEXT_GIB = 1.22  # NVML minus torch reserved on every calibration row (CUDA 13, H100)
NCCL_GIB = 0.5  # communicator buffers outside torch's allocator when n_gpus > 1
HEADROOM = 0.9  # see fits()


@dataclass(frozen=True)
class TrainSetup:
    """One micro-batch of LoRA SFT as LLaMA-Factory runs it (``lora_target: all``)."""

    batch: int  # per_device_train_batch_size
    cutoff_len: int
    packing: bool  # rows filled to cutoff_len (LF ``packing`` or ``neat_packing``)
    liger: bool  # enable_liger_kernel: fused norm/SwiGLU/RoPE and the chunked linear cross-entropy
    grad_ckpt: bool
    quant_bit: int | None  # None (16-bit weights), 4 (bnb nf4) or 8 (LLM.int8)
    lora_rank: int
    dtype_bytes: int = 2  # weights dtype: bf16/fp16 (LF loads checkpoints with torch_dtype auto)
    # Activation dtype: None = dtype_bytes. Under fp16: true LF keeps bf16 weights and only switches autocast, so the
    # residual stream becomes fp32 (bf16 + fp16 -> fp32, notes §10): price fp16 plans with 4.
    act_bytes: int | None = None
    # Mean tokens in an unpacked row: what throughput sees. The peak is NOT at the mean batch but at the
    # longest one, so memory uses ``longest_row`` (None -> cutoff_len) and ignores this field.
    tokens_per_row: float | None = None
    longest_row: int | None = None  # longest tokenized sample the run will meet (unpacked rows pad to it)
    neat_packing: bool = False  # block-diagonal 4D mask: costs batch x seq^2 mask memory
    lora_input_cast: bool = True  # PEFT casts each LoRA input to the fp32 adapter dtype (a copy per Linear)
    attention: str = "sdpa"  # sdpa / fa2 keep no seq^2 scores; eager does
    optimizer: str = "adamw"
    grad_accum: int = 1  # > 1 keeps every LoRA gradient alive between micro-batches
    zero_stage: int = 0  # DeepSpeed ZeRO: 1 shards optimizer, 2 + grads, 3 + weights over n_gpus
    n_gpus: int = 1
    offload_optimizer: bool = False  # ZeRO-Offload: optimizer states (and their fp32 grads) on the CPU
    offload_params: bool = False  # ZeRO-3 only: frozen weights on the CPU, gathered layer by layer

    def __post_init__(self) -> None:
        for key in ("batch", "cutoff_len", "lora_rank", "grad_accum", "n_gpus"):
            if getattr(self, key) < 1:
                raise UsageError(f"TrainSetup.{key} must be >= 1, got {getattr(self, key)}")
        if self.quant_bit not in (None, 4, 8):
            raise UsageError(f"TrainSetup.quant_bit must be None, 4 or 8, got {self.quant_bit}")
        if self.act_bytes not in (None, 2, 4):
            raise UsageError(f"TrainSetup.act_bytes must be None, 2 or 4, got {self.act_bytes}")
        if self.dtype_bytes not in (2, 4):
            raise UsageError(f"TrainSetup.dtype_bytes must be 2 (bf16/fp16) or 4 (fp32), got {self.dtype_bytes}")
        if self.zero_stage not in (0, 1, 2, 3):
            raise UsageError(f"TrainSetup.zero_stage must be 0-3, got {self.zero_stage}")
        if self.offload_params and self.zero_stage != 3:
            raise UsageError("TrainSetup.offload_params needs zero_stage=3 (DeepSpeed offloads params only there)")
        if self.offload_optimizer and self.zero_stage == 0:
            raise UsageError("TrainSetup.offload_optimizer needs zero_stage >= 1 (a DeepSpeed ZeRO config)")
        if self.attention not in ("sdpa", "fa2", "eager"):
            raise UsageError(f"TrainSetup.attention must be sdpa, fa2 or eager, got {self.attention!r}")
        lookup(OPTIMIZER_BYTES, "optimizer", self.optimizer)
        if self.longest_row is not None and self.longest_row < 1:
            raise UsageError(f"TrainSetup.longest_row must be >= 1, got {self.longest_row}")

    @property
    def seq_len(self) -> int:
        """Row length of the peak micro-batch: packed rows hold cutoff_len + 1 tokens, unpacked rows pad to
        the longest sample in the batch, and the worst batch holds the longest sample of the run."""
        if self.packing or self.neat_packing:
            return self.cutoff_len + 1
        return min(self.cutoff_len, self.longest_row or self.cutoff_len)

    @property
    def tokens(self) -> int:
        return self.batch * self.seq_len

    @property
    def act(self) -> int:
        """Bytes per activation element."""
        return self.act_bytes or self.dtype_bytes


@dataclass(frozen=True)
class Estimate:
    """Peak memory of one training step. ``terms`` are GiB live at the peak moment and sum to ``total_gib``."""

    terms: dict[str, float]
    total_gib: float  # torch max_memory_allocated
    reserved_gib: float  # + caching-allocator slack (torch max_memory_reserved)
    device_gib: float  # + CUDA context: what nvidia-smi shows on a card with room to spare
    need_gib: float  # what the card must have: device_gib less the cached blocks PyTorch frees before an OOM
    phase: str = "backward"  # the moment of the peak: "loss" (logits) or "backward" (a layer's recompute)
    tokens: int = 0  # tokens in the peak micro-batch, padding included

    @property
    def dominant(self) -> str:
        return max(self.terms, key=self.terms.__getitem__)

    def explain(self) -> str:
        parts = ", ".join(f"{k} {v:.1f}" for k, v in sorted(self.terms.items(), key=lambda kv: -kv[1]) if v >= 0.05)
        share = self.terms[self.dominant] / self.total_gib if self.total_gib else 0.0
        return (
            f"peak {self.total_gib:.1f} GiB allocated, ~{self.device_gib:.1f} GiB on the device "
            f"({parts}); {self.dominant} dominates ({share:.0%}) at the {self.phase} step of {self.tokens} tokens"
        )


def lora_param_count(shape: Shape, rank: int) -> int:
    """rank x (in + out) for each of the 7 Linears of every decoder layer (``lora_target: all``)."""
    q, kv = shape.heads * shape.head_dim, shape.kv_heads * shape.head_dim
    in_plus_out = 7 * shape.hidden + 2 * q + 2 * kv + 3 * shape.intermediate
    return shape.layers * rank * in_plus_out


def _weight_bytes(shape: Shape, setup: TrainSetup) -> float:
    linear = shape.layers * shape.linear_params_per_layer
    rest = shape.params - linear  # embeddings, (untied) lm_head, norms
    per_linear = {None: setup.dtype_bytes, 4: NF4_BYTES_PER_PARAM, 8: INT8_BYTES_PER_PARAM}[setup.quant_bit]
    # The vision tower stays 16-bit: LF keeps multimodal towers out of bnb quantization (measured, gemma-3 QLoRA).
    return linear * per_linear + (rest + shape.vision_params) * setup.dtype_bytes


def _lora_saves_copies(setup: TrainSetup) -> bool:
    """PEFT's bf16 LoRA Linear casts x to fp32; autocast casts it back for the matmul and saves that copy, one per
    Linear. bnb LoRA layers skip the cast under autocast, so they save the shared original input instead."""
    return setup.lora_input_cast and setup.quant_bit is None


def layer_activation_bytes(shape: Shape, setup: TrainSetup) -> float:
    """Bytes per token one decoder layer keeps for backward (SDPA/flash: no seq^2 scores)."""
    a, h, inter = setup.act, shape.hidden, shape.intermediate
    q, kv = shape.heads * shape.head_dim, shape.kv_heads * shape.head_dim
    norm_bytes = a if setup.liger else HF_NORM_SAVE_BYTES
    norms = (NORMS_PER_LAYER * h + q + kv) * norm_bytes  # layer norms + q/k norms (Qwen3, Gemma 3)
    attention = (2 * q + 2 * kv) * a  # SDPA saves q, k, v and its output (+ a tiny logsumexp)
    lora_inputs = (5 * h + q + inter) if _lora_saves_copies(setup) else (2 * h + q + inter)
    lora_inputs = lora_inputs * a + LORA_LINEARS * setup.lora_rank * a  # + lora_A outputs for lora_B's grad
    mlp = (2 if setup.liger else 3) * inter * a  # gate, up (HF also keeps silu(gate))
    return norms + attention + lora_inputs + mlp


def backward_workspace_bytes(shape: Shape, setup: TrainSetup) -> float:
    """Bytes per token of gradients in flight inside one layer's backward: the MLP's gate/up grads, plus the fp32
    grad of the down-proj input copy when PEFT casts (the widest tensor of the layer)."""
    cast = HF_NORM_SAVE_BYTES * shape.intermediate if _lora_saves_copies(setup) else 0
    return 2 * shape.intermediate * setup.act + cast


def _eager_score_bytes(shape: Shape, setup: TrainSetup) -> float:
    """Per token and layer: eager attention keeps fp32 softmax scores (and their cast) per head and key."""
    if setup.attention != "eager":
        return 0.0
    return shape.heads * setup.seq_len * (EAGER_SCORE_BYTES + setup.act)


def _neat_mask_bytes(setup: TrainSetup) -> float:
    """Per token: neat_packing's dense 4D mask is batch x seq^2, i.e. seq entries per token."""
    return setup.seq_len * NEAT_MASK_BYTES if setup.neat_packing else 0.0


def _loss_bytes(shape: Shape, setup: TrainSetup) -> tuple[float, float]:
    """(transient at the loss, kept through backward). HF materialises batch x seq x vocab fp32 logits;
    Liger's fused linear cross-entropy runs chunks of ~tokens*hidden/vocab rows and keeps only grad_input."""
    tokens, vocab, a = setup.tokens, shape.vocab, setup.act
    if not setup.liger:
        return tokens * vocab * LOGITS_BYTES_PER_ENTRY, 0.0
    inc = math.ceil(vocab / shape.hidden)
    chunk = min(tokens, 1 << max(0, math.ceil(math.log2(math.ceil(tokens / inc)))))
    return chunk * vocab * a, tokens * shape.hidden * a


def _sharded(n_bytes: float, setup: TrainSetup, from_stage: int) -> float:
    return n_bytes / setup.n_gpus if setup.zero_stage >= from_stage else n_bytes


def _state_terms(shape: Shape, setup: TrainSetup) -> dict[str, float]:
    """Weights, adapters, their grads and optimizer states, after ZeRO sharding / offload."""
    n_lora = lora_param_count(shape, setup.lora_rank)
    weights = _weight_bytes(shape, setup)
    if setup.zero_stage == 3:  # each rank keeps 1/n; gathers one layer ahead plus the one in use (or the embedding)
        layer = shape.linear_params_per_layer * setup.dtype_bytes
        gathered = max(2 * layer, shape.vocab * shape.hidden * setup.dtype_bytes)
        weights = gathered + (0.0 if setup.offload_params else weights / setup.n_gpus)
    # Grads: with accumulation (or DDP's flat buckets) all of them live; else only the top layer's at the peak.
    keep_all = setup.grad_accum > 1 or (setup.n_gpus > 1 and setup.zero_stage == 0)
    grads = n_lora * ADAPTER_BYTES * (1.0 if keep_all else 1.0 / shape.layers)
    optimizer = n_lora * lookup(OPTIMIZER_BYTES, "optimizer", setup.optimizer)
    if setup.offload_optimizer:
        optimizer, grads = 0.0, grads / shape.layers  # fp32 grads stream to the host as they are produced
    return {
        "weights": weights,
        "lora_params": _sharded(n_lora * ADAPTER_BYTES, setup, 3),
        "lora_grads": _sharded(grads, setup, 2),
        "optimizer": _sharded(optimizer, setup, 1),
    }


def _step_bytes(shape: Shape, setup: TrainSetup) -> tuple[float, float, float, float]:
    """(saved activations, loss transient, loss output kept through backward, backward transient), in bytes."""
    tokens = setup.tokens
    layer = layer_activation_bytes(shape, setup) + _eager_score_bytes(shape, setup)
    per_layer_saved = shape.hidden * setup.act if setup.grad_ckpt else layer  # GC keeps each layer's input
    saved = tokens * (shape.layers * per_layer_saved + _neat_mask_bytes(setup))
    loss_peak, loss_kept = _loss_bytes(shape, setup)
    # GC recomputes one layer (all of its activations) and runs its backward next to the checkpoints.
    backward_peak = tokens * ((layer if setup.grad_ckpt else 0.0) + backward_workspace_bytes(shape, setup))
    return saved, loss_peak, loss_kept, backward_peak


def _slack_gib(setup: TrainSetup, loss_peak: float, backward_peak: float) -> tuple[float, float]:
    """(slack a card must have, slack that PyTorch would give back under pressure), in GiB."""
    hf_logits = 0.0 if setup.liger else loss_peak / GIB
    kept = RESERVE_BASE_GIB + RESERVE_FRAC_BACKWARD * backward_peak / GIB + RESERVE_LOGITS_PACKED * hf_logits
    fixed_shape = setup.packing or setup.neat_packing
    stranded = 0.0 if fixed_shape else (RESERVE_LOGITS_UNPACKED - RESERVE_LOGITS_PACKED) * hf_logits
    return kept, stranded


def estimate(shape: Shape, setup: TrainSetup) -> Estimate:
    """Peak allocated / reserved / device GiB of one LoRA SFT step of ``shape`` under ``setup``.

    The peak is the larger of two moments on top of the states and saved activations: the loss (HF's fp32 logits)
    and the top layer's backward (GC's recompute plus gradients in flight)."""
    saved, loss_peak, loss_kept, backward_peak = _step_bytes(shape, setup)
    phase = "loss" if loss_peak > backward_peak else "backward"
    raw = _state_terms(shape, setup) | {
        "activations": saved + loss_kept + (backward_peak if phase == "backward" else 0.0),
        "logits": loss_peak if phase == "loss" else 0.0,
        "overhead": OVERHEAD_GIB * GIB,
    }
    terms = {k: v / GIB for k, v in raw.items()}
    total = sum(terms.values())
    kept, stranded = _slack_gib(setup, loss_peak, backward_peak)
    context = CUDA_CONTEXT_GIB + (NCCL_GIB if setup.n_gpus > 1 else 0.0)
    return Estimate(
        terms=terms,
        total_gib=total,
        reserved_gib=total + kept + stranded,
        device_gib=total + kept + stranded + context,
        need_gib=total + kept + context,
        phase=phase,
        tokens=setup.tokens,
    )


def fits(estimate: Estimate, vram_gib: float, headroom: float = HEADROOM) -> bool:
    """Whether the run fits a GPU of ``vram_gib``: ``need_gib`` within ``headroom`` of it.

    ``need_gib``, not ``device_gib``: under memory pressure PyTorch frees its unused cached blocks and retries before
    raising OOM, so the stranded blocks of unpacked runs are not a requirement. The 10% headroom covers the model's
    own error (within 10% of every calibration row), fragmentation that grows over a long run, eval / save steps.
    """
    return estimate.need_gib <= headroom * vram_gib


# --- inference (predict / chat companions) -------------------------------------------------------------------------


def inference_need_gib(shape: Shape, *, batch: int, prompt: int, new_tokens: int, quant_bit: int | None = None,
                       lora_rank: int = 8) -> float:
    """GiB one GPU needs to generate for ``batch`` prompts of ``prompt`` tokens plus ``new_tokens``: the whole model
    (LF's predict puts a full copy on each GPU), the LoRA adapter, the 16-bit KV cache of every row at full length,
    and the prefill's widest transient (the MLP of one layer over the prompt), plus the CUDA context."""
    setup = TrainSetup(batch=batch, cutoff_len=prompt, packing=False, liger=False, grad_ckpt=True,
                       quant_bit=quant_bit, lora_rank=lora_rank)
    weights = _weight_bytes(shape, setup) + lora_param_count(shape, lora_rank) * ADAPTER_BYTES
    kv = 2 * shape.layers * shape.kv_heads * shape.head_dim * 2 * batch * (prompt + new_tokens)
    prefill = batch * prompt * (3 * shape.intermediate * 2 + 4 * shape.hidden * 4)
    logits = batch * shape.vocab * 4 * 2  # last-position logits in fp32 and the sampler's copy
    allocated = (weights + kv + prefill + logits) / GIB + OVERHEAD_GIB
    return allocated * (1 + RESERVE_FRAC_BACKWARD) + RESERVE_BASE_GIB + CUDA_CONTEXT_GIB
