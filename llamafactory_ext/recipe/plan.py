"""Pure planning: (model preset, dataset facts, hardware, choices) → one consistent recipe set.

Train, predict, merge, GPTQ export and chat recipes share template, enable_thinking and paths, so what is
trained is what is evaluated, merged and served (LF issues #7978, #9765 come from mismatches there).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import RecipeError
from .facts import DataFacts
from .hardware import Hardware
from .hyper import Hyper, hyper_for
from .layout import Layout, choose
from .models import ModelPreset
from .schema import (
    ChatRecipe,
    DatasetSection,
    EvalSection,
    ExportRecipe,
    ExportSection,
    GenerationSection,
    MethodSection,
    ModelSection,
    OutputSection,
    PredictRecipe,
    TemplateSection,
    TrainRecipe,
    TrainSection,
)

MIN_REASONING_SHARE = 0.95  # why: LF's qwen3 template trains an empty <think> block for every sample without one
PACKING_MIN_SAMPLES = 1000  # why: below this an epoch is minutes anyway, and packing would leave few optimizer steps
CUTOFF_STEP = 256  # why: round cutoff_len up to a multiple of 256 tokens (tidy numbers, tensor-core friendly)
CUTOFF_MARGIN = 1.15  # why: our token counts are estimates (no tokenizer offline); keep 15% room over p99
LIGER_TEMPLATES = {"qwen", "qwen3", "qwen3_nothink", "gemma3", "llama3", "yi"}  # archs liger-kernel patches in LF
THINK_NEW_TOKENS = 4096  # why: reasoning answers run long; LF's default 1024 cuts them off mid-thought
PLAIN_NEW_TOKENS = 1024


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

    @property
    def recipes(self) -> dict[str, object]:
        """File suffix → recipe, in the order a user runs them."""
        out = {"": self.train, "_predict": self.predict, "_merge": self.merge, "_gptq": self.gptq, "_chat": self.chat}
        return {k: v for k, v in out.items() if v is not None}


def plan(preset: ModelPreset, model_path: str, facts: DataFacts, hw: Hardware, choices: Choices = Choices()) -> Plan:
    """The whole recipe set for one run."""
    notes = list(preset.notes) + list(hw.notes)
    thinking = _thinking(preset, facts, notes)
    hyper = hyper_for(facts.train)
    cutoff, longest = _cutoff(preset, facts, notes)
    packing = _packing(choices.packing, facts)
    liger = choices.liger and preset.template in LIGER_TEMPLATES and hw.has_gpu
    eff = choices.effective_batch or hyper.effective_batch
    layout = choose(preset.shape, hw, cutoff=cutoff, longest=longest, packing=packing != "off", liger=liger,
                    rank=hyper.lora_rank, quant=choices.quant, max_batch=max(1, eff // max(1, hw.world_size)))
    stem = _stem(preset, layout)
    model = _model_section(preset, model_path, layout)
    train = _train(stem, preset, model, facts, hyper, layout, hw, choices, thinking, cutoff, packing)
    gen_tokens = THINK_NEW_TOKENS if thinking is True or thinking is None and facts.with_reasoning else PLAIN_NEW_TOKENS
    predict = _predict(stem, preset, model, facts, choices, thinking, cutoff, gen_tokens, notes)
    calib = choices.calib_file or f"{choices.dataset_dir}/{facts.name}_gptq_calib.jsonl"
    merge, gptq = _exports(stem, preset, model_path, choices, thinking, notes, calib)
    chat = _chat(stem, model, preset, choices, thinking, gen_tokens)
    notes += _layout_notes(layout, hw, packing)
    return Plan(stem, train, predict, merge, gptq, chat, layout, hyper, notes)


# ---- decisions ---------------------------------------------------------------------------------------------------


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


def _cutoff(preset: ModelPreset, facts: DataFacts, notes: list[str]) -> tuple[int, int]:
    """cutoff_len from the token p99 (+margin), capped by the model's context; warns about what gets truncated."""
    want = -(-int(facts.tokens_p99 * CUTOFF_MARGIN) // CUTOFF_STEP) * CUTOFF_STEP
    cutoff = max(512, min(want, preset.context_len or want))
    if facts.tokens_max > cutoff:
        notes.append(f"cutoff_len {cutoff} is below the longest sample (~{facts.tokens_max} tokens): the longest ~1% "
                     "are truncated by LF and may lose their answer — drop them instead with build_dataset "
                     "--max-chars, or raise cutoff_len with --set cutoff_len=…")
    return cutoff, min(facts.tokens_max, cutoff)


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
        model_name_or_path=model_path, adapter_name_or_path=adapter, trust_remote_code=True,
        quantization_bit=s.quant_bit, quantization_method="bnb" if s.quant_bit else None,
        enable_liger_kernel=True if s.liger else None, disable_gradient_checkpointing=True if not s.grad_ckpt else None,
    )


def _thinking_kw(thinking) -> dict:
    return {} if thinking == "unset" else {"enable_thinking": thinking}


def _train(stem, preset, model, facts, hyper, layout, hw, choices, thinking, cutoff, packing) -> TrainRecipe:
    s = layout.setup
    eff = choices.effective_batch or hyper.effective_batch
    accum = max(1, -(-eff // (s.batch * max(1, hw.world_size))))
    evaluate, large = bool(facts.val), hyper.size == "large"
    dataset = DatasetSection(
        dataset=f"{facts.name}_train", eval_dataset=f"{facts.name}_val" if evaluate else None,
        dataset_dir=choices.dataset_dir, template=preset.template, cutoff_len=cutoff,
        packing=True if packing == "on" else None, neat_packing=True if packing == "neat" else None,
        mask_history=True if facts.multi_turn and thinking is True else None, overwrite_cache=True,
        **_thinking_kw(thinking),
    )
    return TrainRecipe(
        model=model,
        method=MethodSection(stage="sft", do_train=True, finetuning_type="lora", lora_rank=hyper.lora_rank,
                             lora_alpha=hyper.lora_alpha, lora_dropout=hyper.lora_dropout or None, lora_target="all",
                             deepspeed=ds_path(layout.zero, choices.recipes_dir)),
        dataset=dataset,
        output=OutputSection(output_dir=f"{choices.saves}/{stem}/sft", logging_steps=10 if large else 1,
                             save_strategy="steps" if large else "epoch", save_steps=500 if large else None,
                             plot_loss=True, overwrite_output_dir=True, save_only_model=False, report_to="none"),
        train=TrainSection(per_device_train_batch_size=s.batch, gradient_accumulation_steps=accum,
                           learning_rate=hyper.learning_rate, num_train_epochs=hyper.epochs, lr_scheduler_type="cosine",
                           warmup_steps=hyper.warmup, bf16=True if hw.supports_bf16 else None,
                           fp16=True if hw.has_gpu and not hw.supports_bf16 else None, ddp_timeout=180000000,
                           include_num_input_tokens_seen=True),
        eval=EvalSection(eval_strategy=("steps" if large else "epoch") if evaluate else None,
                         eval_steps=500 if large and evaluate else None,
                         per_device_eval_batch_size=s.batch if evaluate else None),
    )


def _predict(stem, preset, model, facts, choices, thinking, cutoff, new_tokens, notes) -> PredictRecipe:
    split = facts.eval_split or "train"
    if split == "train":
        notes.append(f"'{facts.name}' has no val or test split: the predict recipe scores the TRAINING data "
                     "(optimistic figures) — rebuild with --split 80/10/10 to hold some out")
    adapter = model.model_copy(update={"adapter_name_or_path": f"{choices.saves}/{stem}/sft",
                                       "disable_gradient_checkpointing": None, "enable_liger_kernel": None})
    return PredictRecipe(
        model=adapter,
        dataset=DatasetSection(eval_dataset=f"{facts.name}_{split}", dataset_dir=choices.dataset_dir,
                               template=preset.template, cutoff_len=cutoff, overwrite_cache=True,
                               **_thinking_kw(thinking)),
        output=OutputSection(output_dir=f"{choices.saves}/{stem}/predict", overwrite_output_dir=True, report_to="none"),
        eval=EvalSection(per_device_eval_batch_size=4, predict_with_generate=True, max_new_tokens=new_tokens,
                         do_sample=False),
    )


def _exports(stem, preset, model_path, choices, thinking, notes, calib) -> tuple[ExportRecipe, ExportRecipe | None]:
    tpl = TemplateSection(template=preset.template, **_thinking_kw(thinking))
    base = ModelSection(model_name_or_path=model_path, adapter_name_or_path=f"{choices.saves}/{stem}/sft",
                        trust_remote_code=True)
    merged_dir = f"{choices.saves}/{stem}/merged"
    merge = ExportRecipe(model=base, template=tpl,
                         export=ExportSection(export_dir=merged_dir, export_size=5, export_device="cpu",
                                              export_legacy_format=False))
    if preset.template == "chatglm3":
        notes.append("no GPTQ recipe: LF's GPTQ export refuses ChatGLM models")
        return merge, None
    gptq = ExportRecipe(
        model=ModelSection(model_name_or_path=merged_dir, trust_remote_code=True), template=tpl,
        export=ExportSection(export_dir=f"{choices.saves}/{stem}/gptq-int4", export_size=5, export_device="auto",
                             export_quantization_bit=4, export_quantization_dataset=calib,
                             export_quantization_nsamples=128, export_quantization_maxlen=1024),
    )
    return merge, gptq


def _chat(stem, model, preset, choices, thinking, new_tokens) -> ChatRecipe:
    serve = ModelSection(model_name_or_path=model.model_name_or_path, adapter_name_or_path=f"{choices.saves}/{stem}/sft",
                         trust_remote_code=True, quantization_bit=model.quantization_bit,
                         quantization_method=model.quantization_method, infer_backend="huggingface")
    return ChatRecipe(model=serve, template=TemplateSection(template=preset.template, **_thinking_kw(thinking)),
                      generation=GenerationSection(max_new_tokens=new_tokens, temperature=0.6, top_p=0.95))


DS_FILES = {"z3": "ds_z3_config.json", "z3_offload": "ds_z3_offload_config.json"}


def ds_path(zero: str | None, recipes_dir: str) -> str | None:
    """Where the recipe points LF for its DeepSpeed config (relative to the launch folder, like dataset_dir)."""
    return f"{recipes_dir}/deepspeed/{DS_FILES[zero]}" if zero else None


def _layout_notes(layout: Layout, hw: Hardware, packing: str) -> list[str]:
    s, est = layout.setup, layout.estimate
    gpu = f"{hw.gpu.name} {hw.gpu.vram_gib:.0f} GiB" if hw.gpu else "no GPU"
    method = "4-bit QLoRA" if s.quant_bit else "16-bit LoRA"
    out = [f"memory: ~{est.need_gib:.1f} GiB needed of {gpu} per GPU ({method}, batch {s.batch}, cutoff "
           f"{s.cutoff_len}, checkpointing {'on' if s.grad_ckpt else 'off'}, liger {'on' if s.liger else 'off'}, "
           f"packing {packing}); largest term: {est.dominant}"]
    if hw.world_size > 1:
        out.append("multi-GPU: " + ("DeepSpeed ZeRO-3 (the model does not fit per GPU under DDP)" if layout.zero
                                    else "DDP (the model fits on each GPU)"))
    if s.liger:
        out.append("enable_liger_kernel needs `pip install liger-kernel` on the training machine")
    if s.quant_bit:
        out.append("quantization_bit 4 needs `pip install bitsandbytes` (CUDA)")
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
