"""Every parallel strategy LLaMA-Factory 0.9.5 offers, as data: what it shards, its memory, its speed, its methods.

RECIPE flow: plan.py / build_recipe ``--parallel`` → price() prices each strategy with memory.py's VRAM model for one
(model, method, hardware, batch, seq) → recommend() picks the fastest that fits → table_text() prints the top
alternatives; refusal() names why a (strategy, method) pair cannot run and the nearest one that can. Nothing here
trains: each strategy is LF's, DeepSpeed's, accelerate's or Megatron-Core's, driven by the files listed in ``files``.
"""

from __future__ import annotations

import glob
import json
import math
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import UsageError, lookup
from .hardware import Hardware
from .layout import OFFLOAD_SPEED, ZERO3_SPEED, speed
from .memory import GIB, OPTIMIZER_BYTES, Estimate, TrainSetup, estimate, fits
from .scale import QLORA_SPEED
from .shape import Shape

METHODS = ("lora", "qlora", "full")
SHARDABLE = ("params", "grads", "optimizer", "activations")
PARALLEL_CHOICES = ("auto", "ddp", "zero2", "zero2-offload", "zero3", "zero3-offload", "fsdp", "fsdp-qlora",
                    "autotp", "megatron")
FULL_TRAIN_BYTES = 4  # LF upcasts trainable params to fp32 (model/adapter.py) unless pure_bf16 or ZeRO-3
MASTER_BYTES = 4  # DeepSpeed keeps an fp32 master copy next to its bf16 weights (ZeRO stages 0-3)
MEGATRON_GRAD_BYTES = 4  # Megatron-Core accumulates fp32 main grads (accumulate_allreduce_grads_in_fp32)
# Korthikanti et al. 2022 (Megatron SP paper), per layer and token: 34·h bytes of activations, of which 24·h are
# inside the tensor-parallel Linears; without sequence parallelism the other 10·h (norms, dropout) stay replicated.
ACT_TP_SPLIT, ACT_TP_REPLICATED = 24, 10
CALIBRATION_GLOB = "bench/vram_calibration*.json"  # rows carrying a "strategy" key calibrate that strategy's speed


@dataclass(frozen=True)
class Strategy:
    """One LF-supported way to spread a run over GPUs. ``speed`` is tokens/s per GPU relative to DDP."""

    name: str
    title: str
    shards: frozenset[str]  # what each rank keeps only 1/n of
    methods: frozenset[str]
    speed: float
    engine: str  # what LF hands the run to: torchrun (DDP), deepspeed, accelerate (FSDP), mcore (Megatron)
    lf_keys: str  # what the recipe / environment must carry, verified against the LF 0.9.5 source
    why: str
    files: tuple[str, ...] = ()  # shipped configs, under llamafactory_ext/recipe/{deepspeed,accelerate}/
    zero_stage: int = 0  # how memory.py prices it: 0 replicated, 2 grads+optimizer, 3 everything
    offload: bool = False
    tensor_parallel: bool = False
    needs_gpu: bool = True
    packages: tuple[str, ...] = ()


def _s(*names: str) -> frozenset[str]:
    return frozenset(names)


ALL = _s("lora", "qlora", "full")
STRATEGIES: dict[str, Strategy] = {s.name: s for s in (
    Strategy("ddp", "DDP", _s(), ALL, 1.0, "torchrun", "no key (FORCE_TORCHRUN=1 or >1 GPU)",
             "a full replica per GPU; one gradient all-reduce per step", needs_gpu=False),
    Strategy("zero2", "DeepSpeed ZeRO-2", _s("grads", "optimizer"), ALL, 0.95, "deepspeed",
             "deepspeed: ds_z2_config.json", "replicated weights, sharded gradients and optimizer states",
             ("deepspeed/ds_z2_config.json",), zero_stage=2, packages=("deepspeed",)),
    # why 0.6: the optimizer step runs on the CPU (DeepSpeedCPUAdam) and gradients cross PCIe every step
    Strategy("zero2-offload", "DeepSpeed ZeRO-2 + CPU optimizer", _s("grads", "optimizer"), ALL, 0.6, "deepspeed",
             "deepspeed: ds_z2_offload_config.json", "ZeRO-2 with optimizer states in host memory",
             ("deepspeed/ds_z2_offload_config.json",), zero_stage=2, offload=True, packages=("deepspeed",)),
    Strategy("zero3", "DeepSpeed ZeRO-3", _s("params", "grads", "optimizer"), ALL, ZERO3_SPEED, "deepspeed",
             "deepspeed: ds_z3_config.json", "everything sharded; weights all-gathered layer by layer",
             ("deepspeed/ds_z3_config.json",), zero_stage=3, packages=("deepspeed",)),
    Strategy("zero3-offload", "DeepSpeed ZeRO-3 + CPU offload", _s("params", "grads", "optimizer"), ALL,
             OFFLOAD_SPEED, "deepspeed", "deepspeed: ds_z3_offload_config.json",
             "ZeRO-3 with weights and optimizer states in host memory", ("deepspeed/ds_z3_offload_config.json",),
             zero_stage=3, offload=True, packages=("deepspeed",)),
    # why 0.88: FULL_SHARD all-gathers like ZeRO-3 but prefetches the next unit (BACKWARD_PRE)
    Strategy("fsdp", "FSDP (accelerate)", _s("params", "grads", "optimizer"), _s("lora", "full"), 0.88, "accelerate",
             "accelerate launch --config_file fsdp_config.yaml (or fsdp2_config.yaml)",
             "PyTorch FSDP FULL_SHARD through accelerate, LF's own examples/accelerate configs",
             ("accelerate/fsdp_config.yaml", "accelerate/fsdp2_config.yaml"), zero_stage=3, packages=("accelerate",)),
    Strategy("fsdp-qlora", "FSDP + QLoRA", _s("params", "grads", "optimizer"), _s("qlora"), 0.88, "accelerate",
             "quantization_bit: 4 + accelerate launch --config_file fsdp_config.yaml (LF's examples/extras/fsdp_qlora)",
             "4-bit weights sharded by FSDP (LF sets bnb_4bit_quant_storage to the compute dtype)",
             ("accelerate/fsdp_config.yaml",), zero_stage=3, packages=("accelerate", "bitsandbytes")),
    # why 0.8: two all-reduces per layer inside the TP group (fast only over NVLink, so TP stays within a node)
    Strategy("autotp", "DeepSpeed AutoTP (tensor parallel) + ZeRO-2", _s("params", "grads", "optimizer", "activations"),
             _s("full"), 0.8, "deepspeed", "deepspeed JSON with tensor_parallel.autotp_size (ds_z2_autotp_config.json)",
             "Linear weights split across the GPUs of a node; ZeRO-2 over the data-parallel groups",
             ("deepspeed/ds_z2_autotp_config.json",), zero_stage=2, tensor_parallel=True, packages=("deepspeed",)),
    # why 0.9: TP all-reduces per layer, partly paid back by Megatron's fused kernels (estimate)
    Strategy("megatron", "Megatron-Core (USE_MCA=1)", _s("params", "grads", "optimizer", "activations"), _s("full"),
             0.9, "mcore", "USE_MCA=1 + tensor_model_parallel_size / pipeline_model_parallel_size / "
             "sequence_parallel / use_distributed_optimizer", "tensor, pipeline and sequence parallel via "
             "mcore_adapter; LF 0.9.5 runs full fine-tuning only", zero_stage=2, tensor_parallel=True,
             packages=("mcore_adapter",)),
)}

# (strategy, method) pairs LF refuses, with the reason; the nearest allowed strategy comes from NEAREST.
REASONS = {
    ("fsdp", "qlora"): "plain FSDP keeps bnb's default uint8 quant storage, which FSDP cannot shard with bf16 "
                       "weights; LF's FSDP+QLoRA path is its own config",
    ("fsdp-qlora", "lora"): "fsdp-qlora is the 4-bit (quantization_bit: 4) variant",
    ("fsdp-qlora", "full"): "LF refuses quantization with full fine-tuning ('Quantization is only compatible with "
                            "the LoRA or OFT method')",
    ("megatron", "lora"): "LF 0.9.5's Megatron-Core path (USE_MCA=1) trains finetuning_type: full only",
    ("megatron", "qlora"): "LF 0.9.5's Megatron-Core path (USE_MCA=1) trains finetuning_type: full only",
    ("autotp", "lora"): "DeepSpeed AutoTP shards plain nn.Linear modules; PEFT wraps them in LoRA layers, which its "
                        "training tutorial does not cover",
    ("autotp", "qlora"): "bnb 4-bit Linear weights cannot be split by AutoTP",
}
NEAREST = {"fsdp": "fsdp-qlora", "fsdp-qlora": "fsdp", "megatron": "zero3", "autotp": "zero2"}
QUANT_REASON = ("LF refuses quantization with full fine-tuning ('Quantization is only compatible with the LoRA or "
                "OFT method')")


def get(name: str) -> Strategy:
    """A strategy by name, or UnknownNameError with "did you mean"."""
    return lookup(STRATEGIES, "parallel strategy", name)


def _nearest(name: str, method: str, hw: Hardware | None) -> str:
    """The nearest strategy that runs ``method`` here: the mapped sibling, else DDP."""
    for cand in (NEAREST.get(name, "ddp"), "zero3", "ddp"):
        if method in STRATEGIES[cand].methods and (hw is None or hw.has_gpu or not STRATEGIES[cand].needs_gpu):
            return cand
    return "ddp"


def refusal(name: str, method: str, hw: Hardware | None = None, shape: Shape | None = None) -> str | None:
    """None if ``name`` can run ``method`` (on ``hw``, for ``shape``), else the reason and the nearest allowed
    strategy, as one line for the user."""
    strat = get(name)
    lookup({m: m for m in METHODS}, "method", method)
    why = None
    if method not in strat.methods:
        why = REASONS.get((name, method), QUANT_REASON if method == "qlora" else f"{name} does not run {method}")
    elif hw is not None and not hw.has_gpu and strat.needs_gpu:
        why = f"{strat.title} needs GPUs (NCCL); on CPU only DDP over gloo runs"
    elif hw is not None and strat.tensor_parallel and tp_size(hw, shape) < 2:
        why = (f"{strat.title} splits every layer over the GPUs of one node: it needs at least 2 GPUs per node "
               "and a degree that divides the model's attention and KV heads")
    elif hw is not None and not hw.has_gpu and method == "qlora":
        return (f"--parallel {name} with qlora: QLoRA needs bitsandbytes on CUDA; nearest allowed: 16-bit LoRA "
                "(--quant lora) with --parallel ddp")
    if why is None:
        return None
    return f"--parallel {name} with {method}: {why}; nearest allowed: --parallel {_nearest(name, method, hw)}"


def tp_size(hw: Hardware, shape: Shape | None = None) -> int:
    """Tensor-parallel degree: the most GPUs of one node (TP needs NVLink-class links), a power of two that
    divides the attention and KV heads (each rank takes whole heads)."""
    tp = 1 << int(math.log2(hw.gpus)) if hw.gpus else 1
    while shape is not None and tp > 1 and (shape.kv_heads % tp or shape.heads % tp):
        tp //= 2
    return tp


@dataclass(frozen=True)
class Option:
    """One strategy priced for one run: GiB per GPU, relative speed of the whole cluster, and whether it fits."""

    strategy: Strategy
    method: str
    need_gib: float  # what each GPU must have (memory.Estimate.need_gib)
    terms: dict[str, float]  # GiB per GPU at the peak
    speed: float  # relative tokens/s of the whole run (comparable across options of one price() call)
    fits: bool
    refused: str | None = None
    calibrated: bool = False

    @property
    def name(self) -> str:
        return self.strategy.name


def _setup(strat: Strategy, method: str, hw: Hardware, batch: int, seq: int, tp: int, **kw) -> TrainSetup:
    """memory.py's TrainSetup for a strategy (full fine-tuning is priced on a rank-1 LoRA, states replaced)."""
    dp = max(1, hw.world_size // tp)
    return TrainSetup(batch=batch, cutoff_len=seq, packing=kw.get("packing", True), liger=kw.get("liger", False),
                      grad_ckpt=kw.get("grad_ckpt", True), quant_bit=4 if method == "qlora" else None,
                      lora_rank=kw.get("rank", 8) if method != "full" else 1, n_gpus=dp,
                      zero_stage=strat.zero_stage if method != "full" else 0, optimizer=kw.get("optimizer", "adamw"),
                      offload_optimizer=strat.offload and method != "full",
                      offload_params=strat.offload and strat.zero_stage == 3 and method != "full",
                      lora_input_cast=method != "full", grad_accum=kw.get("grad_accum", 1))


def full_states(shape: Shape, strat: Strategy, setup: TrainSetup, tp: int = 1) -> dict[str, float]:
    """GiB per GPU of weights, gradients and optimizer states for full fine-tuning under ``strat``."""
    p, n, opt = shape.params + shape.vision_params, setup.n_gpus, OPTIMIZER_BYTES[setup.optimizer]
    if strat.engine == "torchrun":  # LF's fp32 upcast: fp32 weights, fp32 grads, optimizer states
        return _gib(weights=p * FULL_TRAIN_BYTES, grads=p * FULL_TRAIN_BYTES, optimizer=p * opt)
    if strat.engine == "mcore":  # bf16 weights, fp32 main grads over tp; distributed optimizer over dp too
        return _gib(weights=2 * p / tp, grads=MEGATRON_GRAD_BYTES * p / tp, optimizer=(MASTER_BYTES + opt) * p / tp / n)
    layer = shape.linear_params_per_layer * 2
    gathered = max(2 * layer, shape.vocab * shape.hidden * 2)  # ZeRO-3/FSDP: the unit in use and the next one
    if strat.engine == "accelerate":  # FSDP keeps LF's fp32 params sharded and all-gathers a unit at a time
        return _gib(weights=FULL_TRAIN_BYTES * p / n + gathered, grads=FULL_TRAIN_BYTES * p / n, optimizer=opt * p / n)
    weights = 2 * p / tp if strat.zero_stage < 3 else gathered + (0 if strat.offload else 2 * p / n)
    grads = 2 * p / tp / (n if strat.zero_stage >= 2 else 1)
    optimizer = 0.0 if strat.offload else (MASTER_BYTES + opt) * p / tp / n
    return _gib(weights=weights, grads=grads, optimizer=optimizer)


def _gib(**terms: float) -> dict[str, float]:
    return {k: v / GIB for k, v in terms.items()}


def _act_share(strat: Strategy, tp: int) -> float:
    """Fraction of a layer's activations one TP rank keeps (Megatron adds sequence parallel: all of it split)."""
    if not strat.tensor_parallel or tp == 1:
        return 1.0
    if strat.engine == "mcore":
        return 1.0 / tp
    return (ACT_TP_REPLICATED + ACT_TP_SPLIT / tp) / (ACT_TP_REPLICATED + ACT_TP_SPLIT)


def price_one(shape: Shape, strat: Strategy, method: str, hw: Hardware, batch: int, seq: int, **kw) -> Option:
    """Memory and speed of one strategy; a refused pair is still priced where memory.py can, for the table."""
    refused = refusal(strat.name, method, hw, shape)
    tp = tp_size(hw, shape) if strat.tensor_parallel else 1
    setup = _setup(strat, method, hw, batch, seq, tp, **kw)
    est = estimate(shape, setup)
    terms = dict(est.terms)
    if method == "full":
        for key in ("weights", "lora_params", "lora_grads", "optimizer"):
            terms.pop(key)
        terms |= full_states(shape, strat, setup, tp)
    share = _act_share(strat, tp)
    terms["activations"] *= share
    terms["logits"] *= share if strat.engine == "mcore" else 1.0  # Megatron's vocab-parallel cross-entropy
    need = est.need_gib - est.total_gib + sum(terms.values())
    vram = hw.gpu.vram_gib if hw.gpu else float("inf")
    ok = refused is None and fits(replace(est, need_gib=need), vram)
    factor, calibrated = strategy_speed(strat.name)
    rel = speed(setup) * factor * (QLORA_SPEED if method == "qlora" else 1.0) * max(1, hw.world_size)
    return Option(strat, method, need, terms, rel, ok, refused, calibrated)


def price(shape: Shape, method: str, hw: Hardware, batch: int, seq: int, **kw) -> list[Option]:
    """Every strategy priced for ``method`` on ``hw``, fastest that fits first, then the rest by memory.

    ``kw``: packing, liger, grad_ckpt, rank, optimizer, grad_accum — as memory.TrainSetup takes them."""
    options = [price_one(shape, s, method, hw, batch, seq, **kw) for s in STRATEGIES.values()]
    return sorted(options, key=lambda o: (not o.fits, -o.speed if o.fits else o.need_gib))


def recommend(options: list[Option]) -> Option | None:
    """The fastest option that fits (price() already sorts them so), or None."""
    return options[0] if options and options[0].fits else None


def choose(options: list[Option], name: str) -> Option:
    """The option the user asked for (``--parallel NAME``; ``auto`` = recommend); a UsageError if refused."""
    if name == "auto":
        best = recommend(options)
        if best is None:
            raise UsageError("no parallel strategy fits this run: " + _smallest(options))
        return best
    get(name)
    opt = next(o for o in options if o.name == name)
    if opt.refused:
        raise UsageError(opt.refused)
    return opt


def _smallest(options: list[Option]) -> str:
    allowed = [o for o in options if not o.refused] or options
    low = min(allowed, key=lambda o: o.need_gib)
    return (f"the smallest is --parallel {low.name} at ~{low.need_gib:.1f} GiB per GPU: lower cutoff_len, use QLoRA, "
            "or plan for more or bigger GPUs")


def strategy_speed(name: str, root: Path | None = None) -> tuple[float, bool]:
    """(speed factor, calibrated?): measured tokens/s against DDP rows of the same ``name`` prefix in the
    calibration files where any row carries ``"strategy": name``, else the table's estimate."""
    rows = _calibration_rows(root)
    mine = [r for r in rows if r.get("strategy") == name and r.get("eff_tok_s")]
    base = {r["name"].split("@")[0]: r["eff_tok_s"] for r in rows if r.get("strategy") in (None, "ddp")}
    pairs = [r["eff_tok_s"] / base[r["name"].split("@")[0]] for r in mine if r["name"].split("@")[0] in base]
    if pairs:
        return sum(pairs) / len(pairs), True
    return STRATEGIES[name].speed, name == "ddp" and bool(rows)


def _calibration_rows(root: Path | None) -> list[dict]:
    base = root or Path(__file__).resolve().parents[2]
    out: list[dict] = []
    for path in sorted(glob.glob(str(base / CALIBRATION_GLOB))):
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        out += [r for r in data.get("rows", []) if isinstance(r, dict) and "name" in r]
    return out


def shards_text(strat: Strategy) -> str:
    return ", ".join(k for k in SHARDABLE if k in strat.shards) or "nothing (full replica)"


def table_text(options: list[Option], top: int = 5, chosen: str | None = None) -> str:
    """The printed comparison: strategy, what it shards, GiB per GPU, speed relative to DDP on the same GPUs,
    fits / too big / refused. ``*`` marks the chosen (or recommended) strategy."""
    ref = next((o.speed for o in options if o.name == "ddp"), 1.0) or 1.0
    mark = chosen or (recommend(options).name if recommend(options) else None)
    lines = [f"  {'strategy':<15}{'shards':<36}{'GiB/GPU':>8}  {'vs DDP':>6}  status"]
    for o in options[:top]:
        status = "fits" if o.fits else ("refused" if o.refused else "too big")
        est = "" if o.calibrated else " (estimated)"
        lines.append(f"{'*' if o.name == mark else ' '} {o.name:<15}{shards_text(o.strategy):<36}"
                     f"{o.need_gib:>8.1f}  {o.speed / ref:>5.2f}x  {status}{est if o.fits else ''}")
    return "\n".join(lines)


# Megatron-Core keys as LF v0.9.5's examples/megatron/*.yaml write them (mcore_adapter's TrainingArguments; it is not
# installed here, so they are checked against LF's examples only).
MEGATRON_KEYS = ("tensor_model_parallel_size", "pipeline_model_parallel_size", "sequence_parallel",
                 "use_distributed_optimizer", "overlap_param_gather", "overlap_grad_reduce", "recompute_granularity")


def recipe_keys(name: str, hw: Hardware, shape: Shape, recipes_dir: str = "recipes") -> dict:
    """LF YAML keys the train recipe needs for ``name`` (on top of the planner's): the DeepSpeed JSON path, 4-bit
    loading for FSDP+QLoRA, Megatron's parallel sizes. accelerate's FSDP config goes on the launch line instead."""
    strat = get(name)
    if strat.engine == "deepspeed":
        return {"deepspeed": f"{recipes_dir}/{config_name(name, hw, shape)}"}
    if name == "fsdp-qlora":
        return {"quantization_bit": 4, "quantization_method": "bnb"}
    if strat.engine == "mcore":
        tp = tp_size(hw, shape)
        return dict(zip(MEGATRON_KEYS, (tp, 1, tp > 1, True, True, True, "full"), strict=True)) | {
            "finetuning_type": "full"}
    return {}


def config_name(name: str, hw: Hardware, shape: Shape) -> str:
    """Where the strategy's config lands under recipes/ (AutoTP's carries its TP degree in the name)."""
    rel = get(name).files[0] if get(name).files else ""
    if name == "autotp":
        return rel.replace("autotp", f"autotp{tp_size(hw, shape)}")
    return rel


def config_texts(name: str, hw: Hardware, shape: Shape) -> dict[str, str]:
    """The shipped config(s) of ``name`` to write under recipes/ (relative path → text); AutoTP's JSON gets
    tensor_parallel.autotp_size = the node's TP degree."""
    from importlib.resources import files

    strat, root = get(name), files("llamafactory_ext.recipe")
    out = {rel: root.joinpath(*rel.split("/")).read_text(encoding="utf-8") for rel in strat.files}
    if name == "autotp":
        data = json.loads(out.pop(strat.files[0]))
        data["tensor_parallel"]["autotp_size"] = tp_size(hw, shape)
        out[config_name(name, hw, shape)] = json.dumps(data, indent=2) + "\n"
    return out


def as_estimate(option: Option, base: Estimate) -> Estimate:
    """An Estimate carrying the option's terms (for Plan notes that print memory.Estimate.explain())."""
    return replace(base, terms=option.terms, total_gib=sum(option.terms.values()), need_gib=option.need_gib)
