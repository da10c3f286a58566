"""Model presets: right LF template and reasoning mode, real architecture numbers, local config.json reading."""

from __future__ import annotations

import ast
import functools
import importlib.util
import json
from dataclasses import asdict
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llamafactory_ext.errors import DataError, RecipeError, UnknownNameError, UsageError
from llamafactory_ext.recipe.models import (
    LF_REASONING_TEMPLATES,
    LF_TEMPLATES,
    PRESETS,
    UNSUPPORTED,
    estimate_params,
    get_preset,
    preset_from_local,
    shape_from_config,
)
from llamafactory_ext.recipe.shape import Shape

LF_PKG = Path(importlib.util.find_spec("llamafactory").origin).parent


@pytest.mark.parametrize(
    ("key", "hub_id", "template", "reasoning"),
    [
        ("qwen3-4b-thinking", "Qwen/Qwen3-4B-Thinking-2507", "qwen3", "thinking_only"),
        ("qwen3-4b-instruct", "Qwen/Qwen3-4B-Instruct-2507", "qwen3_nothink", "none"),
        ("gemma-3-4b-it", "google/gemma-3-4b-it", "gemma3", "none"),
        ("qwen2.5-1.5b-instruct", "Qwen/Qwen2.5-1.5B-Instruct", "qwen", "none"),
        ("qwen2.5-7b-instruct", "Qwen/Qwen2.5-7B-Instruct", "qwen", "none"),
        ("chatglm3-6b", "THUDM/chatglm3-6b", "chatglm3", "none"),
        ("yi-1.5-6b-chat", "01-ai/Yi-1.5-6B-Chat", "yi", "none"),
        ("llama-3.1-8b-instruct", "meta-llama/Llama-3.1-8B-Instruct", "llama3", "none"),
    ],
)
def test_required_presets(key, hub_id, template, reasoning):
    preset = PRESETS[key]
    assert (preset.hub_id, preset.template, preset.reasoning) == (hub_id, template, reasoning)
    assert preset.lora_target == "all"


def _lf_registrations() -> tuple[set[str], set[str]]:
    """Template names and reasoning-template names, read statically from the installed LF 0.9.5 wheel."""
    tree = ast.parse((LF_PKG / "data" / "template.py").read_text(encoding="utf-8"))
    names, reasoning = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "register_template":
            kw = {k.arg: k.value for k in node.keywords}
            names.add(kw["name"].value)
            if "Reasoning" in ast.unparse(kw.get("template_class", ast.Constant(""))):
                reasoning.add(kw["name"].value)
    return names, reasoning


def test_template_lists_match_installed_llamafactory():
    names, reasoning = _lf_registrations()
    assert names == LF_TEMPLATES
    assert reasoning == LF_REASONING_TEMPLATES
    assert "baichuan2" not in names


@functools.cache
def _lf_default_templates() -> dict[str, str]:
    """LF's own model → template map (extras/constants.py), keyed by model name and hub id's last part, lower-cased."""
    tree = ast.parse((LF_PKG / "extras" / "constants.py").read_text(encoding="utf-8"))
    out: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "register_model_group":
            kw = {k.arg: k.value for k in node.keywords}
            if "template" not in kw:
                continue
            for name, sources in zip(kw["models"].keys, kw["models"].values, strict=True):
                out[name.value.lower()] = kw["template"].value
                for src in sources.values:
                    out[src.value.rsplit("/", 1)[-1].lower()] = kw["template"].value
    return out


@pytest.mark.parametrize("key", sorted(PRESETS))
def test_preset_template_is_lfs_choice_and_reasoning_consistent(key):
    preset = PRESETS[key]
    assert preset.template in LF_TEMPLATES
    assert _lf_default_templates()[preset.hub_id.rsplit("/", 1)[-1].lower()] == preset.template
    assert (preset.template in LF_REASONING_TEMPLATES) == (preset.reasoning != "none")


@pytest.mark.parametrize("key", sorted(PRESETS))
def test_param_counts_agree_with_shape(key):
    shape = PRESETS[key].shape
    assert shape.heads % shape.kv_heads == 0
    assert abs(estimate_params(shape) - shape.params) / shape.params < 1e-3


def test_spot_check_real_numbers():
    q = PRESETS["qwen3-4b-thinking"].shape
    assert (q.layers, q.hidden, q.intermediate, q.heads, q.kv_heads, q.head_dim, q.vocab, q.tied_embeddings) == (
        36, 2560, 9728, 32, 8, 128, 151936, True)
    assert round(q.params / 1e9, 2) == 4.02
    g = PRESETS["gemma-3-4b-it"].shape
    assert (g.layers, g.hidden, g.intermediate, g.heads, g.kv_heads, g.head_dim, g.vocab, g.tied_embeddings) == (
        34, 2560, 10240, 8, 4, 256, 262208, True)
    assert round(g.params / 1e9, 2) == 3.88 and round(g.vision_params / 1e9, 2) == 0.42


def test_recipe_stems_are_unique_file_stems():
    stems = [p.recipe_stem for p in PRESETS.values()]
    assert len(set(stems)) == len(stems)
    assert all(s.replace("_", "").isalnum() and s.islower() for s in stems)


def test_caveats_users_must_see():
    thinking = " ".join(PRESETS["qwen3-4b-thinking"].notes)
    assert "<|im_start|>assistant\\n" in thinking and "pre-fills '<think>\\n'" in thinking
    assert "official jinja" in thinking
    gemma = PRESETS["gemma-3-4b-it"]
    assert gemma.multimodal and "processor" in " ".join(gemma.notes) and "bf16" in " ".join(gemma.notes)
    assert "first user turn" in " ".join(gemma.notes)
    glm = PRESETS["chatglm3-6b"]
    assert glm.trust_remote_code
    assert all(word in " ".join(glm.notes) for word in ("4.55", "train_on_prompt", "GPTQ"))


@pytest.mark.parametrize("name", ["qwen3-4b-thinking", "Qwen/Qwen3-4B-Thinking-2507", "qwen/qwen3-4b-thinking-2507",
                                  "Qwen3-4B-Thinking-2507", "  QWEN3-4B-THINKING "])
def test_get_preset_accepts_key_hub_id_and_short_name(name):
    assert get_preset(name).key == "qwen3-4b-thinking"


def test_other_hub_mirror_of_the_same_model_resolves():
    assert get_preset("zai-org/chatglm3-6b").key == "chatglm3-6b"


@pytest.mark.parametrize("name", ["baichuan2-7b-chat", "baichuan-inc/Baichuan2-13B-Chat", "Baichuan2-7B-Base"])
def test_baichuan_is_refused_with_reason_and_alternatives(name):
    with pytest.raises(RecipeError) as err:
        get_preset(name)
    message = str(err.value)
    assert "5cccaeec8" in message and "baichuan2 template" in message
    assert "qwen2.5-7b-instruct" in message and "yi-1.5-6b-chat" in message and "older LLaMA-Factory" in message
    assert {"baichuan2-7b-chat", "baichuan2-13b-chat"} <= set(UNSUPPORTED)


def test_unknown_name_suggests_close_presets():
    with pytest.raises(UnknownNameError) as err:
        get_preset("qwen3-4b-thinkin")
    assert "qwen3-4b-thinking" in err.value.close


def test_local_directory_given_as_preset_asks_for_template(tmp_path):
    with pytest.raises(UsageError, match="--template"):
        get_preset(str(tmp_path))


# ---- local config.json ----------------------------------------------------------------------------------------


def _write(tmp_path: Path, cfg: dict, name: str = "my-model") -> Path:
    model_dir = tmp_path / name
    model_dir.mkdir()
    (model_dir / "config.json").write_text(json.dumps(cfg), encoding="utf-8")
    return model_dir


def _qwen3_config(layers: int = 2) -> dict:
    from transformers import Qwen3Config

    return Qwen3Config(vocab_size=151936, hidden_size=2560, intermediate_size=9728, num_hidden_layers=layers,
                       num_attention_heads=32, num_key_value_heads=8, head_dim=128, tie_word_embeddings=True,
                       max_position_embeddings=262144).to_dict()


def test_shape_from_transformers_config_and_param_formula_matches_the_real_model():
    import torch
    from transformers import AutoModelForCausalLM, Qwen3Config

    cfg = _qwen3_config(layers=2)
    shape = shape_from_config(cfg)
    assert (shape.layers, shape.hidden, shape.intermediate, shape.heads, shape.kv_heads, shape.head_dim,
            shape.vocab, shape.tied_embeddings) == (2, 2560, 9728, 32, 8, 128, 151936, True)
    with torch.device("meta"):  # no weights allocated, no download
        model = AutoModelForCausalLM.from_config(Qwen3Config(**cfg))
    real = sum(p.numel() for p in model.parameters())
    assert abs(shape.params - real) / real < 1e-3


def test_preset_from_local_dir(tmp_path):
    preset = preset_from_local(_write(tmp_path, _qwen3_config(), "My-Qwen3.Thinker"), "qwen3", "thinking_only")
    assert (preset.template, preset.reasoning, preset.key, preset.recipe_stem) == (
        "qwen3", "thinking_only", "my-qwen3.thinker", "my_qwen3_thinker")
    assert preset.shape.layers == 2 and preset.context_len == 262144
    assert not preset.trust_remote_code and not preset.multimodal


def test_sparse_gemma3_config_reads_like_the_preset(tmp_path):
    """gemma-3-4b-it's config.json lists only non-default text keys; transformers' defaults fill the rest."""
    cfg = {
        "architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3", "mm_tokens_per_image": 256,
        "text_config": {"hidden_size": 2560, "intermediate_size": 10240, "model_type": "gemma3_text",
                        "num_hidden_layers": 34, "rope_scaling": {"factor": 8.0, "rope_type": "linear"},
                        "sliding_window": 1024},
        "vision_config": {"hidden_size": 1152, "image_size": 896, "intermediate_size": 4304,
                          "model_type": "siglip_vision_model", "num_attention_heads": 16, "num_hidden_layers": 27,
                          "patch_size": 14, "vision_use_head": False},
    }
    preset = preset_from_local(_write(tmp_path, cfg), "gemma3")
    want = PRESETS["gemma-3-4b-it"].shape
    got = preset.shape
    assert {k: v for k, v in asdict(got).items() if k not in ("params", "vision_params")} == {
        k: v for k, v in asdict(want).items() if k not in ("params", "vision_params")}
    assert abs(got.params - want.params) / want.params < 1e-3
    assert abs(got.vision_params - want.vision_params) / want.vision_params < 1e-2
    assert preset.multimodal


def test_chatglm_style_config_with_remote_code(tmp_path):
    cfg = {"model_type": "chatglm", "auto_map": {"AutoConfig": "configuration_chatglm.ChatGLMConfig"},
           "num_layers": 28, "hidden_size": 4096, "ffn_hidden_size": 13696, "num_attention_heads": 32,
           "multi_query_attention": True, "multi_query_group_num": 2, "kv_channels": 128,
           "padded_vocab_size": 65024, "seq_length": 8192, "tie_word_embeddings": False}
    preset = preset_from_local(_write(tmp_path, cfg), "chatglm3")
    want = PRESETS["chatglm3-6b"].shape
    assert preset.shape.kv_heads == 2 and preset.shape.vocab == 65024 and preset.context_len == 8192
    assert abs(preset.shape.params - want.params) / want.params < 1e-3
    assert preset.trust_remote_code and any("auto_map" in n for n in preset.notes)


def test_missing_template_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="pass --template; LF cannot guess reliably"):
        preset_from_local(_write(tmp_path, _qwen3_config()), None)


def test_misspelt_template_suggests_lf_names(tmp_path):
    with pytest.raises(UnknownNameError) as err:
        preset_from_local(_write(tmp_path, _qwen3_config()), "qwen3-nothink")
    assert "qwen3_nothink" in err.value.close


def test_reasoning_template_on_non_thinking_model_is_refused(tmp_path):
    with pytest.raises(UsageError, match="--template qwen3_nothink"):
        preset_from_local(_write(tmp_path, _qwen3_config()), "qwen3", "none")


def test_missing_config_names_the_file(tmp_path):
    with pytest.raises(DataError) as err:
        preset_from_local(tmp_path, "qwen")
    assert err.value.path == str(tmp_path / "config.json") and "not found" in err.value.reason


def test_missing_key_names_file_and_key(tmp_path):
    cfg = {k: v for k, v in _qwen3_config().items() if k != "num_hidden_layers"}
    cfg["model_type"] = "my_own_arch"  # unknown to transformers: no defaults to fall back on
    with pytest.raises(DataError) as err:
        preset_from_local(_write(tmp_path, cfg), "qwen3", "hybrid")
    assert err.value.path.endswith("config.json") and "'num_hidden_layers' is missing" in str(err.value)


def test_invalid_json_points_at_the_line(tmp_path):
    model_dir = tmp_path / "broken"
    model_dir.mkdir()
    (model_dir / "config.json").write_text('{\n  "hidden_size": 8,\n  oops\n}', encoding="utf-8")
    with pytest.raises(DataError) as err:
        preset_from_local(model_dir, "qwen")
    assert err.value.line == 3


@st.composite
def shapes(draw) -> Shape:
    kv = draw(st.integers(1, 8))
    heads = kv * draw(st.integers(1, 8))
    shape = Shape(params=0, layers=draw(st.integers(1, 80)), hidden=draw(st.integers(1, 64)) * 64,
                  intermediate=draw(st.integers(1, 30000)), heads=heads, kv_heads=kv,
                  head_dim=draw(st.sampled_from([64, 80, 128, 256])), vocab=draw(st.integers(1000, 300000)),
                  tied_embeddings=draw(st.booleans()))
    return Shape(**{**asdict(shape), "params": estimate_params(shape)})


@given(shapes())
def test_config_round_trip(shape):
    cfg = {"num_hidden_layers": shape.layers, "hidden_size": shape.hidden, "intermediate_size": shape.intermediate,
           "num_attention_heads": shape.heads, "num_key_value_heads": shape.kv_heads, "head_dim": shape.head_dim,
           "vocab_size": shape.vocab, "tie_word_embeddings": shape.tied_embeddings}
    assert shape_from_config(cfg) == shape
    assert shape_from_config({"model_type": "x", "text_config": cfg}) == shape
