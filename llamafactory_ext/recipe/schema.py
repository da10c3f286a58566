"""Pydantic model of the LLaMA-Factory 0.9.5 YAML recipes we write, with LF's launch-time cross-rules run at build time.

RECIPE flow: plan (pure) → **Recipe** → render.py (YAML text, overrides) → lf_check.py (LF's own parser) → io.
The cross-rules live in rules.py (split out when this file passed 550 lines; one function per LF rule).
A field left None is not written, so LF's own default applies; cross-rules read those defaults from LF_DEFAULTS.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from functools import cache
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)

from ..errors import RecipeError, UnknownNameError, lookup
from . import rules as lf_rules
from .models import LF_TEMPLATES
from .rules import EFFICIENT_EOS_TEMPLATES, QUANT_BITS, Rule, zero_stage  # noqa: F401 - re-exported

# Keys where LF gives null a meaning: an explicit None is written as `key: null` (enable_thinking: null is LF's
# mixed CoT mode, unlike its default true; LF's own examples write resume_from_checkpoint: null). Any other key
# set to None is simply not written.
WRITES_NULL = frozenset({"enable_thinking", "resume_from_checkpoint"})
# Keys from older LF / transformers YAMLs, with what to write instead.
RENAMED = {
    "warmup_ratio": "transformers 5.2 dropped warmup_ratio; write warmup_steps instead "
    "(a value below 1 is a ratio of the total steps, e.g. warmup_steps=0.1)",
    "evaluation_strategy": "transformers renamed it; write eval_strategy",
    "gradient_checkpointing": "LF checkpoints activations by itself; write disable_gradient_checkpointing=true "
    "to turn that off",
}
# LF / transformers defaults of the keys the cross-rules read: the value a key has when it is not written.
LF_DEFAULTS: dict[str, Any] = {
    "stage": "sft", "finetuning_type": "lora", "do_train": False, "do_eval": False, "do_predict": False,
    "predict_with_generate": False, "compute_accuracy": False, "val_size": 0.0, "eval_strategy": "no",
    "per_device_train_batch_size": 8, "flash_attn": "auto", "bf16": False, "fp16": False, "pure_bf16": False,
    "train_on_prompt": False, "mask_history": False, "neat_packing": False, "quantization_method": "bnb",
    "infer_backend": "huggingface", "enable_thinking": True, "preserve_thinking": False,
    "save_strategy": "steps", "save_steps": 500, "load_best_model_at_end": False,
}


def _opt(description: str, **constraints: Any) -> Any:
    """An optional key: None means "not written", so LF's default applies."""
    return Field(None, description=description, **constraints)


# Shared key types, declared once for every section that carries them.
Steps = PositiveInt | Annotated[float, Field(gt=0, lt=1)]  # HF: an int, or a float below 1 = ratio of total steps
Template = Annotated[str | None, _opt("LF template name (e.g. qwen3, qwen3_nothink, gemma3, qwen); use the same one "
                                      "for train, predict, export and chat.")]
EnableThinking = Annotated[bool | None, _opt(
    "Reasoning templates only. true (LF default): samples without CoT train an empty think block; false: CoT "
    "removed, empty block in the prompt; null: mixed mode, CoT trained where present. Set None to write null.")]
PreserveThinking = Annotated[bool | None, _opt("Keep the CoT of history turns (LF default false drops it).")]
DefaultSystem = Annotated[str | None, _opt("System prompt used when a sample has none (overrides the template's).")]
MaxNewTokens = Annotated[PositiveInt | None, _opt("Generation budget (LF default 1024; thinking models need 4096+).")]
DoSample = Annotated[bool | None, _opt("Sample (LF default true); false gives greedy, reproducible generations.")]
Temperature = Annotated[NonNegativeFloat | None, _opt("Sampling temperature (LF default 0.95).")]
TopP = Annotated[Annotated[float, Field(gt=0, le=1)] | None, _opt("Nucleus sampling mass (LF default 0.7).")]
TopK = Annotated[PositiveInt | None, _opt("Top-k sampling (LF default 50).")]


class Section(BaseModel):
    """One `### name` block of an LF recipe."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def written(self) -> Iterator[tuple[str, Any]]:
        """(key, value) pairs that go into the YAML, in declaration order."""
        for key in type(self).model_fields:
            value = getattr(self, key)
            if value is not None or (key in WRITES_NULL and key in self.model_fields_set):
                yield key, value


class ModelSection(Section):
    model_name_or_path: str = Field(min_length=1, description="Hub id or local folder of the base model.")
    adapter_name_or_path: str | None = _opt("LoRA adapter folder(s), comma-separated, loaded on the base (LoRA only).")
    trust_remote_code: bool | None = _opt("Run the model repo's own Python code (ChatGLM3 needs it; LF default false).")
    quantization_bit: Literal[1, 2, 3, 4, 5, 6, 8] | None = _opt(
        "Load the base in N bits for QLoRA: bnb 4/8, hqq 1-8, eetq 8. LoRA/OFT only.")
    quantization_method: Literal["bnb", "hqq", "eetq"] | None = _opt("On-the-fly quantization backend (LF default bnb).")
    quantization_type: Literal["nf4", "fp4"] | None = _opt("bnb 4-bit data type (LF default nf4).")
    double_quantization: bool | None = _opt("bnb double quantization of the scales (LF default true).")
    flash_attn: Literal["auto", "disabled", "sdpa", "fa2"] | None = _opt(
        "Attention kernel: auto (transformers default, usually sdpa), disabled (eager), sdpa, or fa2 (needs the "
        "flash-attn package; LF silently falls back without it).")
    enable_liger_kernel: bool | None = _opt("Fused Liger kernels: less memory (needs the liger-kernel package).")
    disable_gradient_checkpointing: bool | None = _opt(
        "LF checkpoints activations by default; true turns that off (faster, much more memory).")
    upcast_layernorm: bool | None = _opt("Keep layer norms in fp32; LF recommends it with quantization_bit.")
    infer_backend: Literal["huggingface", "vllm", "sglang"] | None = _opt(
        "Engine for chat/api/webchat (LF default huggingface, the only one train and predict accept).")
    infer_dtype: Literal["auto", "float16", "bfloat16", "float32"] | None = _opt(
        "Weights dtype for export and inference (LF default auto).")


class MethodSection(Section):
    stage: Literal["pt", "sft", "rm", "ppo", "dpo", "kto"] | None = _opt("Training stage (LF default sft).")
    do_train: bool | None = _opt("Train (HF default false: a train recipe must set it).")
    do_eval: bool | None = _opt("Evaluate loss on eval data (implied by eval_strategy other than no).")
    do_predict: bool | None = _opt("Generate predictions for eval data (needs predict_with_generate).")
    finetuning_type: Literal["lora", "oft", "freeze", "full"] | None = _opt("What is trained (LF default lora).")
    lora_rank: PositiveInt | None = _opt("LoRA rank r (LF default 8).")
    lora_alpha: PositiveInt | None = _opt("LoRA scale alpha (LF default 2 * lora_rank).")
    lora_dropout: Annotated[float, Field(ge=0, lt=1)] | None = _opt("Dropout on the LoRA path (LF default 0).")
    lora_target: str | None = _opt("Modules to adapt: all (LF default: every Linear but lm_head) or a comma list.")
    use_rslora: bool | None = _opt("Rank-stabilised LoRA scaling alpha / sqrt(r).")
    use_dora: bool | None = _opt("Weight-decomposed LoRA (DoRA): slower, sometimes better.")
    deepspeed: str | None = _opt(
        "DeepSpeed JSON path, relative to the launch folder; needs FORCE_TORCHRUN=1 even on one GPU.")
    pure_bf16: bool | None = _opt("Train in pure bf16 without fp32 master weights (not with ZeRO-3).")


class DatasetSection(Section):
    dataset: str | None = _opt("Training sets: comma-separated keys of dataset_dir/dataset_info.json (not paths).")
    eval_dataset: str | None = _opt("Evaluation sets, same form as dataset; excludes val_size.")
    dataset_dir: str | None = _opt("Folder with dataset_info.json, relative to the launch folder (LF default data).")
    template: Template = None
    cutoff_len: PositiveInt | None = _opt("Token budget per sample; longer ones are truncated (LF default 2048).")
    max_samples: PositiveInt | None = _opt("Keep the first N rows of each dataset.")
    val_size: NonNegativeInt | Annotated[float, Field(ge=0, lt=1)] | None = _opt(
        "Split this much off `dataset` for evaluation: a fraction below 1 or a row count; excludes eval_dataset.")
    packing: bool | None = _opt("Pack samples into cutoff_len sequences (LF default: only for stage pt).")
    neat_packing: bool | None = _opt("Packing without cross-attention between samples (SFT only).")
    mask_history: bool | None = _opt("Train only the last turn of multi-turn samples (not with train_on_prompt).")
    enable_thinking: EnableThinking = None
    preserve_thinking: PreserveThinking = None
    default_system: DefaultSystem = None
    train_on_prompt: bool | None = _opt("Also train the prompt tokens (not with efficient-EOS templates).")
    overwrite_cache: bool | None = _opt("Re-tokenise instead of reusing the datasets cache.")
    preprocessing_num_workers: PositiveInt | None = _opt("Processes for tokenisation.")
    dataloader_num_workers: NonNegativeInt | None = _opt("DataLoader worker processes (HF default 0).")
    tokenized_path: str | None = _opt("Save / load the tokenised dataset here (loading ignores other data keys).")

    @field_validator("template")
    @classmethod
    def known_template(cls, name: str | None) -> str | None:
        return _known_template(name)


class OutputSection(Section):
    output_dir: str = Field(min_length=1, description="Where checkpoints, logs and predictions go.")
    logging_steps: Steps | None = _opt("Log every N steps (or a ratio of total steps below 1).")
    save_steps: Steps | None = _opt("Checkpoint every N steps (or a ratio of total steps below 1).")
    save_strategy: Literal["no", "steps", "epoch", "best"] | None = _opt("When to checkpoint (HF default steps).")
    save_total_limit: PositiveInt | None = _opt("Keep only the newest N checkpoints.")
    plot_loss: bool | None = _opt("Write training_loss.png and friends after training (needs matplotlib).")
    overwrite_output_dir: bool | None = _opt("Start afresh instead of resuming from output_dir's last checkpoint.")
    save_only_model: bool | None = _opt("Checkpoints without optimizer state: smaller, but cannot resume exactly.")
    report_to: str | list[str] | None = _opt("Loggers: none, tensorboard, wandb, swanlab, mlflow or all.")


class TrainSection(Section):
    per_device_train_batch_size: PositiveInt | None = _opt("Micro-batch per GPU (HF default 8).")
    gradient_accumulation_steps: PositiveInt | None = _opt("Micro-batches per optimizer step.")
    learning_rate: Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)] | None = _opt(
        "Peak learning rate (HF default 5.0e-5); LoRA runs use 1e-5 to 5e-4.")
    num_train_epochs: Annotated[float, Field(gt=0, le=1000, allow_inf_nan=False)] | None = _opt(
        "Epochs (HF default 3.0); max_steps wins when set.")
    max_steps: Annotated[int, Field(ge=-1)] | None = _opt("Stop after N optimizer steps (-1: use epochs).")
    lr_scheduler_type: Literal[
        "linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
        "inverse_sqrt", "reduce_lr_on_plateau", "cosine_with_min_lr", "cosine_warmup_with_min_lr",
        "warmup_stable_decay",
    ] | None = _opt("Learning-rate schedule (HF default linear).")
    warmup_steps: NonNegativeInt | Annotated[float, Field(ge=0, lt=1)] | None = _opt(
        "Warm-up: N steps, or a float below 1 = ratio of total steps (what warmup_ratio was).")
    weight_decay: NonNegativeFloat | None = _opt("AdamW weight decay (HF default 0).")
    bf16: bool | None = _opt("bf16 mixed precision (Ampere or newer).")
    fp16: bool | None = _opt("fp16 mixed precision (pre-Ampere GPUs).")
    ddp_timeout: PositiveInt | None = _opt("Seconds before a distributed collective times out (LF examples 180000000).")
    resume_from_checkpoint: str | None = _opt("Checkpoint folder to resume; null lets LF resume from output_dir.")
    include_num_input_tokens_seen: bool | Literal["all", "non_padding", "no"] | None = _opt(
        "Count input tokens: adds throughput to trainer_log.jsonl.")
    seed: NonNegativeInt | None = _opt("Random seed (HF default 42).")
    max_grad_norm: NonNegativeFloat | None = _opt("Gradient clipping norm (HF default 1.0).")
    optim: str | None = _opt("Optimizer name (HF default adamw_torch_fused; e.g. paged_adamw_8bit).")


class EvalSection(Section):
    eval_strategy: Literal["no", "steps", "epoch"] | None = _opt("When to evaluate (HF default no).")
    eval_steps: Steps | None = _opt("Evaluate every N steps (HF default: logging_steps).")
    per_device_eval_batch_size: PositiveInt | None = _opt("Eval / predict micro-batch per GPU (HF default 8).")
    predict_with_generate: bool | None = _opt("Generate text in eval/predict; SFT only, not with ZeRO-3.")
    max_new_tokens: MaxNewTokens = None
    do_sample: DoSample = None
    temperature: Temperature = None
    top_p: TopP = None
    top_k: TopK = None
    compute_accuracy: bool | None = _opt("Token accuracy in eval (not with predict_with_generate).")
    load_best_model_at_end: bool | None = _opt(
        "Load the checkpoint with the best metric_for_best_model at the end (needs matching eval/save strategy).")
    metric_for_best_model: str | None = _opt("Metric that picks the best checkpoint, e.g. eval_loss.")


class TemplateSection(Section):
    template: Template = None
    enable_thinking: EnableThinking = None
    preserve_thinking: PreserveThinking = None
    default_system: DefaultSystem = None

    @field_validator("template")
    @classmethod
    def known_template(cls, name: str | None) -> str | None:
        return _known_template(name)


class GenerationSection(Section):
    max_new_tokens: MaxNewTokens = None
    do_sample: DoSample = None
    temperature: Temperature = None
    top_p: TopP = None
    top_k: TopK = None
    repetition_penalty: PositiveFloat | None = _opt("Penalty for repeated tokens (LF default 1.0).")


class ExportSection(Section):
    export_dir: str = Field(min_length=1, description="Folder the merged or quantized model is written to.")
    export_size: PositiveInt | None = _opt("Shard size in GB (LF default 5).")
    export_device: Literal["cpu", "auto"] | None = _opt("Merge on cpu (LF default) or auto (GPU, faster).")
    export_legacy_format: bool | None = _opt(".bin instead of safetensors (ignored on transformers 5).")
    export_quantization_bit: Literal[2, 3, 4, 8] | None = _opt("GPTQ bits; the model must be merged first.")
    export_quantization_dataset: str | None = _opt("GPTQ calibration file or hub id with a `text` column.")
    export_quantization_nsamples: PositiveInt | None = _opt("Calibration samples (LF default 128).")
    export_quantization_maxlen: PositiveInt | None = _opt(
        "Calibration length (LF default 1024); every sampled text must be longer.")


def _known_template(name: str | None) -> str | None:
    if name is not None and name not in LF_TEMPLATES:
        close = difflib.get_close_matches(name, sorted(LF_TEMPLATES), n=3, cutoff=0.6)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise ValueError(f"template '{name}' does not exist in LLaMA-Factory 0.9.5.{hint}")
    return name




class Recipe(BaseModel):
    """Base of the four recipe kinds: sections in `### block` order, cross-rules checked on construction.

    Change a recipe with render.apply_overrides (validated again), not model_copy (which skips validation).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: ClassVar[str]
    command: ClassVar[str]  # the llamafactory-cli subcommand that reads it
    rules: ClassVar[tuple[Rule, ...]]

    def sections(self) -> Iterator[tuple[str, Section]]:
        for name in type(self).model_fields:
            yield name, getattr(self, name)

    def value(self, key: str) -> Any:
        """The value LF will see: the written one, else LF's default (None if unknown)."""
        for _, section in self.sections():
            if key in type(section).model_fields and getattr(section, key) is not None:
                return getattr(section, key)
        return LF_DEFAULTS.get(key)

    @property
    def needs_torchrun(self) -> bool:
        """DeepSpeed runs only under a distributed launch: the CLI must print FORCE_TORCHRUN=1."""
        return bool(self.value("deepspeed"))

    @property
    def notes(self) -> tuple[str, ...]:
        """Launch notes and warnings: things that are legal but deserve a line in the CLI output."""
        return tuple(note for check in lf_rules.NOTES if (note := check(self)))

    @model_validator(mode="after")
    def _cross_rules(self) -> Recipe:
        problems = [problem for rule in self.rules if (problem := rule(self))]
        if problems:
            raise ValueError("\n".join(problems))
        return self


# ---- the four recipe kinds ---------------------------------------------------------------------------------------


class TrainRecipe(Recipe):
    """`llamafactory-cli train`: fine-tune, optionally evaluating on the way."""

    kind: ClassVar[str] = "train"
    command: ClassVar[str] = "train"
    rules: ClassVar[tuple[Rule, ...]] = (
        lf_rules.is_training, *lf_rules.MODEL_RULES, *lf_rules.DATA_RULES, lf_rules.bf16_xor_fp16, lf_rules.neat_packing_fa2,
        lf_rules.best_model_cadence)
    model: ModelSection
    method: MethodSection = Field(default_factory=MethodSection, description="Stage and fine-tuning method.")
    dataset: DatasetSection
    output: OutputSection
    train: TrainSection = Field(default_factory=TrainSection, description="Optimisation hyper-parameters.")
    eval: EvalSection = Field(default_factory=EvalSection, description="Evaluation during training.")


def _predict_method() -> MethodSection:
    return MethodSection(stage="sft", do_predict=True)


class PredictRecipe(Recipe):
    """`llamafactory-cli train` with do_predict: generated_predictions.jsonl for eval_dataset (or the val split)."""

    kind: ClassVar[str] = "predict"
    command: ClassVar[str] = "train"
    rules: ClassVar[tuple[Rule, ...]] = (lf_rules.is_predicting, *lf_rules.MODEL_RULES, *lf_rules.DATA_RULES)
    model: ModelSection
    method: MethodSection = Field(default_factory=_predict_method, description="stage: sft, do_predict: true.")
    dataset: DatasetSection
    output: OutputSection
    eval: EvalSection = Field(default_factory=lambda: EvalSection(predict_with_generate=True),
                              description="Generation settings of the prediction run.")


class ExportRecipe(Recipe):
    """`llamafactory-cli export`: merge a LoRA adapter into the base, or GPTQ-quantize merged weights."""

    kind: ClassVar[str] = "export"
    command: ClassVar[str] = "export"
    rules: ClassVar[tuple[Rule, ...]] = (*lf_rules.MODEL_RULES, lf_rules.export_rules)
    model: ModelSection
    template: TemplateSection = Field(default_factory=TemplateSection, description="Template of the exported model.")
    export: ExportSection


class ChatRecipe(Recipe):
    """`llamafactory-cli chat | webchat | api`: serve the base model with an optional adapter."""

    kind: ClassVar[str] = "chat"
    command: ClassVar[str] = "chat"
    rules: ClassVar[tuple[Rule, ...]] = (*lf_rules.MODEL_RULES, lf_rules.vllm_rules)
    model: ModelSection
    template: TemplateSection = Field(default_factory=TemplateSection, description="Chat template and thinking mode.")
    generation: GenerationSection = Field(default_factory=GenerationSection, description="Sampling settings.")


KINDS: dict[str, type[Recipe]] = {c.kind: c for c in (TrainRecipe, PredictRecipe, ExportRecipe, ChatRecipe)}


def recipe_class(kind: str | type[Recipe]) -> type[Recipe]:
    return kind if isinstance(kind, type) else lookup(KINDS, "recipe kind", kind)


@cache
def key_index(kind: str | type[Recipe]) -> dict[str, str]:
    """key → name of the section that declares it, for one recipe kind."""
    cls = recipe_class(kind)
    return {key: name for name, f in cls.model_fields.items() for key in f.annotation.model_fields}


@cache
def all_keys() -> frozenset[str]:
    return frozenset(key for cls in KINDS.values() for key in key_index(cls))


def section_of(kind: str | type[Recipe], key: str) -> str:
    """The section of `key` in this kind; RecipeError for renamed keys, UnknownNameError with did-you-mean."""
    cls = recipe_class(kind)
    if key in RENAMED:
        raise RecipeError(f"{key}: {RENAMED[key]}")
    if key in key_index(cls):
        return key_index(cls)[key]
    owners = [k for k, c in KINDS.items() if key in key_index(c)]
    if owners:
        raise RecipeError(f"{key}: not a key of a {cls.kind} recipe (it belongs to {' / '.join(owners)} recipes)")
    raise UnknownNameError("recipe key", key, all_keys())


def parse(kind: str | type[Recipe], data: Mapping[str, Any], source: str = "recipe") -> Recipe:
    """Nested {section: {key: value}} → recipe; every problem becomes one RecipeError naming the keys."""
    try:
        return recipe_class(kind).model_validate(data)
    except ValidationError as exc:
        raise recipe_error(exc, source) from None


def recipe_error(exc: ValidationError, source: str = "recipe") -> RecipeError:
    """pydantic's report → `source: key=value: problem` lines (pydantic's own text dumps the whole input)."""
    lines: dict[str, list[str]] = {}
    for err in exc.errors():
        loc = [str(part) for part in err["loc"][:2]]
        where = loc[-1] if len(loc) == 2 else ".".join(loc)  # section.key → key; keys are unique per kind
        if where and err["type"] != "missing":
            where = f"{where}={err['input']!r}"
        for msg in err["msg"].removeprefix("Value error, ").splitlines():
            key = where or msg  # a cross-rule message already names its keys
            lines.setdefault(key, [])
            if where and msg not in lines[key]:
                lines[key].append(msg)
    body = "\n  ".join(f"{key}: {' | '.join(msgs)}" if msgs else key for key, msgs in lines.items())
    names = {cls.__name__: kind for kind, cls in KINDS.items()}
    return RecipeError(f"{source}: invalid {names.get(exc.title, exc.title)} recipe:\n  {body}")
