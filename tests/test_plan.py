"""Planner decisions with hardware given as data: what a user with that GPU should get."""

from __future__ import annotations

import pytest

from llamafactory_ext.errors import RecipeError
from llamafactory_ext.recipe.facts import DataFacts
from llamafactory_ext.recipe.hardware import describe
from llamafactory_ext.recipe.hyper import hyper_for
from llamafactory_ext.recipe.models import get_preset
from llamafactory_ext.recipe.plan import Choices, launch_command, plan
from llamafactory_ext.recipe.render import render

THINKING = DataFacts("syn", train=2000, val=200, test=200, tokens_p50=274, tokens_p99=1560, tokens_max=2046,
                     with_reasoning=1.0)
PLAIN = DataFacts("belle", train=1400, val=300, test=300, tokens_p50=180, tokens_p99=900, tokens_max=1400)


def make(model: str, gpu: str, facts: DataFacts = THINKING, **choices):
    preset = get_preset(model)
    return plan(preset, preset.hub_id, facts, describe(gpu), Choices(**choices))


def test_8gb_gets_4bit_qlora_for_a_4b_model():
    p = make("qwen3-4b-thinking", "1x8GB")
    assert p.train.model.quantization_bit == 4 and p.stem == "qwen3_thinking_qlora"
    assert p.layout.estimate.need_gib <= 8 * 0.9


def test_80gb_gets_bf16_lora_with_a_larger_batch_and_no_checkpointing():
    small, mid = make("qwen3-4b-thinking", "1x16GB"), make("qwen3-4b-thinking", "1x24GB")
    big = make("qwen3-4b-thinking", "1xH100-80GB")
    assert big.train.model.quantization_bit is None and big.train.train.bf16 is True
    assert big.train.model.disable_gradient_checkpointing is True  # 80 GB can afford to skip the recompute
    assert big.layout.setup.batch > small.layout.setup.batch
    assert big.layout.score > mid.layout.score > small.layout.score  # measured on an H100: 16.3k > 12.5k > 11.5k tok/s


def test_two_gpus_ddp_when_it_fits_else_zero3():
    fits = make("qwen2.5-1.5b-instruct", "2x16GB", PLAIN)
    assert fits.train.method.deepspeed is None and "DDP" in " ".join(fits.notes)
    big = make("qwen2.5-7b-instruct", "2x16GB", PLAIN)
    assert big.train.method.deepspeed == "recipes/deepspeed/ds_z3_config.json"
    assert launch_command(big.train, "r.yaml", describe("2x16GB")).startswith("FORCE_TORCHRUN=1 ")
    assert big.predict.method.deepspeed is None  # predict_with_generate is incompatible with ZeRO-3


def test_fp16_on_a_pre_ampere_card():
    p = make("qwen2.5-1.5b-instruct", "T4", PLAIN)
    assert p.train.train.fp16 is True and p.train.train.bf16 is None


def test_effective_batch_is_kept():
    p = make("qwen3-4b-thinking", "1x24GB", effective_batch=32)
    t = p.train.train
    assert t.per_device_train_batch_size * t.gradient_accumulation_steps >= 32
    assert t.per_device_train_batch_size * (t.gradient_accumulation_steps - 1) < 32


def test_thinking_only_refuses_data_without_reasoning():
    facts = DataFacts("mix", train=500, with_reasoning=0.6)
    with pytest.raises(RecipeError, match="only 60% of the training samples.*empty <think> block"):
        make("qwen3-4b-thinking", "1x24GB", facts)


def test_one_recipe_set_shares_template_thinking_and_paths():
    p = make("qwen3-4b-thinking", "1x24GB", DataFacts("c", train=60, val=10, test=10, with_reasoning=1.0,
                                                        multi_turn=True))
    assert {r.value("template") for r in p.recipes.values()} == {"qwen3"}
    assert {r.value("enable_thinking") for r in p.recipes.values()} == {True}
    sft = p.train.output.output_dir
    assert p.predict.model.adapter_name_or_path == sft == p.merge.model.adapter_name_or_path
    assert p.gptq.model.model_name_or_path == p.merge.export.export_dir
    assert p.train.dataset.mask_history is True  # multi-turn thinking data: train the last turn only
    assert p.predict.eval.max_new_tokens >= 4096  # Qwen's thinking-mode sampling, never greedy:
    assert (p.predict.eval.do_sample, p.predict.eval.temperature, p.predict.eval.top_p, p.predict.eval.top_k) == (
        True, 0.6, 0.95, 20)
    assert p.predict.dataset.eval_dataset == "c_test"


def test_plain_model_gets_no_thinking_switch_and_a_note_about_think_blocks():
    p = make("qwen2.5-1.5b-instruct", "1x12GB", DataFacts("c", train=60, with_reasoning=0.5))
    assert "enable_thinking" not in render(p.train)
    assert any("visible text" in n for n in p.notes)


def test_cutoff_from_p99_and_truncation_is_announced():
    p = make("qwen3-4b-thinking", "1x24GB")
    assert p.train.dataset.cutoff_len == 2048  # 1560 * 1.15 rounded up to 256
    assert not any("truncated by LF" in n for n in p.notes)  # the longest sample (2046) fits in 2048
    short = make("qwen3-4b-thinking", "1x24GB", DataFacts("s", train=2000, tokens_p99=400, tokens_max=3000,
                                                          with_reasoning=1.0))
    assert short.train.dataset.cutoff_len == 512 and any("truncated by LF" in n for n in short.notes)


@pytest.mark.parametrize("n,size,lr", [(40, "small", 2.0e-4), (500, "medium", 1.0e-4), (5000, "large", 1.0e-4)])
def test_hyperparameters_by_data_size(n, size, lr):
    h = hyper_for(n)
    assert h.size == size and h.learning_rate == lr
    p = make("qwen2.5-1.5b-instruct", "1x24GB", DataFacts("d", train=n))
    assert p.train.train.learning_rate == lr and p.train.method.lora_rank == h.lora_rank


def test_packing_only_on_large_sets_and_neat_on_request():
    assert make("qwen3-4b-thinking", "1x24GB").train.dataset.packing is True
    small = DataFacts("s", train=50, with_reasoning=1.0)
    assert make("qwen3-4b-thinking", "1x24GB", small).train.dataset.packing is None
    neat = make("qwen3-4b-thinking", "1x24GB", packing="neat").train.dataset
    assert neat.neat_packing is True and neat.packing is None


def test_nothing_fits_is_a_clear_error():
    with pytest.raises(RecipeError, match="does not fit on 1x 4 GiB even as 4-bit QLoRA"):
        make("qwen2.5-7b-instruct", "1x4GB", PLAIN)


def test_chatglm_gets_no_gptq_recipe():
    p = make("chatglm3-6b", "1x24GB", PLAIN)
    assert p.gptq is None and any("GPTQ" in n for n in p.notes)


def test_multi_node_launch_env():
    hw = describe("2xA100-80GB", nodes=2)
    preset = get_preset("qwen3-4b-thinking")
    p = plan(preset, preset.hub_id, THINKING, hw)
    cmd = launch_command(p.train, "recipes/x.yaml", hw)
    assert cmd.startswith("FORCE_TORCHRUN=1 NNODES=2 NODE_RANK=<0..1> MASTER_ADDR=")


def test_ddp_is_kept_whenever_it_fits_at_that_precision():
    small = DataFacts("c", train=30, val=7, test=7, tokens_p99=785, tokens_max=785, with_reasoning=1.0)
    p = make("qwen3-4b-thinking", "2xV100-16GB", small)
    assert p.layout.zero is None and p.train.method.deepspeed is None
    assert "DDP (fits on each GPU)" in " ".join(p.notes)


def test_predicting_on_the_training_split_is_announced():
    p = make("qwen3-4b-thinking", "1x24GB", DataFacts("c", train=30, with_reasoning=1.0))
    assert p.predict.dataset.eval_dataset == "c_train" and any("TRAINING data" in n for n in p.notes)


def test_output_dir_depends_on_model_dataset_and_method_and_never_overwrites():
    a, b = make("qwen3-4b-thinking", "1x24GB"), make("qwen3-4b-thinking", "1x24GB", DataFacts(
        "other", train=2000, val=200, with_reasoning=1.0))
    assert a.train.output.output_dir != b.train.output.output_dir
    assert "/syn/" in a.train.output.output_dir and "/other/" in b.train.output.output_dir
    assert a.train.value("overwrite_output_dir") is None  # LF resumes from the last checkpoint only when false
    named = make("qwen3-4b-thinking", "1x24GB", stem="mine")
    assert named.train.output.output_dir.startswith("saves/mine/")


def test_answer_length_sizes_thinking_generation():
    long = DataFacts("r", train=300, val=20, test=20, tokens_p99=7000, tokens_max=7300, answer_tokens_p99=7100,
                     with_reasoning=1.0)
    p = make("qwen3-4b-thinking", "1xH100-80GB", long)
    assert p.predict.eval.max_new_tokens >= 7100 and p.chat.generation.max_new_tokens >= 7100


def test_gemma3_never_fp16_and_qwen_fp16_carries_the_caveat():
    with pytest.raises(RecipeError, match="gemma-3.*overflow fp16"):
        make("gemma-3-4b-it", "T4", PLAIN)
    p = make("qwen2.5-1.5b-instruct", "T4", PLAIN)
    assert any("QwenLM #670" in n for n in p.notes)
    assert p.layout.setup.act == 4  # LF's fp16 keeps bf16 weights: the residual stream is fp32


def test_gemma3_gets_no_gptq_companion_and_is_told_why():
    p = make("gemma-3-4b-it", "1x24GB", PLAIN)
    assert p.gptq is None and any("model.language_model.layers" in n for n in p.notes)


def test_trust_remote_code_only_for_models_that_need_it():
    assert make("qwen2.5-1.5b-instruct", "1x24GB", PLAIN).train.value("trust_remote_code") is None
    glm = make("chatglm3-6b", "1x24GB", PLAIN)
    assert {r.value("trust_remote_code") for r in glm.recipes.values()} == {True}


def test_qlora_gets_upcast_layernorm():
    p = make("qwen3-4b-thinking", "1x8GB", quant="qlora")
    assert p.train.model.quantization_bit == 4 and p.train.model.upcast_layernorm is True


def test_cpu_plans_a_dry_run():
    p = make("qwen2.5-1.5b-instruct", "cpu", PLAIN)
    t = p.train.train
    assert t.max_steps == 2 and t.bf16 is None and t.fp16 is None and p.train.model.enable_liger_kernel is None
    assert any("CPU dry run" in n for n in p.notes)


def test_global_batch_grows_with_gpus_and_lr_follows_the_sqrt_rule():
    big = DataFacts("big", train=200_000, val=500, test=500, tokens_p50=300, tokens_p99=900, tokens_max=1000)
    one, eight = make("qwen2.5-7b-instruct", "1xA100-80GB", big), make("qwen2.5-7b-instruct", "8xA100-80GB", big)
    glob = [p.train.train.per_device_train_batch_size * p.train.train.gradient_accumulation_steps * w
            for p, w in ((one, 1), (eight, 8))]
    assert glob[1] == 8 * glob[0]
    assert eight.train.train.learning_rate == pytest.approx(one.train.train.learning_rate * 8 ** 0.5, rel=1e-2)
    assert eight.speedup and eight.speedup > 5 and any("expected speed-up" in n for n in eight.notes)


def test_force_writes_a_plan_that_does_not_fit_flagged():
    p = make("qwen2.5-7b-instruct", "1x4GB", PLAIN, force=True)
    assert not p.fits and any("DOES NOT FIT" in n for n in p.notes)
