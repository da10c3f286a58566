"""LLaMA-Factory 0.9.5's launch-time cross-rules, checked at build time (one function per rule).

Each rule reads a recipe through ``recipe.value(key)`` (written value or LF's default) and returns a message that
names the keys and the fix, or None. schema.py attaches them to the recipe kinds.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .models import LF_REASONING_TEMPLATES

if TYPE_CHECKING:
    from .schema import Recipe

Rule = Callable[["Recipe"], "str | None"]

# LF 0.9.5 templates registered with efficient_eos=True: data/template.py refuses `train_on_prompt` with them.
_EFFICIENT_EOS_NAMES = """
aeva bailing bailing_v2 breeze chatglm3 dots_ocr falcon fewshot gemma2 glm4 glm4_5v glm4_7 glm4_moe glm4v glm_ocr glmz1
gpt_oss index solar yi_vl
"""
EFFICIENT_EOS_TEMPLATES = frozenset(_EFFICIENT_EOS_NAMES.split())
# Bits each on-the-fly quantization backend accepts (LF model/model_utils/quantization.py).
QUANT_BITS = {"bnb": {4, 8}, "hqq": {1, 2, 3, 4, 5, 6, 8}, "eetq": {8}}

def zero_stage(deepspeed: str | None) -> int | None:
    """ZeRO stage of a DeepSpeed config: read from the file when it exists, else from LF's name (ds_z3_...)."""
    if not deepspeed:
        return None
    path = Path(deepspeed)
    try:
        return int(json.loads(path.read_text(encoding="utf-8"))["zero_optimization"]["stage"])
    except (OSError, ValueError, KeyError, TypeError):
        match = re.search(r"(?:^|[^a-z])z(?:ero)?_?(\d)", path.name.lower())
        return int(match.group(1)) if match else None


def _needs_lora_or_oft(r: Recipe) -> str | None:
    if r.value("quantization_bit") is not None and r.value("finetuning_type") not in ("lora", "oft"):
        return (f"quantization_bit + finetuning_type={r.value('finetuning_type')}: LF quantizes only for LoRA/OFT — "
                "set finetuning_type: lora (QLoRA) or drop quantization_bit")


def _quant_bits(r: Recipe) -> str | None:
    bit, method = r.value("quantization_bit"), r.value("quantization_method")
    if bit is not None and bit not in QUANT_BITS[method]:
        return f"quantization_bit={bit}: quantization_method {method} supports {sorted(QUANT_BITS[method])} bits"


def _adapter_needs_lora(r: Recipe) -> str | None:
    if r.value("adapter_name_or_path") and r.value("finetuning_type") != "lora":
        return "adapter_name_or_path: adapters load only with finetuning_type: lora"


def _quantized_single_adapter(r: Recipe) -> str | None:
    adapters = r.value("adapter_name_or_path")
    if r.value("quantization_bit") is not None and adapters and "," in adapters:
        return "adapter_name_or_path + quantization_bit: a quantized model takes one adapter — merge them first"


def _val_size_xor_eval_dataset(r: Recipe) -> str | None:
    if r.value("eval_dataset") and r.value("val_size") > 1e-6:  # LF's own threshold
        return ("val_size + eval_dataset: LF accepts one source of eval data — drop val_size (split off `dataset`) "
                "or eval_dataset (a separate set)")


def _val_size_needs_dataset(r: Recipe) -> str | None:
    if r.value("val_size") > 1e-6 and not r.value("dataset"):
        return "val_size without dataset: val_size splits `dataset` — set dataset or use eval_dataset instead"


def _sft_only(r: Recipe) -> str | None:
    used = [k for k in ("predict_with_generate", "neat_packing", "train_on_prompt", "mask_history") if r.value(k)]
    if used and r.value("stage") != "sft":
        return f"{', '.join(used)} + stage={r.value('stage')}: LF allows these only with stage: sft"


def _predict_needs_generate(r: Recipe) -> str | None:
    if r.value("do_predict") and r.value("stage") == "sft" and not r.value("predict_with_generate"):
        return "do_predict needs predict_with_generate: true (LF saves no predictions without it)"


def _generate_not_zero3(r: Recipe) -> str | None:
    if r.value("predict_with_generate") and zero_stage(r.value("deepspeed")) == 3:
        return ("predict_with_generate + deepspeed (ZeRO-3): LF refuses to generate under ZeRO-3 — predict in a "
                "separate run without deepspeed, or use a ZeRO-2 config")


def _generate_not_accuracy(r: Recipe) -> str | None:
    if r.value("predict_with_generate") and r.value("compute_accuracy"):
        return "predict_with_generate + compute_accuracy: LF computes one or the other — drop one"


def _eval_needs_data(r: Recipe) -> str | None:
    wants = [k for k in ("do_eval", "do_predict", "predict_with_generate") if r.value(k)]
    if r.value("eval_strategy") != "no":
        wants.append(f"eval_strategy={r.value('eval_strategy')}")
    if wants and not r.value("eval_dataset") and r.value("val_size") <= 1e-6:
        return f"{', '.join(wants)}: needs eval data — set eval_dataset or val_size > 0"


def bf16_xor_fp16(r: Recipe) -> str | None:
    if r.value("bf16") and r.value("fp16"):
        return "bf16 + fp16: pick one mixed precision (bf16 on Ampere or newer, fp16 before)"


def _pure_bf16_not_zero3(r: Recipe) -> str | None:
    if r.value("pure_bf16") and zero_stage(r.value("deepspeed")) == 3:
        return "pure_bf16 + deepspeed (ZeRO-3): LF refuses the pair — use bf16: true instead of pure_bf16"


def neat_packing_fa2(r: Recipe) -> str | None:
    batch = r.value("per_device_train_batch_size")
    if r.value("neat_packing") and r.value("flash_attn") == "fa2" and batch != 1:
        return (f"neat_packing + flash_attn=fa2 + per_device_train_batch_size={batch}: LF's collator asserts a "
                "batch of 1 — set per_device_train_batch_size: 1 and raise gradient_accumulation_steps")


def best_model_cadence(r: Recipe) -> str | None:
    """transformers' TrainingArguments: load_best_model_at_end needs the save strategy to match the eval strategy
    and, for steps, save_steps to be a multiple of eval_steps."""
    if not r.value("load_best_model_at_end"):
        return None
    save, ev = r.value("save_strategy"), r.value("eval_strategy")
    if save != ev:
        return (f"load_best_model_at_end + save_strategy={save} + eval_strategy={ev}: transformers needs the same "
                "strategy for both — set them equal")
    every, ev_steps = r.value("save_steps"), r.value("eval_steps") or r.value("logging_steps")
    if save == "steps" and isinstance(every, int) and isinstance(ev_steps, int) and every % ev_steps:
        return (f"load_best_model_at_end + save_steps={every} + eval_steps={ev_steps}: save_steps must be a multiple "
                "of eval_steps")


def _mask_history_xor_train_on_prompt(r: Recipe) -> str | None:
    if r.value("mask_history") and r.value("train_on_prompt"):
        return "mask_history + train_on_prompt: LF refuses the pair — drop one"


def _train_on_prompt_template(r: Recipe) -> str | None:
    if r.value("train_on_prompt") and r.value("template") in EFFICIENT_EOS_TEMPLATES:
        return (f"train_on_prompt + template={r.value('template')}: this template uses an efficient EOS and LF "
                "refuses train_on_prompt with it — drop train_on_prompt")


def _hf_backend(r: Recipe) -> str | None:
    if r.value("infer_backend") != "huggingface":
        return f"infer_backend={r.value('infer_backend')}: train and predict run on huggingface only — drop it"


def is_training(r: Recipe) -> str | None:
    if not r.value("do_train"):
        return "do_train: a train recipe must set do_train: true (LF's default false trains nothing)"
    if not r.value("dataset"):
        return "dataset: a train recipe needs dataset (keys of dataset_info.json)"


def is_predicting(r: Recipe) -> str | None:
    if not r.value("do_predict") or r.value("do_train") or r.value("stage") != "sft":
        return "do_predict / do_train / stage: a predict recipe has do_predict: true, no do_train, stage: sft"


def export_rules(r: Recipe) -> str | None:
    if r.value("quantization_bit") is not None:
        return ("quantization_bit: export needs full-precision weights — drop it "
                "(GPTQ export is export_quantization_bit)")
    if r.value("export_quantization_bit") is not None:
        if r.value("adapter_name_or_path"):
            return ("export_quantization_bit + adapter_name_or_path: LF quantizes merged weights only — merge "
                    "first (an export recipe without export_quantization_bit), then quantize the merged folder")
        if not r.value("export_quantization_dataset"):
            return "export_quantization_bit needs export_quantization_dataset (a file or hub id with a text column)"


def vllm_rules(r: Recipe) -> str | None:
    if r.value("infer_backend") != "vllm":
        return None
    if r.value("quantization_bit") is not None:
        return "infer_backend=vllm + quantization_bit: vLLM has no bnb loading — drop quantization_bit"
    if "," in (r.value("adapter_name_or_path") or ""):
        return "infer_backend=vllm + adapter_name_or_path: vLLM takes one adapter — merge them first"


def _torchrun_note(r: Recipe) -> str | None:
    if r.needs_torchrun:
        return (f"deepspeed is set: launch with FORCE_TORCHRUN=1 llamafactory-cli {r.command} <recipe> "
                "(LF refuses DeepSpeed without a distributed launch, even on one GPU)")


def _thinking_note(r: Recipe) -> str | None:
    template = r.value("template")
    keys = [k for _, s in r.sections() for k in ("enable_thinking", "preserve_thinking") if k in s.model_fields_set]
    if keys and template is not None and template not in LF_REASONING_TEMPLATES:
        return f"{', '.join(keys)}: no effect with template {template} (not a reasoning template)"


MODEL_RULES: tuple[Rule, ...] = (_needs_lora_or_oft, _quant_bits, _adapter_needs_lora, _quantized_single_adapter)
DATA_RULES: tuple[Rule, ...] = (
    _val_size_xor_eval_dataset, _val_size_needs_dataset, _sft_only, _predict_needs_generate, _generate_not_zero3,
    _generate_not_accuracy, _eval_needs_data, _pure_bf16_not_zero3, _mask_history_xor_train_on_prompt,
    _train_on_prompt_template, _hf_backend,
)
NOTES: tuple[Rule, ...] = (_torchrun_note, _thinking_note)
