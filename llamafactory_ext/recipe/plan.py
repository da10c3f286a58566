"""Pure planning: (model preset, dataset facts, hardware, choices) → one consistent recipe set.

Train, predict, merge, GPTQ export and chat recipes share template, enable_thinking and paths, so what is
trained is what is evaluated, merged and served (LF issues #7978, #9765 come from mismatches there).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import RecipeError
from .companions import Ctx, chat_recipe, export_recipes, predict_recipe, remote_code, thinking_kw
from .facts import DataFacts
from .hardware import Hardware
from .hyper import Hyper, hyper_for
from .layout import Layout, choose
from .memory import TrainSetup, estimate
from .models import ModelPreset
from .scale import KEEP_CHECKPOINTS, Scale, save_every, scale, single_gpu_layout, speedup
from .schema import (
    ChatRecipe,
    DatasetSection,
    EvalSection,
    ExportRecipe,
    MethodSection,
    ModelSection,
    OutputSection,
    PredictRecipe,
    TrainRecipe,
    TrainSection,
)

MIN_REASONING_SHARE = 0.95  # why: LF's qwen3 template trains an empty <think> block for every sample without one
PACKING_MIN_SAMPLES = 1000  # why: below this an epoch is minutes anyway, and packing would leave few optimizer steps
CUTOFF_STEP = 256  # why: round cutoff_len up to a multiple of 256 tokens (tidy numbers, tensor-core friendly)
CUTOFF_MARGIN = {True: 1.05, False: 1.15}  # why: exact counts (a tokenizer) need little room; estimates need 15%
ANSWER_MARGIN = 1.25  # why: a fine-tuned model's answers vary around the data's; room over the answer p99
LIGER_TEMPLATES = {"qwen", "qwen3", "qwen3_nothink", "gemma3", "llama3", "yi"}  # archs liger-kernel patches in LF
THINK_NEW_TOKENS = 4096  # why: the floor for reasoning answers; LF's default 1024 cuts them off mid-thought
PLAIN_NEW_TOKENS = 1024
WORKERS_MIN_SAMPLES = 1000  # why: below this, starting tokenisation workers costs more than it saves
MAX_WORKERS = 8  # why: tokenisation stops scaling long before the core count of a GPU server
CPU_DRY_RUN_STEPS = 2  # why: a CPU run only proves data, template and recipe load and train; a real epoch takes days
QWEN_TEMPLATES = {"qwen", "qwen3", "qwen3_nothink"}


@dataclass(frozen=True)
class Choices:
    """What the user decided (CLI flags); everything else is planned."""

    quant: str = "auto"  # auto | lora | qlora
    packing: str = "auto"  # auto | on | neat | off
    liger: bool = True
    effective_batch: int | None = None
    dataset_dir: str = "dataset_info"
    saves: str = "saves"
    recipes_dir: str = "recipes"  # DeepSpeed JSONs are written to <recipes_dir>/deepspeed/ and referenced from there
    calib_file: str | None = None  # GPTQ calibration file (text column), written by build_recipe
    calib_windows: int | None = None  # maxlen-token windows the calibration file holds at least (None: unknown)
    stem: str | None = None  # --stem: names the files and the run folder
    cpus: int = 4  # CPUs of the training machine (preprocessing_num_workers)
    overwrite: bool = False  # start afresh in an output_dir that holds another run (overwrite_output_dir: true)
    force: bool = False  # write a plan that does not fit, flagged


@dataclass
class Plan:
    stem: str
    train: TrainRecipe
    predict: PredictRecipe
    merge: ExportRecipe
    gptq: ExportRecipe | None
    chat: ChatRecipe
    layout: Layout
    hyper: Hyper
    notes: list[str] = field(default_factory=list)
    fits: bool = True
    run_dir: str = ""
    speedup: float | None = None
    scale: Scale | None = None

    @property
    def recipes(self) -> dict[str, object]:
        """File suffix → recipe, in the order a user runs them."""
        out = {"": self.train, "_predict": self.predict, "_merge": self.merge, "_gptq": self.gptq, "_chat": self.chat}
        return {k: v for k, v in out.items() if v is not None}


def plan(preset: ModelPreset, model_path: str, facts: DataFacts, hw: Hardware, choices: Choices = Choices()) -> Plan:
    """The whole recipe set for one run."""
    notes = list(preset.notes) + list(hw.notes)
    precision = _precision(preset, hw, notes)
    thinking = _thinking(preset, facts, notes)
    hyper = hyper_for(facts.train)
    cutoff = _cutoff(preset, facts, notes)
    packing = _packing(choices.packing, facts)
    sc = scale(facts, hw, hyper.effective_batch, hyper.epochs, cutoff, packing != "off", choices.effective_batch)
    layout, single = _layout(preset, hw, choices, hyper, cutoff, packing, precision, sc)
    stem = choices.stem or _stem(preset, layout)
    ctx = Ctx(preset, facts, hw, choices, thinking, precision, cutoff, packing,
               f"{choices.saves}/{stem}/{facts.name}")
    model = _model_section(preset, model_path, layout)
    train = _train(ctx, model, hyper, layout, sc)
    new_tokens = _new_tokens(ctx)
    predict = predict_recipe(ctx, model, layout, new_tokens, notes)
    merge, gptq = export_recipes(ctx, model_path, notes)
    chat = chat_recipe(ctx, model, layout, new_tokens, notes)
    fits = hw.gpu is None or layout.score > 0
    speed_up = speedup(layout, hw, single) if hw.world_size > 1 else None
    notes += _layout_notes(ctx, layout, sc, speed_up, fits)
    if choices.overwrite:
        notes.append("--overwrite: overwrite_output_dir: true starts afresh in the old run's folder and never resumes; "
                     "plan again without --overwrite once this run has saved a checkpoint, so a crash resumes")
    return Plan(stem, train, predict, merge, gptq, chat, layout, hyper, notes, fits, ctx.run_dir, speed_up, sc)


# ---- decisions ---------------------------------------------------------------------------------------------------


def _precision(preset: ModelPreset, hw: Hardware, notes: list[str]) -> str:
    """bf16 on Ampere+, fp16 before (never for gemma-3), fp32 for a CPU dry run."""
    if not hw.has_gpu:
        return "fp32"
    if hw.supports_bf16:
        return "bf16"
    if preset.template.startswith("gemma3"):
        raise RecipeError(
            f"{preset.key} cannot train on {hw.gpu.name} (no bf16): gemma-3's activations overflow fp16 "
            "(transformers #36822, #39972; LF #7755 reports loss 0), and LF 0.9.5 has no fp32 training switch (it "
            "loads bf16 weights and computes in bf16 unless fp16 is set). Plan for an Ampere or newer card "
            "(--gpu L4, A10, 3090, A100 …) or a Qwen model (--model qwen3-4b-instruct)")
    if preset.template in QWEN_TEMPLATES:
        notes.append(f"fp16 on {hw.gpu.name}: Qwen models can overflow in fp16 (NaN or inf loss, QwenLM #670, #868); "
                     "watch grad_norm in the log, lower learning_rate if it turns nan, or use an Ampere+ card (bf16)")
    notes.append("fp16 is priced as LF runs it: weights stay bf16 and only autocast switches, so the residual stream "
                 "is fp32 and activations take twice the bf16 memory")
    return "fp16"


def _layout(preset, hw, choices, hyper, cutoff, packing, precision, sc) -> tuple[Layout, Layout | None]:
    kw = dict(cutoff=cutoff, longest=cutoff, packing=packing != "off", rank=hyper.lora_rank, quant=choices.quant,
              act_bytes=4 if precision == "fp16" else 2)
    liger = choices.liger and preset.template in LIGER_TEMPLATES and hw.has_gpu
    if not hw.has_gpu:
        return _cpu_layout(preset, cutoff, packing, hyper), None
    per_gpu = max(1, sc.effective_batch // hw.world_size)
    layout = choose(preset.shape, hw, force=choices.force, liger=liger, max_batch=per_gpu, **kw)
    single = single_gpu_layout(hw, shape=preset.shape, liger=liger, max_batch=sc.effective_batch, **kw) \
        if hw.world_size > 1 else None
    return layout, single


def _cpu_layout(preset, cutoff, packing, hyper) -> Layout:
    """A CPU dry run: batch 1, fp32, no quantization (bitsandbytes needs CUDA), priced for the record only."""
    setup = TrainSetup(batch=1, cutoff_len=cutoff, packing=packing != "off", liger=False, grad_ckpt=True,
                       quant_bit=None, lora_rank=hyper.lora_rank, longest_row=cutoff, dtype_bytes=4)
    return Layout(setup, estimate(preset.shape, setup), 1.0, None)


def _thinking(preset: ModelPreset, facts: DataFacts, notes: list[str]) -> bool | None | str:
    """enable_thinking for the template; "unset" for templates without reasoning support."""
    share = facts.with_reasoning
    if preset.reasoning == "thinking_only":
        if share < MIN_REASONING_SHARE:
            raise RecipeError(
                f"{preset.key} is a thinking-only model, but only {share:.0%} of the training samples of "
                f"'{facts.name}' carry reasoning: LF's {preset.template} template would train an empty <think> block "
                f"for the other {1 - share:.0%} and teach the model to skip thinking. Add reasoning to them, rebuild "
                "with --require-reasoning to drop them, or plan for an instruct model (e.g. --model qwen3-4b-instruct)")
        return True
    if preset.reasoning == "hybrid":
        return True if share >= MIN_REASONING_SHARE else (False if share == 0 else None)
    if share:
        notes.append(f"{share:.0%} of '{facts.name}' carry <think> blocks, which template {preset.template} trains "
                     "as visible text; rebuild the dataset with --model " + preset.key + " to drop or relabel them")
    return "unset"


def _round_up(tokens: float) -> int:
    return -(-int(tokens) // CUTOFF_STEP) * CUTOFF_STEP


def _cutoff(preset: ModelPreset, facts: DataFacts, notes: list[str]) -> int:
    """cutoff_len from the token p99 (+margin by counter), capped by the model's context; warns about truncation.
    Unpacked plans are priced at this cutoff (the longest row LF may build), not at the longest estimated row."""
    exact = facts.token_counter != "estimate"
    want = _round_up(facts.tokens_p99 * CUTOFF_MARGIN[exact])
    cutoff = max(512, min(want, preset.context_len or want))
    if facts.tokens_max > cutoff:
        notes.append(f"cutoff_len {cutoff} is below the longest sample (~{facts.tokens_max} tokens, counted by "
                     f"{facts.token_counter}): the longest ~1% are truncated by LF and may lose their answer — drop "
                     "them with build_dataset --max-chars, or raise cutoff_len with --set cutoff_len=…")
    return cutoff


def _new_tokens(ctx: Ctx) -> int:
    """max_new_tokens from the data's long-tail answer length (+25%), with a floor per mode, within the context."""
    floor = THINK_NEW_TOKENS if ctx.thinks else PLAIN_NEW_TOKENS
    tokens = max(floor, _round_up(ctx.facts.answer_tokens_p99 * ANSWER_MARGIN))
    room = (ctx.preset.context_len or 10**9) - ctx.cutoff
    return max(256, min(tokens, room))


def _packing(choice: str, facts: DataFacts) -> str:
    """Plain packing by default on large sets (fast; a sample may attend to earlier ones in its row, like most
    trainers' packing), neat packing on request (no cross-attention, ~12% slower under SDPA), none on small sets."""
    if choice != "auto":
        return choice
    return "on" if facts.train >= PACKING_MIN_SAMPLES else "off"


def _stem(preset: ModelPreset, layout: Layout) -> str:
    method = "qlora" if layout.setup.quant_bit else "lora"
    return f"{preset.recipe_stem}_{method}" + ("_ds_z3" if layout.zero else "")


# ---- sections ----------------------------------------------------------------------------------------------------


def _model_section(preset: ModelPreset, model_path: str, layout: Layout, adapter: str | None = None) -> ModelSection:
    s = layout.setup
    return ModelSection(
        model_name_or_path=model_path, adapter_name_or_path=adapter, trust_remote_code=remote_code(preset),
        quantization_bit=s.quant_bit, quantization_method="bnb" if s.quant_bit else None,
        enable_liger_kernel=True if s.liger else None, disable_gradient_checkpointing=True if not s.grad_ckpt else None,
        upcast_layernorm=True if s.quant_bit else None,  # LF recommends fp32 norms with quantized weights
    )


def _workers(ctx: Ctx) -> int | None:
    if ctx.facts.train < WORKERS_MIN_SAMPLES or ctx.choices.cpus < 2:
        return None
    return min(MAX_WORKERS, ctx.choices.cpus)


def _train(ctx: Ctx, model: ModelSection, hyper: Hyper, layout: Layout, sc: Scale) -> TrainRecipe:
    s, hw, facts = layout.setup, ctx.hw, ctx.facts
    accum = max(1, -(-sc.effective_batch // (s.batch * max(1, hw.world_size))))
    evaluate = bool(facts.val)
    every = save_every(sc.steps)
    best = evaluate and hyper.size != "large"  # small data: the last epoch may over-fit; keep the best eval loss
    dataset = DatasetSection(
        dataset=f"{facts.name}_train", eval_dataset=f"{facts.name}_val" if evaluate else None,
        dataset_dir=ctx.choices.dataset_dir, template=ctx.preset.template, cutoff_len=ctx.cutoff,
        packing=True if ctx.packing == "on" else None, neat_packing=True if ctx.packing == "neat" else None,
        mask_history=True if facts.multi_turn and ctx.thinking is True else None,
        preprocessing_num_workers=_workers(ctx), **thinking_kw(ctx.thinking),
    )
    return TrainRecipe(
        model=model,
        method=MethodSection(stage="sft", do_train=True, finetuning_type="lora", lora_rank=hyper.lora_rank,
                             lora_alpha=hyper.lora_alpha, lora_dropout=hyper.lora_dropout or None, lora_target="all",
                             deepspeed=ds_path(layout.zero, ctx.choices.recipes_dir)),
        dataset=dataset,
        output=OutputSection(output_dir=f"{ctx.run_dir}/sft", logging_steps=min(10, max(1, sc.steps // 50)),
                             save_strategy="steps", save_steps=every, save_total_limit=KEEP_CHECKPOINTS,
                             plot_loss=True, overwrite_output_dir=True if ctx.choices.overwrite else None,
                             save_only_model=False, report_to="none"),
        train=TrainSection(per_device_train_batch_size=s.batch, gradient_accumulation_steps=accum,
                           learning_rate=float(f"{hyper.learning_rate * sc.lr_factor:.3g}"), num_train_epochs=hyper.epochs,
                           max_steps=CPU_DRY_RUN_STEPS if ctx.precision == "fp32" else None,
                           lr_scheduler_type="cosine", warmup_steps=hyper.warmup,
                           bf16=True if ctx.precision == "bf16" else None, fp16=True if ctx.precision == "fp16" else None,
                           ddp_timeout=180000000, include_num_input_tokens_seen=True),
        eval=EvalSection(eval_strategy="steps" if evaluate else None, eval_steps=every if evaluate else None,
                         per_device_eval_batch_size=s.batch if evaluate else None,
                         load_best_model_at_end=True if best else None,
                         metric_for_best_model="eval_loss" if best else None),
    )


DS_FILES = {"z3": "ds_z3_config.json", "z3_offload": "ds_z3_offload_config.json"}


def ds_path(zero: str | None, recipes_dir: str) -> str | None:
    """Where the recipe points LF for its DeepSpeed config (relative to the launch folder, like dataset_dir)."""
    return f"{recipes_dir}/deepspeed/{DS_FILES[zero]}" if zero else None


def _layout_notes(ctx: Ctx, layout: Layout, sc: Scale, speed_up: float | None, fits: bool) -> list[str]:
    s, est, hw = layout.setup, layout.estimate, ctx.hw
    if hw.gpu is None:
        return [f"CPU dry run: max_steps {CPU_DRY_RUN_STEPS}, fp32, batch 1 — it proves that data, template and "
                "recipe load and train; plan the real run with --gpu for the training machine"]
    method = "4-bit QLoRA" if s.quant_bit else "16-bit LoRA"
    out = [f"memory: ~{est.need_gib:.1f} GiB needed of {hw.gpu.name} {hw.gpu.vram_gib:g} GiB per GPU ({method}, "
           f"{ctx.precision}, batch {s.batch}, cutoff {s.cutoff_len}, checkpointing {'on' if s.grad_ckpt else 'off'}, "
           f"liger {'on' if s.liger else 'off'}, packing {ctx.packing}); largest term: {est.dominant}"]
    if not fits:
        out.append(f"DOES NOT FIT: written because of --force; expect an out-of-memory error on {hw.gpu.name}")
    out.append(f"run: ~{sc.steps} optimizer steps, a checkpoint every {save_every(sc.steps)} (the last "
               f"{KEEP_CHECKPOINTS} kept); a rerun after a crash resumes from the newest one")
    if hw.world_size > 1:
        out += _multi_gpu_notes(ctx, layout, sc, speed_up)
    if s.liger:
        out.append("enable_liger_kernel needs `pip install liger-kernel` on the training machine")
    if s.quant_bit:
        out.append("quantization_bit 4 needs `pip install bitsandbytes` (CUDA)")
    return out


def _multi_gpu_notes(ctx: Ctx, layout: Layout, sc: Scale, speed_up: float | None) -> list[str]:
    world = ctx.hw.world_size
    how = "DeepSpeed ZeRO-3 (the model does not fit per GPU under DDP)" if layout.zero else "DDP (fits on each GPU)"
    gain = f"expected speed-up ~{speed_up:.1f}x over one GPU" if speed_up else "one GPU cannot hold this run"
    out = [f"multi-GPU: {how}; global batch {sc.effective_batch} over {world} GPUs; {gain}"]
    if sc.lr_factor != 1.0:
        out.append(f"learning rate x{sc.lr_factor:.2f}: the square-root rule for Adam when the global batch grows "
                   f"{sc.lr_factor ** 2:.0f}x with the GPU count")
    if sc.gpus_used < world:
        out.append(f"the data gives too few optimizer steps to grow the batch for all {world} GPUs (each would "
                   f"train {layout.setup.batch} row(s) a step): {sc.gpus_used} GPU(s) would do nearly as well")
    return out


def launch_command(recipe, path, hw: Hardware) -> str:
    """The exact shell line that runs a recipe (FORCE_TORCHRUN for DeepSpeed, torchrun env for several nodes)."""
    env = []
    if recipe.kind == "train" and (recipe.needs_torchrun or hw.nodes > 1):
        env.append("FORCE_TORCHRUN=1")
    if recipe.kind == "train" and hw.nodes > 1:
        env += [f"NNODES={hw.nodes}", f"NODE_RANK=<0..{hw.nodes - 1}>", "MASTER_ADDR=<node-0 address>",
                "MASTER_PORT=29500"]
    command = {"train": "train", "predict": "train", "export": "export", "chat": "chat"}[recipe.kind]
    return " ".join([*env, "llamafactory-cli", command, str(path)])
