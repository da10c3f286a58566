"""Model presets: LF template, reasoning mode and architecture numbers of each supported model.

RECIPE flow: get_preset / preset_from_local → ModelPreset → plan.py (template keys) and memory.py (Shape).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, get_args

from ..errors import DataError, RecipeError, UnknownNameError, UsageError
from .shape import Shape

Reasoning = Literal["thinking_only", "hybrid", "none"]
REASONING_MODES: tuple[str, ...] = get_args(Reasoning)

# Every `template` name LLaMA-Factory 0.9.5 registers (pkg/data/template.py); tests check this against the wheel.
_LF_TEMPLATE_NAMES = """
aeva alpaca bailing bailing_v2 breeze chatglm3 chatml chatml_de cohere cpm4 dbrx deepseek deepseek3 deepseekcoder
deepseekr1 default dots_ocr empty ernie ernie_nothink ernie_vl exaone falcon falcon_h1 fewshot gemma gemma2 gemma3
gemma3n gemma4 gemma4n glm4 glm4_5v glm4_7 glm4_moe glm4v glm_ocr glmz1 gpt_oss granite3 granite3_vision granite4
hunyuan hunyuan_small hy3 index intern2 intern_s1 intern_vl keye_vl kimi_vl lfm2 lfm2_vl llama2 llama2_zh llama3
llama4 llava llava_next llava_next_llama3 llava_next_mistral llava_next_qwen llava_next_video llava_next_video_mistral
llava_next_video_yi llava_next_yi mimo mimo_v2 mimo_vl minicpm_o minicpm_v minicpm_v_4_6 minimax1 minimax2 ministral
ministral3 mistral mistral_small mllama moonlight olmo openchat openchat-3.6 opencoder paligemma paligemma_chat phi
phi4 phi4_mini phi_small pixtral qwen qwen2_audio qwen2_omni qwen2_vl qwen3 qwen3_5 qwen3_5_nothink qwen3_6
qwen3_nothink qwen3_omni qwen3_omni_nothink qwen3_vl qwen3_vl_nothink sailor seed_coder seed_oss smollm smollm2 solar
starchat telechat2 vicuna video_llava xuanyuan yi yi_vl youtu youtu_vl yuan zephyr
"""
LF_TEMPLATES = frozenset(_LF_TEMPLATE_NAMES.split())

# The subset built on ReasoningTemplate: they inject or strip <think> blocks (notes §2.2).
_LF_REASONING_NAMES = """
aeva deepseekr1 ernie_vl gemma4 gemma4n glm4_5v glm4_7 glm4_moe glm4v glmz1 gpt_oss hy3 keye_vl kimi_vl mimo mimo_v2
mimo_vl minimax2 qwen3 qwen3_5 qwen3_6 qwen3_omni qwen3_vl seed_oss youtu
"""
LF_REASONING_TEMPLATES = frozenset(_LF_REASONING_NAMES.split())


@dataclass(frozen=True)
class ModelPreset:
    """What a recipe needs to know about one model; plain data, no hub access."""

    key: str  # short CLI name, e.g. "qwen3-4b-thinking"
    hub_id: str  # HF hub id, or the local directory for preset_from_local
    template: str  # LF 0.9.5 template name, used for train, predict, chat and export alike
    reasoning: Reasoning
    shape: Shape
    recipe_stem: str  # recipes/<stem>_<method>.yaml
    trust_remote_code: bool = False
    lora_target: str = "all"  # LF expands "all" to every Linear except the output head (and frozen vision tower)
    multimodal: bool = False
    notes: tuple[str, ...] = ()  # user-facing caveats, printed with the recipe
    context_len: int | None = None  # max_position_embeddings: the ceiling for cutoff_len


_QWEN3_4B = Shape(params=4_022_468_096, layers=36, hidden=2560, intermediate=9728, heads=32, kv_heads=8,
                  head_dim=128, vocab=151936, tied_embeddings=True)
_QWEN_DEFAULT_SYSTEM = ("Template 'qwen' injects the system prompt 'You are Qwen, created by Alibaba Cloud. You are a "
                        "helpful assistant.' into every sample that has none.")

_PRESET_LIST = (
    ModelPreset(
        key="qwen3-4b-thinking", hub_id="Qwen/Qwen3-4B-Thinking-2507", template="qwen3", reasoning="thinking_only",
        shape=_QWEN3_4B, recipe_stem="qwen3_thinking", context_len=262144,
        notes=(
            "Prompt mismatch: LF's 'qwen3' template ends the generation prompt at '<|im_start|>assistant\\n' and "
            "trains '<think>\\n' as the first answer token, while the model's official chat template pre-fills "
            "'<think>\\n'. The recipe keeps LF's template for train, predict and chat (consistent inside LF); "
            "exported tokenizers keep the official jinja, so vLLM/transformers serving pre-fills '<think>\\n' "
            "(a small boundary mismatch, mostly benign; LF PR #10773 proposes a fix after 0.9.5).",
            "Thinking-only model: every sample needs a '<think>\\n...\\n</think>\\n\\n' block; with "
            "enable_thinking: true a sample without one trains an empty think block and teaches the model to "
            "skip thinking.",
            "Reasoning is long: the recipe sizes cutoff_len from your data's token p99 and max_new_tokens from "
            "its answer p99 (at least 4096); answers the model writes longer than that are cut off.",
        ),
    ),
    ModelPreset(
        key="qwen3-4b-instruct", hub_id="Qwen/Qwen3-4B-Instruct-2507", template="qwen3_nothink", reasoning="none",
        shape=_QWEN3_4B, recipe_stem="qwen3_instruct", context_len=262144,
        notes=(
            "Non-thinking model: keep 'qwen3_nothink'; the reasoning template 'qwen3' makes it emit <think> tags "
            "after SFT (LF issues #8832, #10644).",
            "'<think>' text in the data is trained as plain text with this template; drop reasoning or keep it on "
            "purpose.",
        ),
    ),
    ModelPreset(
        key="qwen3-4b", hub_id="Qwen/Qwen3-4B", template="qwen3", reasoning="hybrid",
        shape=_QWEN3_4B, recipe_stem="qwen3_hybrid", context_len=40960,
        notes=(
            "Hybrid thinking model: data with '<think>' blocks trains slow thinking; for data mixed with plain "
            "answers set enable_thinking: null, and use the same enable_thinking at inference (LF #8112).",
        ),
    ),
    ModelPreset(
        key="gemma-3-4b-it", hub_id="google/gemma-3-4b-it", template="gemma3", reasoning="none", multimodal=True,
        shape=Shape(params=3_880_263_168, layers=34, hidden=2560, intermediate=10240, heads=8, kv_heads=4,
                    head_dim=256, vocab=262208, tied_embeddings=True, vision_params=419_816_304),
        recipe_stem="gemma3_4b", context_len=131072,
        notes=(
            "LF's 'gemma3' template needs the model's multimodal processor (gemma-3-4b-it ships one); a text-only "
            "Gemma 3 checkpoint fails with 'Processor was not found' - use template 'gemma2' for those.",
            "No system role: the system prompt is merged into the first user turn.",
            "Train in bf16, not fp16: fp16 (pre-Ampere GPUs such as V100 and T4) reports loss 0 (LF #7755); "
            "use flash_attn: disabled (eager) or fa2.",
            "The SigLIP vision tower (~0.42e9 params) is loaded and frozen; it costs VRAM but is not trained.",
        ),
    ),
    ModelPreset(
        key="qwen2.5-1.5b-instruct", hub_id="Qwen/Qwen2.5-1.5B-Instruct", template="qwen", reasoning="none",
        shape=Shape(params=1_543_714_304, layers=28, hidden=1536, intermediate=8960, heads=12, kv_heads=2,
                    head_dim=128, vocab=151936, tied_embeddings=True),
        recipe_stem="qwen25_1_5b", context_len=32768, notes=(_QWEN_DEFAULT_SYSTEM,),
    ),
    ModelPreset(
        key="qwen2.5-7b-instruct", hub_id="Qwen/Qwen2.5-7B-Instruct", template="qwen", reasoning="none",
        shape=Shape(params=7_615_616_512, layers=28, hidden=3584, intermediate=18944, heads=28, kv_heads=4,
                    head_dim=128, vocab=152064, tied_embeddings=False),
        recipe_stem="qwen25_7b", context_len=32768, notes=(_QWEN_DEFAULT_SYSTEM,),
    ),
    ModelPreset(
        key="chatglm3-6b", hub_id="THUDM/chatglm3-6b", template="chatglm3", reasoning="none", trust_remote_code=True,
        shape=Shape(params=6_243_584_000, layers=28, hidden=4096, intermediate=13696, heads=32, kv_heads=2,
                    head_dim=128, vocab=65024, tied_embeddings=False),
        recipe_stem="chatglm3_6b", context_len=8192,
        notes=(
            "Needs trust_remote_code: true. Its remote modeling code predates transformers 4.55 (LF 0.9.5's "
            "minimum; this stack pins 5.6.0) and may fail to load - untested here. The hub repo moved to "
            "zai-org/chatglm3-6b (the THUDM id redirects).",
            "Template 'chatglm3' uses efficient_eos, so train_on_prompt is not allowed.",
            "GPTQ export (export_quantization_bit) refuses ChatGLM models; export merged bf16/fp16 weights.",
        ),
    ),
    ModelPreset(
        key="yi-1.5-6b-chat", hub_id="01-ai/Yi-1.5-6B-Chat", template="yi", reasoning="none",
        shape=Shape(params=6_061_035_520, layers=32, hidden=4096, intermediate=11008, heads=32, kv_heads=4,
                    head_dim=128, vocab=64000, tied_embeddings=False),
        recipe_stem="yi15_6b", context_len=4096,
        notes=("4096-token context: keep cutoff_len <= 4096.",),
    ),
    ModelPreset(
        key="llama-3.1-8b-instruct", hub_id="meta-llama/Llama-3.1-8B-Instruct", template="llama3", reasoning="none",
        shape=Shape(params=8_030_261_248, layers=32, hidden=4096, intermediate=14336, heads=32, kv_heads=8,
                    head_dim=128, vocab=128256, tied_embeddings=False),
        recipe_stem="llama31_8b", context_len=131072,
        notes=(
            "Gated on the Hugging Face Hub: accept Meta's license and log in (hf auth login) before downloading.",
            "Chinese is not among Llama 3.1's officially supported languages; expect weaker Chinese than Qwen/Yi.",
        ),
    ),
)
PRESETS: dict[str, ModelPreset] = {p.key: p for p in _PRESET_LIST}


@dataclass(frozen=True)
class Unsupported:
    """A model LF 0.9.5 cannot serve, with the reason and what to use instead."""

    key: str
    hub_id: str
    reason: str
    alternatives: tuple[str, ...]


_BAICHUAN_REASON = ("LF 0.9.5 removed the baichuan2 template (commit 5cccaeec8, 'clean obsolete models'), so "
                    "'template: baichuan2' fails with 'Template baichuan2 does not exist'")
_BAICHUAN_ALTERNATIVES = ("preset qwen2.5-7b-instruct", "preset yi-1.5-6b-chat",
                          "or pin an older LLaMA-Factory (0.9.4 or earlier) that still has the template")
UNSUPPORTED: dict[str, Unsupported] = {
    u.key: u for u in (
        Unsupported("baichuan2-7b-chat", "baichuan-inc/Baichuan2-7B-Chat", _BAICHUAN_REASON, _BAICHUAN_ALTERNATIVES),
        Unsupported("baichuan2-13b-chat", "baichuan-inc/Baichuan2-13B-Chat", _BAICHUAN_REASON, _BAICHUAN_ALTERNATIVES),
    )
}
_UNSUPPORTED_FAMILIES = {"baichuan": "baichuan2-7b-chat"}  # any Baichuan name hits the same wall


def _aliases(registry: dict) -> dict[str, str]:
    """Lower-cased key, hub id and hub id's last part → registry key."""
    out: dict[str, str] = {}
    for key, item in registry.items():
        for alias in (key, item.hub_id, item.hub_id.rsplit("/", 1)[-1]):
            out[alias.lower()] = key
    return out


_PRESET_ALIASES = _aliases(PRESETS)
_UNSUPPORTED_ALIASES = _aliases(UNSUPPORTED)


def get_preset(name: str) -> ModelPreset:
    """Preset by key, hub id (case-insensitive) or the hub id's last part ("Qwen3-4B-Thinking-2507")."""
    wanted = name.strip().lower()
    short = wanted.rsplit("/", 1)[-1]
    for alias in (wanted, short):
        if alias in _PRESET_ALIASES:
            return PRESETS[_PRESET_ALIASES[alias]]
    _refuse_unsupported(name, wanted, short)
    if Path(name).expanduser().is_dir():
        raise UsageError(f"'{name}' is a local model directory, not a preset: pass --template too (LF cannot guess "
                         "it reliably) so the preset is built from its config.json.")
    raise UnknownNameError("model preset", short, PRESETS)


def _refuse_unsupported(name: str, wanted: str, short: str) -> None:
    key = _UNSUPPORTED_ALIASES.get(wanted) or _UNSUPPORTED_ALIASES.get(short)
    key = key or next((k for fam, k in _UNSUPPORTED_FAMILIES.items() if fam in wanted), None)
    if key is None:
        return
    item = UNSUPPORTED[key]
    raise RecipeError(f"model_name_or_path '{name}' is not supported: {item.reason}. "
                      f"Use instead: {', '.join(item.alternatives)}.")


# ---- local model directories -------------------------------------------------------------------------------

_KEYS = {  # Shape field → config.json names, first present wins (HF names, then ChatGLM / GPT-2 names)
    "layers": ("num_hidden_layers", "num_layers", "n_layer"),
    "hidden": ("hidden_size", "n_embd"),
    "intermediate": ("intermediate_size", "ffn_hidden_size", "n_inner"),
    "heads": ("num_attention_heads", "n_head"),
    "vocab": ("padded_vocab_size", "vocab_size"),  # ChatGLM's embedding is padded past vocab_size
}


def estimate_params(shape: Shape) -> int:
    """Weights from the shape: embeddings (×2 when untied) + layers × (LoRA-targetable Linears + 2 norms) + final norm.

    Biases, q/k norms and rotary buffers are ignored: within 0.1% of the real count for every preset.
    """
    embeddings = shape.vocab * shape.hidden * (1 if shape.tied_embeddings else 2)
    per_layer = shape.linear_params_per_layer + 2 * shape.hidden
    return embeddings + shape.layers * per_layer + shape.hidden


def shape_from_config(cfg: dict, source: str = "config.json") -> Shape:
    """Shape from a transformers config dict (a nested ``text_config`` wins for multimodal models).

    Missing architecture keys raise DataError naming ``source`` and the key. ``params`` comes from the config's
    ``num_parameters`` when present (rare), else from estimate_params; ``vision_params`` from vision_params_of.
    """
    text = {**cfg, **cfg["text_config"]} if isinstance(cfg.get("text_config"), dict) else cfg
    layers, hidden, inter, heads, vocab = (_need(text, _KEYS[f], source)
                                           for f in ("layers", "hidden", "intermediate", "heads", "vocab"))
    kv_heads = _get(text, ("num_key_value_heads",))
    if kv_heads is None and text.get("multi_query_attention"):
        kv_heads = _get(text, ("multi_query_group_num",))  # ChatGLM's name for GQA groups
    kv_heads = kv_heads or heads  # no key means plain multi-head attention
    kv_heads = _checked(kv_heads, "num_key_value_heads", source)
    if heads % kv_heads:
        raise DataError(source, None, f"num_attention_heads {heads} is not a multiple of num_key_value_heads "
                        f"{kv_heads}", "check that the file is the model's own config.json")
    head_dim = _checked(_get(text, ("head_dim", "kv_channels")) or max(1, hidden // heads), "head_dim", source)
    tied = bool(text.get("tie_word_embeddings", False))  # absent → untied: counts more weights, the safe side
    shape = Shape(params=0, layers=layers, hidden=hidden, intermediate=inter, heads=heads, kv_heads=kv_heads,
                  head_dim=head_dim, vocab=vocab, tied_embeddings=tied, vision_params=vision_params_of(cfg, hidden))
    given = cfg.get("num_parameters")
    params = _checked(given, "num_parameters", source, 10**13) if given else estimate_params(shape)
    return replace(shape, params=params)


def vision_params_of(cfg: dict, text_hidden: int) -> int:
    """ViT estimate of a ``vision_config`` (SigLIP/CLIP style): blocks + patch/position embeddings + projector.

    0 when there is no vision tower or its config uses names this estimate does not know.
    """
    vis = cfg.get("vision_config")
    if not isinstance(vis, dict):
        return 0
    h, inter = _get(vis, ("hidden_size", "embed_dim")), _get(vis, ("intermediate_size",))
    layers = _get(vis, ("num_hidden_layers", "depth"))
    patch, image, channels = vis.get("patch_size") or 14, vis.get("image_size") or 0, vis.get("num_channels") or 3
    if not all(_plain_int(v) and v > 0 for v in (h, inter, layers, patch, channels)) or not _plain_int(image):
        return 0  # names or types this estimate does not know: the tower is left out (and noted by the caller)
    blocks = layers * (4 * h * h + 2 * h * inter)  # q, k, v, o + a two-matrix MLP
    embeddings = channels * patch * patch * h + (image // patch) ** 2 * h
    return blocks + embeddings + h * text_hidden  # last term: projector into the language model


def _get(cfg: dict, names: tuple[str, ...]):
    return next((cfg[n] for n in names if cfg.get(n) is not None), None)


MAX_DIM = 10**7  # why: no real architecture number (layers, widths, heads, vocab) comes near ten million


def _plain_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _need(cfg: dict, names: tuple[str, ...], source: str) -> int:
    value = _get(cfg, names)
    if value is None:
        raise DataError(source, None, f"key '{names[0]}' is missing",
                        f"use the model's own config.json (also accepted: {', '.join(names[1:]) or 'no alias'})")
    return _checked(value, names[0], source)


def _checked(value, key: str, source: str, limit: int = MAX_DIM) -> int:
    """A positive integer within ``limit``, or a DataError naming the key (types and ranges before any arithmetic)."""
    if not _plain_int(value) or not 0 < value <= limit:
        shown = repr(value)[:60]
        raise DataError(source, None, f"key '{key}' is {shown}, not a positive integer up to {limit:,}",
                        "use the model's own config.json")
    return value


def preset_from_local(path: Path, template: str | None, reasoning: Reasoning = "none", *,
                      lora_target: str = "all") -> ModelPreset:
    """Preset for a local model directory (or its config.json); the LF template must be named by the user."""
    _check_template(template, reasoning)
    cfg_path = Path(path).expanduser()
    cfg_path = cfg_path if cfg_path.name == "config.json" else cfg_path / "config.json"
    cfg = _read_config(cfg_path)
    shape = _local_shape(cfg, str(cfg_path))
    name = cfg_path.parent.resolve().name
    notes = [f"Architecture read from {cfg_path}; parameter count estimated from it (biases ignored)."]
    if "auto_map" in cfg:
        notes.append("config.json names custom model code (auto_map): the recipe sets trust_remote_code: true; "
                     "that code runs on your machine, read it first.")
    if "vision_config" in cfg and not shape.vision_params:
        notes.append("Vision tower size unknown: the VRAM estimate leaves it out.")
    if template not in LF_REASONING_TEMPLATES and reasoning != "none":
        notes.append(f"Template '{template}' is not a reasoning template: '<think>' text is trained as plain text.")
    text = cfg.get("text_config") if isinstance(cfg.get("text_config"), dict) else cfg
    return ModelPreset(
        key=name.lower(), hub_id=str(cfg_path.parent), template=template, reasoning=reasoning, shape=shape,
        recipe_stem=re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "local",
        trust_remote_code="auto_map" in cfg, lora_target=lora_target, multimodal="vision_config" in cfg,
        notes=tuple(notes), context_len=_get(text, ("max_position_embeddings", "seq_length")),
    )


def _check_template(template: str | None, reasoning: str) -> None:
    if not template:
        raise UsageError("A local model needs its chat template: pass --template; LF cannot guess reliably "
                         "(e.g. --template qwen3 for Qwen3 thinking models, qwen for Qwen2.5, llama3 for Llama 3).")
    if template not in LF_TEMPLATES:
        raise UnknownNameError("LLaMA-Factory 0.9.5 template", template, LF_TEMPLATES)
    if reasoning not in REASONING_MODES:
        raise UsageError(f"reasoning '{reasoning}' must be one of {', '.join(REASONING_MODES)}.")
    if template in LF_REASONING_TEMPLATES and reasoning == "none":
        plain = f"{template}_nothink"
        fix = f"Use --template {plain}" if plain in LF_TEMPLATES else "Use a non-reasoning template"
        raise UsageError(f"Template '{template}' is a reasoning template: it adds <think> blocks, which makes a "
                         f"non-thinking model emit them (LF #8832). {fix}, or say the model thinks "
                         "(reasoning thinking_only or hybrid).")


def _read_config(cfg_path: Path) -> dict:
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(str(cfg_path), None, "file not found",
                        "point at a Hugging Face model directory (it holds config.json and the weights)") from None
    except json.JSONDecodeError as err:
        raise DataError(str(cfg_path), err.lineno, f"invalid JSON: {err.msg}", "fix the JSON syntax",
                        col=err.colno) from None
    except UnicodeDecodeError as err:
        raise DataError(str(cfg_path), None, f"not UTF-8 (byte {err.start}: {err.reason})",
                        "save config.json as UTF-8, as transformers writes it") from None
    except RecursionError:
        raise DataError(str(cfg_path), None, "JSON nested too deeply to be a model config",
                        "use the model's own config.json") from None
    except OSError as err:
        raise DataError(str(cfg_path), None, f"cannot be read ({err.strerror or err})",
                        "check that it is a readable file") from None
    if not isinstance(cfg, dict):
        raise DataError(str(cfg_path), 1, "top level is not a JSON object", "use the model's own config.json")
    return cfg


def _local_shape(cfg: dict, source: str) -> Shape:
    """shape_from_config; sparse configs (gemma-3's lists only non-defaults) get transformers' defaults first.
    Values present are checked (types, ranges) before transformers sees them: it builds per-layer lists from them."""
    _check_present(cfg, source)
    try:
        return shape_from_config(cfg, source)
    except DataError:
        full = _with_transformers_defaults(cfg)
        if full is None:
            raise
        return shape_from_config(full, source)


_EXTRA_KEYS = ("num_key_value_heads", "head_dim", "kv_channels", "multi_query_group_num")


def _check_present(cfg: dict, source: str) -> None:
    text = cfg.get("text_config")
    for scope in (cfg, text) if isinstance(text, dict) else (cfg,):
        for key in (*(k for names in _KEYS.values() for k in names), *_EXTRA_KEYS):
            if scope.get(key) is not None:
                _checked(scope[key], key, source)


def _with_transformers_defaults(cfg: dict) -> dict | None:
    """The config as transformers itself would load it, or None for model types it does not know."""
    model_type = cfg.get("model_type")
    if not isinstance(model_type, str):
        return None
    try:
        from transformers import AutoConfig  # heavy (imports torch): only for sparse configs
    except ImportError:
        return None
    try:
        rest = {k: v for k, v in cfg.items() if k != "model_type"}
        return AutoConfig.for_model(model_type, **rest).to_dict()
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
        return None
