"""The planner over the whole grid: 9 presets x 11 named cards x 1/2/4/8 GPUs x four kinds of dataset.

Every cell either plans a recipe set that keeps the invariants a user relies on (fits the card's real memory,
resumes and never collides, trains in a precision that works, companions that run, batch that scales) or refuses
with the reason and the fix. Pure planner: ~1,600 cells in seconds. A sample of the written files then goes through
LLaMA-Factory's own parser in one process (marked lf).
"""

from __future__ import annotations

import math

import pytest

from llamafactory_ext.errors import RecipeError
from llamafactory_ext.recipe.facts import DataFacts
from llamafactory_ext.recipe.hardware import describe
from llamafactory_ext.recipe.layout import candidates
from llamafactory_ext.recipe.memory import HEADROOM, inference_need_gib
from llamafactory_ext.recipe.models import PRESETS
from llamafactory_ext.recipe.plan import QWEN_TEMPLATES, Choices, plan
from llamafactory_ext.recipe.render import render

CARDS = ("T4", "V100", "3060", "4090", "L4", "A10", "L40S", "A100-40GB", "A100-80GB", "H100", "H200")
COUNTS = (1, 2, 4, 8)
DATA = {
    "small": DataFacts("small", train=60, val=8, test=8, tokens_p50=300, tokens_p99=900, tokens_max=1000,
                       answer_tokens_p99=500, with_reasoning=1.0),
    "medium": DataFacts("medium", train=600, val=60, test=60, tokens_p50=400, tokens_p99=1500, tokens_max=1800,
                        answer_tokens_p99=900, with_reasoning=1.0),
    "large": DataFacts("large", train=20000, val=500, test=500, tokens_p50=250, tokens_p99=1100, tokens_max=1500,
                       answer_tokens_p99=600, token_counter="qwen-bpe"),
    "long": DataFacts("long", train=800, val=50, test=50, tokens_p50=4000, tokens_p99=7600, tokens_max=8000,
                      answer_tokens_p99=7100, with_reasoning=1.0, token_counter="qwen-bpe"),
}
# Refusals a cell may end in, each with the fix in its message.
REFUSALS = {
    "thinking-only": "--require-reasoning",
    "overflow fp16": "--gpu",
    "does not fit": "--gpu",
}


def cells():
    for key in PRESETS:
        for card in CARDS:
            for n in COUNTS:
                for data in DATA:
                    yield key, card, n, data


def build(key: str, card: str, n: int, data: str):
    preset, hw = PRESETS[key], describe(f"{n}x{card}")
    return preset, hw, plan(preset, preset.hub_id, DATA[data], hw, Choices())


def _refusal_is_expected(exc: RecipeError, preset, hw, facts) -> None:
    text = str(exc)
    kind = next((k for k in REFUSALS if k in text), None)
    assert kind, f"unexpected refusal: {text}"
    assert REFUSALS[kind] in text, f"refusal without its fix: {text}"
    if kind == "thinking-only":
        assert preset.reasoning == "thinking_only" and facts.with_reasoning < 0.95
    if kind == "overflow fp16":
        assert preset.template.startswith("gemma3") and not hw.supports_bf16


def check_cell(preset, hw, facts, p) -> None:
    t, card = p.train, hw.gpu
    # fits the card's real (usable) memory, priced at cutoff_len whatever the packing
    assert p.layout.estimate.need_gib <= HEADROOM * card.vram_gib
    assert p.layout.setup.seq_len >= t.value("cutoff_len")
    # runs never collide and always resume
    assert t.value("output_dir") == f"saves/{p.stem}/{facts.name}/sft"
    assert {r.value("adapter_name_or_path") for r in (p.predict, p.merge, p.chat)} == {t.value("output_dir")}
    assert t.value("overwrite_output_dir") is None and t.value("overwrite_cache") is None
    steps, every = p.scale.steps, t.value("save_steps")
    assert t.value("save_strategy") == "steps" and steps / every >= min(3, steps)  # several checkpoints per run
    assert t.value("save_total_limit") and t.value("save_only_model") is False  # optimizer state kept: exact resume
    if facts.val:
        assert t.value("eval_strategy") == "steps" and every % t.value("eval_steps") == 0
    if t.value("load_best_model_at_end"):
        assert t.value("metric_for_best_model") == "eval_loss" and facts.train <= 1000
    # precision that trains
    assert (t.value("bf16"), t.value("fp16")) == ((True, False) if card.bf16 else (False, True))
    if not card.bf16:
        assert not preset.template.startswith("gemma3") and p.layout.setup.act == 4
        assert preset.template not in QWEN_TEMPLATES or any("QwenLM #670" in n for n in p.notes)
    # honest plans
    assert t.value("trust_remote_code") is (True if preset.trust_remote_code else None)
    bits = t.value("quantization_bit")
    assert bool(t.value("upcast_layernorm")) == bool(bits)
    if bits:
        kw = dict(cutoff=p.layout.setup.cutoff_len, longest=p.layout.setup.cutoff_len,
                  packing=p.layout.setup.packing, liger=p.layout.setup.liger, rank=t.value("lora_rank"),
                  act_bytes=p.layout.setup.act)
        assert not [lay for lay in candidates(preset.shape, hw, quant="lora", **kw) if lay.zero != "z3_offload"]
    assert (t.value("deepspeed") is not None) <= (hw.world_size > 1)
    _check_companions(preset, hw, facts, p)
    _check_scaling(hw, p)


def _check_companions(preset, hw, facts, p) -> None:
    e, thinks = p.predict.eval, p.train.value("enable_thinking") is not False and facts.with_reasoning > 0 \
        and preset.reasoning != "none"
    if thinks:
        assert (e.do_sample, e.temperature, e.top_p, e.top_k) == (True, 0.6, 0.95, 20)
        assert e.max_new_tokens >= min(facts.answer_tokens_p99, (preset.context_len or 10**9) - p.predict.value(
            "cutoff_len"))
    need = inference_need_gib(preset.shape, batch=e.per_device_eval_batch_size, prompt=p.predict.value("cutoff_len"),
                              new_tokens=e.max_new_tokens, quant_bit=p.predict.value("quantization_bit"),
                              lora_rank=p.train.value("lora_rank"))
    assert need <= HEADROOM * hw.gpu.vram_gib or any("predict does not fit" in n for n in p.notes)
    if preset.template in ("gemma3", "chatglm3"):
        assert p.gptq is None and any("no GPTQ recipe" in n for n in p.notes)
    else:
        assert p.gptq.export.export_quantization_maxlen == 1024 and p.gptq.export.export_quantization_nsamples >= 1


def _check_scaling(hw, p) -> None:
    t, sc = p.train, p.scale
    world = hw.world_size
    per_step = t.value("per_device_train_batch_size") * t.value("gradient_accumulation_steps") * world
    assert per_step >= sc.effective_batch >= p.hyper.effective_batch
    assert t.value("learning_rate") == pytest.approx(p.hyper.learning_rate * math.sqrt(
        sc.effective_batch / p.hyper.effective_batch), rel=5e-3)
    if world > 1:
        text = " ".join(p.notes)
        assert "expected speed-up" in text or "one GPU cannot hold" in text
        assert sc.gpus_used == world or "would do nearly as well" in text or "GPU(s)" in text


def test_every_cell_plans_a_recipe_that_keeps_the_invariants_or_refuses_with_the_fix():
    planned = refused = 0
    for key, card, n, data in cells():
        preset, hw, facts = PRESETS[key], describe(f"{n}x{card}"), DATA[data]
        try:
            p = plan(preset, preset.hub_id, facts, hw, Choices())
        except RecipeError as exc:
            _refusal_is_expected(exc, preset, hw, facts)
            refused += 1
            continue
        try:
            check_cell(preset, hw, facts, p)
        except AssertionError as exc:
            raise AssertionError(f"{key} on {n}x{card} with {data} data: {exc}") from None
        planned += 1
    assert planned + refused == len(PRESETS) * len(CARDS) * len(COUNTS) * len(DATA)
    assert planned > 0.8 * (planned + refused)  # refusals stay the exception (gemma-3 pre-Ampere, thinking-only)


def test_more_gpus_never_slow_a_large_run_down():
    preset = PRESETS["qwen2.5-7b-instruct"]
    ups = [plan(preset, preset.hub_id, DATA["large"], describe(f"{n}xA100-80GB")).speedup for n in (2, 4, 8)]
    assert ups[0] < ups[1] < ups[2] and ups[2] > 5  # the global batch grows with the GPUs: near-linear


def sample_cells(step: int = 37):
    """Every step-th cell that plans (a spread over models, cards, counts and data) for LF's parser."""
    out = []
    for i, (key, card, n, data) in enumerate(cells()):
        if i % step:
            continue
        try:
            out.append((key, card, n, data, build(key, card, n, data)[2]))
        except RecipeError:
            continue
    return out


@pytest.mark.lf
@pytest.mark.slow
def test_lf_parser_accepts_a_sample_of_the_written_files(tiny_qwen3, tiny_gemma3, tmp_path):
    import json

    import yaml

    from llamafactory_ext.recipe.lf_check import check_many
    from llamafactory_ext.recipe.render import from_flat

    data = tmp_path / "dataset_info"
    data.mkdir()
    info = {}
    for name in DATA:
        for split in ("train", "val", "test"):
            (data / f"{name}_{split}.jsonl").write_text(json.dumps({"instruction": "问", "input": "", "output": "答"})
                                                         + "\n", encoding="utf-8")
            info[f"{name}_{split}"] = {"file_name": f"{name}_{split}.jsonl"}
        (data / f"{name}_gptq_calib.jsonl").write_text('{"text": "x"}\n')
    (data / "dataset_info.json").write_text(json.dumps(info))
    jobs = []
    for key, card, n, name, p in sample_cells():
        for suffix, recipe in p.recipes.items():
            flat = yaml.safe_load(render(recipe))
            assert flat == {k: v for _, s in recipe.sections() for k, v in s.written()}  # reads back exactly
            if suffix == "_merge":
                continue  # a merge without its trained adapter is not a merge (end to end in test_recipe_e2e)
            flat["model_name_or_path"] = str(tiny_gemma3 if flat.get("template") == "gemma3" else tiny_qwen3)
            flat.pop("adapter_name_or_path", None)
            flat.pop("deepspeed", None)  # needs a torchrun launch; the schema checks its rules
            for k in ("bf16", "fp16", "enable_liger_kernel", "quantization_bit", "quantization_method",
                      "upcast_layernorm"):
                flat.pop(k, None)  # this CPU machine cannot judge GPU-only keys
            flat = {**flat, "dataset_dir": str(data)} if "dataset_dir" in flat else flat
            if "export_quantization_dataset" in flat:
                flat["export_quantization_dataset"] = str(data / f"{name}_gptq_calib.jsonl")
            jobs.append((from_flat(recipe.kind, flat, source=f"{key} {n}x{card} {name}{suffix}"), recipe.kind,
                         f"{key} {n}x{card} {name}{suffix}"))
    assert len(jobs) >= 100
    check_many(jobs, workdir=tmp_path)
