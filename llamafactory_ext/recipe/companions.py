"""Predict, merge, GPTQ and chat companions of a train recipe (pure): same template, thinking mode and paths, and
memory priced like training (LF's predict puts a whole model copy on each GPU; chat spreads over the node).

RECIPE flow: plan.py decides the run (Ctx) → **companions** → Recipe objects → render.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .calibration import CALIB_MAXLEN, CALIB_NSAMPLES
from .facts import DataFacts
from .hardware import Hardware
from .layout import Layout
from .memory import HEADROOM, inference_need_gib
from .models import ModelPreset
from .schema import (
    ChatRecipe,
    DatasetSection,
    EvalSection,
    ExportRecipe,
    ExportSection,
    GenerationSection,
    ModelSection,
    OutputSection,
    PredictRecipe,
    TemplateSection,
)

if TYPE_CHECKING:
    from .plan import Choices

# Qwen's recommended sampling for thinking mode (model cards of Qwen3 / Qwen3-4B-Thinking-2507): greedy decoding
# makes thinking models repeat themselves endlessly.
THINK_SAMPLING = {"do_sample": True, "temperature": 0.6, "top_p": 0.95, "top_k": 20}
PREDICT_BATCHES = (8, 4, 2, 1)
NO_GPTQ = {
    "chatglm3": "LF's GPTQ export refuses ChatGLM models",
    "gemma3": "LF 0.9.5 quantizes the blocks at language_model.model.layers, but transformers 5.6 keeps "
              "Gemma3ForConditionalGeneration's decoder at model.language_model.layers (AttributeError at export)",
}


@dataclass(frozen=True)
class Ctx:
    """Decisions every section reads."""

    preset: ModelPreset
    facts: DataFacts
    hw: Hardware
    choices: Choices
    thinking: bool | None | str
    precision: str  # bf16 | fp16 | fp32 (CPU dry run)
    cutoff: int
    packing: str
    run_dir: str

    @property
    def thinks(self) -> bool:
        return self.thinking is True or (self.thinking is None and self.facts.with_reasoning > 0)


def remote_code(preset: ModelPreset) -> bool | None:
    """trust_remote_code only where the model needs its own code (ChatGLM3, or auto_map in a local config.json)."""
    return True if preset.trust_remote_code else None


def thinking_kw(thinking) -> dict:
    return {} if thinking == "unset" else {"enable_thinking": thinking}


def sampling(ctx: Ctx) -> dict:
    """Thinking models sample with Qwen's settings; other predictions are greedy (reproducible scores)."""
    return dict(THINK_SAMPLING) if ctx.thinks else {"do_sample": False}


def infer_fit(ctx: Ctx, layout: Layout, new_tokens: int, vram: float) -> tuple[int, int | None] | None:
    """(batch, quant_bit) of the largest generation that fits ``vram`` GiB, 16-bit first; None if nothing fits."""
    for bits in (layout.setup.quant_bit, 4) if layout.setup.quant_bit is None else (layout.setup.quant_bit,):
        for batch in PREDICT_BATCHES:
            need = inference_need_gib(ctx.preset.shape, batch=batch, prompt=ctx.cutoff, new_tokens=new_tokens,
                                      quant_bit=bits, lora_rank=layout.setup.lora_rank)
            if need <= HEADROOM * vram:
                return batch, bits
    return None


def predict_recipe(ctx: Ctx, model: ModelSection, layout: Layout, new_tokens: int, notes: list[str]) -> PredictRecipe:
    split = ctx.facts.eval_split or "train"
    if split == "train":
        notes.append(f"'{ctx.facts.name}' has no val or test split: the predict recipe scores the TRAINING data "
                     "(optimistic figures) — rebuild with --split 80/10/10 to hold some out")
    batch, bits = 1, layout.setup.quant_bit
    if ctx.hw.gpu is not None:
        fit = infer_fit(ctx, layout, new_tokens, ctx.hw.gpu.vram_gib)
        if fit is None:
            notes.append(f"predict does not fit one {ctx.hw.gpu.name} even 4-bit at batch 1 ({ctx.cutoff} + "
                         f"{new_tokens} tokens): LF's predict loads a whole model copy per GPU — run it on a bigger "
                         "card, or lower max_new_tokens / cutoff_len with --set")
        else:
            batch, bits = fit
            if bits and not layout.setup.quant_bit:
                notes.append(f"predict loads the base 4-bit (quantization_bit: 4): the 16-bit model does not fit one "
                             f"{ctx.hw.gpu.name} (LF's predict puts a whole copy on each GPU); scores are close to, "
                             "not exactly, the trained model's — merge and predict on a bigger card for exact ones")
    adapter = model.model_copy(update={"adapter_name_or_path": f"{ctx.run_dir}/sft", "quantization_bit": bits,
                                       "quantization_method": "bnb" if bits else None,
                                       "upcast_layernorm": True if bits else None,
                                       "disable_gradient_checkpointing": None, "enable_liger_kernel": None})
    return PredictRecipe(
        model=adapter,
        dataset=DatasetSection(eval_dataset=f"{ctx.facts.name}_{split}", dataset_dir=ctx.choices.dataset_dir,
                               template=ctx.preset.template, cutoff_len=ctx.cutoff, **thinking_kw(ctx.thinking)),
        output=OutputSection(output_dir=f"{ctx.run_dir}/predict", report_to="none"),
        eval=EvalSection(per_device_eval_batch_size=batch, predict_with_generate=True, max_new_tokens=new_tokens,
                         **sampling(ctx)),
    )


def export_recipes(ctx: Ctx, model_path: str, notes: list[str]) -> tuple[ExportRecipe, ExportRecipe | None]:
    tpl = TemplateSection(template=ctx.preset.template, **thinking_kw(ctx.thinking))
    remote = remote_code(ctx.preset)
    base = ModelSection(model_name_or_path=model_path, adapter_name_or_path=f"{ctx.run_dir}/sft",
                        trust_remote_code=remote)
    merged_dir = f"{ctx.run_dir}/merged"
    merge = ExportRecipe(model=base, template=tpl,
                         export=ExportSection(export_dir=merged_dir, export_size=5, export_device="cpu",
                                              export_legacy_format=False))
    why = NO_GPTQ.get(ctx.preset.template)
    if why:
        notes.append(f"no GPTQ recipe: {why}. Serve the merged 16-bit model ({merged_dir}), or load it 4-bit at "
                     "inference with quantization_bit: 4 (bitsandbytes) in the chat recipe")
        return merge, None
    windows = ctx.choices.calib_windows
    if windows == 0:
        notes.append(f"no GPTQ recipe: the training data is shorter than one {CALIB_MAXLEN}-token calibration "
                     "passage (LF's GPTQ export fails with 'Cannot find satisfying example')")
        return merge, None
    nsamples = CALIB_NSAMPLES if windows is None else min(CALIB_NSAMPLES, windows)
    if nsamples < CALIB_NSAMPLES:
        notes.append(f"GPTQ calibrates on {nsamples} windows of {CALIB_MAXLEN} tokens (the data holds at least that "
                     f"many; 128 is usual): pass a larger text file with --set export_quantization_dataset=… for more")
    gptq = ExportRecipe(
        model=ModelSection(model_name_or_path=merged_dir, trust_remote_code=remote), template=tpl,
        export=ExportSection(export_dir=f"{ctx.run_dir}/gptq-int4", export_size=5, export_device="auto",
                             export_quantization_bit=4, export_quantization_dataset=ctx.choices.calib_file
                             or f"{ctx.choices.dataset_dir}/{ctx.facts.name}_gptq_calib.jsonl",
                             export_quantization_nsamples=nsamples, export_quantization_maxlen=CALIB_MAXLEN),
    )
    return merge, gptq


def chat_recipe(ctx: Ctx, model: ModelSection, layout: Layout, new_tokens: int, notes: list[str]) -> ChatRecipe:
    bits = layout.setup.quant_bit
    if ctx.hw.gpu is not None:  # chat loads with device_map auto: the model may spread over this node's GPUs
        fit = infer_fit(ctx, layout, new_tokens, ctx.hw.gpu.vram_gib * ctx.hw.gpus)
        bits = fit[1] if fit else 4
        if bits and not layout.setup.quant_bit:
            notes.append("chat loads the base 4-bit (quantization_bit: 4): the 16-bit model does not fit this node")
    serve = ModelSection(model_name_or_path=model.model_name_or_path, adapter_name_or_path=f"{ctx.run_dir}/sft",
                         trust_remote_code=remote_code(ctx.preset), quantization_bit=bits,
                         quantization_method="bnb" if bits else None, infer_backend="huggingface")
    sampling = THINK_SAMPLING if ctx.thinks else {"temperature": 0.7, "top_p": 0.8, "top_k": 20}
    return ChatRecipe(model=serve, template=TemplateSection(template=ctx.preset.template, **thinking_kw(ctx.thinking)),
                      generation=GenerationSection(max_new_tokens=new_tokens, **sampling))
