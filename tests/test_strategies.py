"""Parallel strategies as data: memory terms over a model x card x GPU-count grid, refusals with their nearest
allowed strategy, the recommendation (fastest that fits), calibration marking, and the shipped DeepSpeed /
accelerate configs read by DeepSpeed's and accelerate's own parsers."""

from __future__ import annotations

import json
from importlib.resources import files

import pytest

from llamafactory_ext.errors import UsageError
from llamafactory_ext.recipe import strategies as S
from llamafactory_ext.recipe.hardware import describe
from llamafactory_ext.recipe.memory import GIB, OPTIMIZER_BYTES
from llamafactory_ext.recipe.models import PRESETS, get_preset

CARDS = ("T4", "4090", "A100-80GB", "H100")
MODELS = ("qwen2.5-1.5b-instruct", "qwen3-4b-instruct", "qwen2.5-7b-instruct", "llama-3.1-8b-instruct")
# memory.py's term names for what a strategy may shard (LoRA and full fine-tuning name their states differently)
TERMS = {"params": ("weights", "lora_params"), "grads": ("lora_grads", "grads"), "optimizer": ("optimizer",),
         "activations": ("activations",)}


def priced(model: str, spec: str, method: str, batch: int = 2, seq: int = 1024) -> dict[str, S.Option]:
    return {o.name: o for o in S.price(get_preset(model).shape, method, describe(spec), batch, seq)}


def term(opt: S.Option, kind: str) -> float:
    return sum(opt.terms.get(k, 0.0) for k in TERMS[kind])


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("method", S.METHODS)
def test_sharded_terms_shrink_with_the_gpu_count_and_the_rest_do_not(model, method):
    two, eight = priced(model, "2xH100", method), priced(model, "8xH100", method)
    shape = get_preset(model).shape
    tp_grows = S.tp_size(describe("8xH100"), shape) > S.tp_size(describe("2xH100"), shape)
    for name, strat in S.STRATEGIES.items():
        if method not in strat.methods:
            continue
        for kind in ("params", "grads", "optimizer"):
            a, b = term(two[name], kind), term(eight[name], kind)
            if kind == "optimizer" and strat.offload:
                assert a == b == 0.0, (name, kind)  # in host memory
            elif kind == "params" and strat.offload and strat.zero_stage == 3:
                assert b <= a, (name, kind)  # frozen/full weights live on the host; only gathered layers remain
            elif strat.tensor_parallel and not tp_grows and (kind == "params" or (kind, strat.engine) == ("grads", "mcore")):
                # few KV heads: TP cannot split further (tp_size); Megatron keeps full fp32 grad buffers per TP rank
                assert b == pytest.approx(a), (name, kind)
            elif kind in strat.shards:
                assert b < a, (name, method, kind, a, b)
            else:
                assert b == pytest.approx(a), (name, method, kind)
        act_two, act_eight = term(two[name], "activations"), term(eight[name], "activations")
        if "activations" in strat.shards and tp_grows:
            assert act_eight < act_two, name
        else:
            assert act_eight == pytest.approx(act_two), name


@pytest.mark.parametrize("model", MODELS)
def test_full_ddp_holds_fp32_weights_grads_and_adam_states_per_gpu(model):
    shape = get_preset(model).shape
    opt = priced(model, "8xH100", "full")["ddp"]
    states = term(opt, "params") + term(opt, "grads") + term(opt, "optimizer")
    per_param = S.FULL_TRAIN_BYTES * 2 + OPTIMIZER_BYTES["adamw"]  # LF upcasts to fp32: 4 + 4 + 8 bytes
    assert states == pytest.approx((shape.params + shape.vision_params) * per_param / GIB)
    zero3 = priced(model, "8xH100", "full")["zero3"]
    assert term(zero3, "optimizer") == pytest.approx(term(opt, "optimizer") * 12 / 8 / 8)  # fp32 master+m+v / 8


@pytest.mark.parametrize("model", sorted(PRESETS))
@pytest.mark.parametrize("card", CARDS)
@pytest.mark.parametrize("method", S.METHODS)
def test_need_covers_the_terms_and_the_recommendation_is_the_fastest_that_fits(model, card, method):
    hw = describe(f"4x{card}")
    options = S.price(get_preset(model).shape, method, hw, 2, 1024)
    assert {o.name for o in options} == set(S.STRATEGIES)
    for o in options:
        assert o.need_gib >= sum(o.terms.values()) > 0
        assert o.fits == (o.refused is None and o.need_gib <= 0.9 * hw.gpu.vram_gib)
    best = S.recommend(options)
    fitting = [o for o in options if o.fits]
    if not fitting:
        assert best is None
        with pytest.raises(UsageError, match="smallest is --parallel"):
            S.choose(options, "auto")
        return
    assert best.fits and all(best.speed >= o.speed for o in fitting)
    assert S.choose(options, "auto") is best


def test_big_full_finetune_needs_sharding_and_a_small_lora_stays_on_ddp():
    full = S.recommend(S.price(get_preset("llama-3.1-8b-instruct").shape, "full", describe("8xA100-80GB"), 1, 1024))
    assert full is not None and {"grads", "optimizer"} <= full.strategy.shards  # ZeRO-2: 2-byte weights + shards
    assert not priced("llama-3.1-8b-instruct", "8xA100-80GB", "full", 1)["ddp"].fits  # 16 bytes x 8B > 80 GiB
    lora = S.recommend(S.price(get_preset("qwen2.5-1.5b-instruct").shape, "lora", describe("2xH100"), 2, 1024))
    assert lora.name == "ddp"


@pytest.mark.parametrize("name", sorted(S.STRATEGIES))
@pytest.mark.parametrize("method", S.METHODS)
def test_refusals_name_the_reason_and_a_nearest_strategy_that_runs(name, method):
    hw = describe("8xH100")
    why = S.refusal(name, method, hw)
    assert (why is None) == (method in S.STRATEGIES[name].methods)
    if why:
        nearest = why.rsplit("--parallel ", 1)[1]
        assert why.startswith(f"--parallel {name} with {method}: ") and nearest != name
        assert S.refusal(nearest, method, hw) is None, why


def test_megatron_is_full_only_and_fsdp_qlora_is_the_4bit_path():
    assert "finetuning_type: full only" in S.refusal("megatron", "lora")
    assert S.refusal("fsdp", "qlora").endswith("nearest allowed: --parallel fsdp-qlora")
    assert S.refusal("fsdp-qlora", "lora").endswith("nearest allowed: --parallel fsdp")
    assert "Quantization is only compatible" in S.refusal("fsdp-qlora", "full")


def test_cpu_runs_ddp_only_and_tensor_parallel_needs_gpus_on_one_node():
    cpu = describe("cpu")
    assert S.refusal("ddp", "lora", cpu) is None
    for name in set(S.STRATEGIES) - {"ddp"}:
        assert S.refusal(name, "full", cpu).endswith("--parallel ddp"), name
    assert "--quant lora" in S.refusal("ddp", "qlora", cpu)
    one_per_node = describe("1xH100", nodes=4)
    assert "at least 2 GPUs per node" in S.refusal("megatron", "full", one_per_node)
    assert S.tp_size(describe("8xH100"), get_preset("qwen3-4b-instruct").shape) == 8
    odd = get_preset("qwen2.5-1.5b-instruct").shape  # 2 KV heads: TP cannot go past 2
    assert S.tp_size(describe("8xH100"), odd) == 2


def test_choose_refuses_a_forbidden_pair_and_unknown_names_get_suggestions():
    options = S.price(get_preset("qwen3-4b-instruct").shape, "lora", describe("8xH100"), 2, 1024)
    with pytest.raises(UsageError, match="nearest allowed: --parallel zero3"):
        S.choose(options, "megatron")
    with pytest.raises(UsageError, match="zero3"):
        S.get("zero-3")
    assert S.choose(options, "zero2").name == "zero2"
    assert set(S.PARALLEL_CHOICES) == {"auto", *S.STRATEGIES}


def test_speed_is_calibrated_only_where_measured(tmp_path):
    bench = tmp_path / "bench"
    bench.mkdir()
    rows = [{"name": "R1", "eff_tok_s": 1000}, {"name": "R1@z2", "strategy": "zero2", "eff_tok_s": 900}]
    (bench / "vram_calibration_parallel.json").write_text(json.dumps({"rows": rows}), encoding="utf-8")
    assert S.strategy_speed("zero2", tmp_path) == (pytest.approx(0.9), True)
    assert S.strategy_speed("zero3", tmp_path) == (S.STRATEGIES["zero3"].speed, False)


def test_table_marks_the_recommendation_and_estimated_speeds():
    options = S.price(get_preset("qwen3-4b-instruct").shape, "full", describe("8xA100-80GB"), 1, 1024)
    text = S.table_text(options, top=4)
    lines = text.splitlines()
    assert len(lines) == 5 and lines[0].split()[:2] == ["strategy", "shards"]
    star = [ln for ln in lines if ln.startswith("*")]
    assert len(star) == 1 and star[0].split()[1] == S.recommend(options).name
    assert "(estimated)" in text and "GiB/GPU" in lines[0]


# ---- shipped configs: loaded by their own parsers, same meaning as LF v0.9.5's examples -------------------------

DS = {"ds_z0_config.json": (0, None, 0), "ds_z2_config.json": (2, None, 0),
      "ds_z2_offload_config.json": (2, "cpu", 0), "ds_z2_autotp_config.json": (2, None, 2),
      "ds_z3_config.json": (3, None, 0), "ds_z3_offload_config.json": (3, "cpu", 0)}


def shipped(*parts: str):
    return files("llamafactory_ext.recipe").joinpath(*parts)


@pytest.mark.parametrize("name", sorted(DS))
def test_deepspeed_configs_parse_with_deepspeed(name):
    pytest.importorskip("deepspeed", reason="pip install deepspeed (CPU install works) to run DeepSpeed's parser")
    from deepspeed.runtime.config import DeepSpeedConfig
    from transformers import TrainingArguments
    from transformers.integrations.deepspeed import HfTrainerDeepSpeedConfig

    hf = HfTrainerDeepSpeedConfig(str(shipped("deepspeed", name)))
    hf.trainer_config_process(TrainingArguments(output_dir="out", per_device_train_batch_size=2,
                                                gradient_accumulation_steps=4, use_cpu=True, report_to="none"))
    zero = hf.config["zero_optimization"]
    zero.update({k: 1000 for k, v in zero.items() if v == "auto"})  # ZeRO-3's model-sized autos (set at train time)
    cfg = DeepSpeedConfig(hf.config)
    stage, offload, tp = DS[name]
    assert cfg.zero_optimization_stage == stage and cfg.train_batch_size == 8
    assert (cfg.zero_config.offload_optimizer.device if cfg.zero_config.offload_optimizer else None) == offload
    assert cfg.tensor_parallel_config.autotp_size == tp


def test_deepspeed_configs_keep_lfs_auto_batch_and_precision():
    for name in DS:
        data = json.loads(shipped("deepspeed", name).read_text(encoding="utf-8"))
        assert {data[k] for k in ("train_batch_size", "train_micro_batch_size_per_gpu",
                                  "gradient_accumulation_steps", "gradient_clipping")} == {"auto"}
        assert data["bf16"]["enabled"] == data["fp16"]["enabled"] == "auto"
    for strat in S.STRATEGIES.values():
        for rel in strat.files:
            assert shipped(*rel.split("/")).is_file(), rel


@pytest.mark.parametrize("name,version", [("fsdp_config.yaml", 1), ("fsdp2_config.yaml", 2)])
def test_accelerate_configs_parse_with_accelerate(name, version):
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.utils import DistributedType

    cfg = load_config_from_file(str(shipped("accelerate", name)))
    assert cfg.distributed_type == DistributedType.FSDP and cfg.mixed_precision == "bf16"
    fsdp = cfg.fsdp_config
    assert fsdp.get("fsdp_version", 1) == version and fsdp["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    assert fsdp["fsdp_offload_params"] is False and fsdp["fsdp_state_dict_type"] == "FULL_STATE_DICT"
    assert version == 2 or fsdp["fsdp_sharding_strategy"] == "FULL_SHARD"


@pytest.mark.parametrize("name", sorted(S.STRATEGIES))
def test_recipe_keys_point_at_configs_that_are_written(name):
    hw, shape = describe("8xH100"), get_preset("qwen3-4b-instruct").shape
    keys, texts = S.recipe_keys(name, hw, shape, "recipes"), S.config_texts(name, hw, shape)
    if "deepspeed" in keys:
        rel = keys["deepspeed"].removeprefix("recipes/")
        assert rel in texts and json.loads(texts[rel])["zero_optimization"]["stage"] == S.STRATEGIES[name].zero_stage
    if name == "autotp":
        assert json.loads(next(iter(texts.values())))["tensor_parallel"]["autotp_size"] == 8
    if name == "megatron":
        assert keys["finetuning_type"] == "full" and keys["tensor_model_parallel_size"] == 8
    if name == "fsdp-qlora":
        assert keys["quantization_bit"] == 4
    assert all(rel.startswith(("deepspeed/", "accelerate/")) for rel in texts)
