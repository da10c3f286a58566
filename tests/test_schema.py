"""Recipe schema: every LF launch-time cross-rule fails at build time naming its keys, and passes once fixed.

The tests marked `lf` hold the schema against LLaMA-Factory 0.9.5 itself: its argument dataclasses, its template
registry, and its parser run on recipes for a tiny local Qwen3.
"""

from __future__ import annotations

import enum
import json
import types
import typing

import pytest
from pydantic import ValidationError

from llamafactory_ext.errors import RecipeError, UnknownNameError
from llamafactory_ext.recipe.render import flat, from_flat
from llamafactory_ext.recipe.schema import (
    EFFICIENT_EOS_TEMPLATES,
    KINDS,
    DatasetSection,
    ModelSection,
    OutputSection,
    PredictRecipe,
    key_index,
    zero_stage,
)

MODEL = "Qwen/Qwen3-4B-Thinking-2507"
BASE = {
    "train": dict(model_name_or_path=MODEL, stage="sft", do_train=True, finetuning_type="lora", dataset="crypto_zh",
                  template="qwen3", output_dir="saves/t", learning_rate=1e-4, bf16=True),
    "predict": dict(model_name_or_path=MODEL, adapter_name_or_path="saves/t", stage="sft", do_predict=True,
                    eval_dataset="crypto_zh_test", template="qwen3", output_dir="saves/p", predict_with_generate=True),
    "export": dict(model_name_or_path=MODEL, adapter_name_or_path="saves/t", template="qwen3", export_dir="merged"),
    "chat": dict(model_name_or_path=MODEL, adapter_name_or_path="saves/t", template="qwen3"),
}

# (kind, breaking keys, fixing keys, words the error must name)
RULES = {
    "val_size-vs-eval_dataset": ("train", dict(val_size=0.1, eval_dataset="dev"), dict(val_size=0.1),
                                 ["val_size", "eval_dataset"]),
    "val_size-needs-dataset": ("predict", dict(eval_dataset=None, val_size=0.1),
                               dict(eval_dataset=None, val_size=0.1, dataset="crypto_zh"), ["val_size", "dataset"]),
    "do_predict-needs-generate": ("predict", dict(predict_with_generate=False), {},
                                  ["do_predict", "predict_with_generate"]),
    "generate-vs-zero3": ("train", dict(deepspeed="ds_z3_config.json", predict_with_generate=True, val_size=0.1),
                          dict(deepspeed="ds_z2_config.json", predict_with_generate=True, val_size=0.1),
                          ["predict_with_generate", "deepspeed", "ZeRO-3"]),
    "generate-vs-accuracy": ("train", dict(predict_with_generate=True, compute_accuracy=True, val_size=0.1),
                             dict(compute_accuracy=True, val_size=0.1), ["predict_with_generate", "compute_accuracy"]),
    "quantization-needs-lora": ("train", dict(quantization_bit=4, finetuning_type="full"), dict(quantization_bit=4),
                                ["quantization_bit", "finetuning_type"]),
    "quantization-bits-of-method": ("train", dict(quantization_bit=3), dict(quantization_bit=3,
                                    quantization_method="hqq"), ["quantization_bit", "quantization_method"]),
    "adapter-needs-lora": ("train", dict(adapter_name_or_path="saves/a", finetuning_type="full"),
                           dict(adapter_name_or_path="saves/a"), ["adapter_name_or_path", "finetuning_type"]),
    "quantized-one-adapter": ("chat", dict(quantization_bit=4, adapter_name_or_path="a,b"),
                              dict(quantization_bit=4, adapter_name_or_path="a"),
                              ["quantization_bit", "adapter_name_or_path"]),
    "bf16-vs-fp16": ("train", dict(fp16=True), dict(fp16=True, bf16=False), ["bf16", "fp16"]),
    "eval_strategy-needs-data": ("train", dict(eval_strategy="steps"), dict(eval_strategy="steps", val_size=0.1),
                                 ["eval_strategy", "eval_dataset", "val_size"]),
    "do_eval-needs-data": ("train", dict(do_eval=True), dict(do_eval=True, eval_dataset="dev"),
                           ["do_eval", "eval_dataset", "val_size"]),
    "predict-needs-data": ("predict", dict(eval_dataset=None), dict(eval_dataset=None, dataset="d", val_size=50),
                           ["do_predict", "eval_dataset", "val_size"]),
    "neat_packing-fa2-batch": ("train", dict(neat_packing=True, flash_attn="fa2", per_device_train_batch_size=2),
                               dict(neat_packing=True, flash_attn="fa2", per_device_train_batch_size=1),
                               ["neat_packing", "fa2", "per_device_train_batch_size"]),
    "neat_packing-fa2-default-batch": ("train", dict(neat_packing=True, flash_attn="fa2"),
                                       dict(neat_packing=True, flash_attn="sdpa"), ["per_device_train_batch_size=8"]),
    "gptq-needs-calibration": ("export", dict(adapter_name_or_path=None, export_quantization_bit=4),
                               dict(adapter_name_or_path=None, export_quantization_bit=4,
                                    export_quantization_dataset="c4_zh.jsonl"),
                               ["export_quantization_bit", "export_quantization_dataset"]),
    "gptq-merge-first": ("export", dict(export_quantization_bit=4, export_quantization_dataset="c4_zh.jsonl"),
                         dict(adapter_name_or_path=None, export_quantization_bit=4,
                              export_quantization_dataset="c4_zh.jsonl"),
                         ["export_quantization_bit", "adapter_name_or_path", "merge first"]),
    "merge-not-quantized": ("export", dict(quantization_bit=4), {}, ["quantization_bit"]),
    "mask_history-vs-train_on_prompt": ("train", dict(mask_history=True, train_on_prompt=True),
                                        dict(mask_history=True), ["mask_history", "train_on_prompt"]),
    "chatglm3-no-train_on_prompt": ("train", dict(template="chatglm3", train_on_prompt=True),
                                    dict(template="chatglm3"), ["train_on_prompt", "chatglm3"]),
    "learning_rate-positive": ("train", dict(learning_rate=0.0), dict(learning_rate=2e-5), ["learning_rate"]),
    "sft-only-keys": ("train", dict(stage="pt", mask_history=True), dict(stage="pt"), ["mask_history", "stage"]),
    "train-sets-do_train": ("train", dict(do_train=None), {}, ["do_train"]),
    "predict-does-not-train": ("predict", dict(do_train=True), {}, ["do_predict", "do_train"]),
    "train-on-huggingface": ("train", dict(infer_backend="vllm"), dict(infer_backend="huggingface"),
                             ["infer_backend"]),
    "vllm-no-bnb": ("chat", dict(infer_backend="vllm", quantization_bit=4), dict(infer_backend="vllm"),
                    ["infer_backend", "quantization_bit"]),
    "template-exists": ("train", dict(template="baichuan2"), dict(template="qwen3"), ["template", "baichuan2"]),
}


@pytest.mark.parametrize("case", RULES)
def test_cross_rule_raises_naming_keys_and_passes_when_fixed(case):
    kind, bad, good, words = RULES[case]
    with pytest.raises(RecipeError) as err:
        from_flat(kind, {**BASE[kind], **bad}, source="recipes/x.yaml")
    for word in ["recipes/x.yaml", *words]:
        assert word in str(err.value)
    from_flat(kind, {**BASE[kind], **good})


def test_direct_construction_enforces_the_same_rules():
    with pytest.raises(ValidationError, match="val_size \\+ eval_dataset"):
        PredictRecipe(model=ModelSection(model_name_or_path=MODEL), output=OutputSection(output_dir="o"),
                      dataset=DatasetSection(eval_dataset="e", dataset="d", val_size=0.1))


def test_predict_recipe_defaults_to_an_sft_predict_run():
    recipe = PredictRecipe(model=ModelSection(model_name_or_path=MODEL), output=OutputSection(output_dir="o"),
                           dataset=DatasetSection(eval_dataset="crypto_zh_test", template="qwen3"))
    assert {k: flat(recipe)[k] for k in ("stage", "do_predict", "predict_with_generate")} == {
        "stage": "sft", "do_predict": True, "predict_with_generate": True}


def test_deepspeed_is_a_launch_note_not_an_error():
    plain = from_flat("train", BASE["train"])
    ds = from_flat("train", {**BASE["train"], "deepspeed": "ds_z3_config.json"})
    assert not plain.needs_torchrun and plain.notes == ()
    assert ds.needs_torchrun and any("FORCE_TORCHRUN=1 llamafactory-cli train" in n for n in ds.notes)


def test_enable_thinking_on_a_plain_template_is_a_warning():
    plain = from_flat("train", {**BASE["train"], "template": "qwen3_nothink", "enable_thinking": False})
    reasoning = from_flat("train", {**BASE["train"], "enable_thinking": None})
    assert any("enable_thinking" in n and "qwen3_nothink" in n for n in plain.notes)
    assert reasoning.notes == ()


def test_zero_stage_from_file_beats_the_name(tmp_path):
    config = tmp_path / "my_deepspeed.json"
    config.write_text(json.dumps({"zero_optimization": {"stage": 3}}))
    assert zero_stage(str(config)) == 3
    assert (zero_stage("examples/deepspeed/ds_z3_offload_config.json"), zero_stage("ds_z2_config.json")) == (3, 2)
    assert zero_stage("custom.json") is None and zero_stage(None) is None
    with pytest.raises(RecipeError, match="ZeRO-3"):
        from_flat("train", {**BASE["train"], "deepspeed": str(config), "predict_with_generate": True, "val_size": 0.1})


def test_unknown_and_renamed_keys_when_reading_a_flat_recipe():
    with pytest.raises(UnknownNameError, match="Did you mean: cutoff_len"):
        from_flat("train", {**BASE["train"], "cutof_len": 1024})
    for old, new in (("warmup_ratio", "warmup_steps"), ("gradient_checkpointing", "disable_gradient_checkpointing"),
                     ("evaluation_strategy", "eval_strategy")):
        with pytest.raises(RecipeError, match=new):
            from_flat("train", {**BASE["train"], old: 0.1})


def test_missing_required_keys_are_named():
    with pytest.raises(RecipeError, match="output_dir: Field required"):
        from_flat("train", {k: v for k, v in BASE["train"].items() if k != "output_dir"})


def _sections():
    return {f.annotation for cls in KINDS.values() for f in cls.model_fields.values()}


def test_every_key_is_described_forbidding_extras_and_frozen():
    for section in _sections():
        assert section.model_config["extra"] == "forbid" and section.model_config["frozen"], section
        for key, field in section.model_fields.items():
            assert field.description and len(field.description) > 15, f"{section.__name__}.{key}"
    with pytest.raises(ValidationError, match="Extra inputs"):
        ModelSection(model_name_or_path=MODEL, model_revision="main")
    with pytest.raises(ValidationError, match="frozen"):
        ModelSection(model_name_or_path=MODEL).trust_remote_code = True  # type: ignore[misc]


def test_no_dropped_or_foreign_keys():
    keys = {k for kind in KINDS for k in key_index(kind)}
    assert not keys & {"warmup_ratio", "gradient_checkpointing", "evaluation_strategy"}
    for kind, cls in KINDS.items():  # one section per key, so `key=value` overrides are unambiguous
        assert len(key_index(kind)) == sum(len(f.annotation.model_fields) for f in cls.model_fields.values())


# ---- against LLaMA-Factory 0.9.5 itself -------------------------------------------------------------------------

lf = pytest.mark.lf


def _choices(annotation) -> set | None:
    """Allowed values of an enum / Literal annotation (None: any value of its type)."""
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return {m.value for m in annotation}
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _choices(typing.get_args(annotation)[0])
    if origin is typing.Literal:
        return set(typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        found = [c for a in typing.get_args(annotation) if (c := _choices(a)) is not None]
        return set().union(*found) if found else None
    return None


@pytest.fixture(scope="module")
def lf_fields():
    import dataclasses
    import os

    os.environ.setdefault("DISABLE_VERSION_CHECK", "1")
    from llamafactory.hparams import parser

    def fields(classes):
        return {f.name: f.type for c in classes for f in dataclasses.fields(c)}

    return {"train": fields(parser._TRAIN_ARGS), "predict": fields(parser._TRAIN_ARGS),
            "export": fields(parser._INFER_ARGS), "chat": fields(parser._INFER_ARGS)}


@lf
def test_every_key_is_an_lf_argument_with_choices_lf_accepts(lf_fields):
    for kind in KINDS:
        for key, section in key_index(kind).items():
            assert key in lf_fields[kind], f"{kind}: LF 0.9.5 has no argument {key}"
            ours = _choices(KINDS[kind].model_fields[section].annotation.model_fields[key].annotation)
            theirs = _choices(lf_fields[kind][key])
            if ours is not None and theirs is not None:
                assert ours <= theirs, f"{key}: {ours - theirs} not accepted by LF"


@lf
def test_efficient_eos_templates_match_lf(lf_fields):
    from llamafactory.data.template import TEMPLATES

    assert {name for name, t in TEMPLATES.items() if t.efficient_eos} == EFFICIENT_EOS_TEMPLATES


@pytest.fixture
def lf_world(tmp_path, tiny_qwen3):
    """A launch folder: tiny local Qwen3, a one-file dataset registered in dataset_info.json."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "demo.jsonl").write_text(json.dumps({"instruction": "什么是AES？", "input": "", "output": "分组密码。"},
                                                ensure_ascii=False) + "\n", encoding="utf-8")
    (data / "dataset_info.json").write_text(json.dumps({"demo": {"file_name": "demo.jsonl"}}))
    common = dict(model_name_or_path=str(tiny_qwen3), template="qwen3")
    return {
        "train": {**common, "stage": "sft", "do_train": True, "dataset": "demo", "dataset_dir": str(data),
                  "output_dir": str(tmp_path / "out"), "learning_rate": 1e-4, "warmup_steps": 0.1, "bf16": True,
                  "enable_thinking": None, "report_to": "none"},
        "predict": {**common, "stage": "sft", "do_predict": True, "eval_dataset": "demo", "dataset_dir": str(data),
                    "output_dir": str(tmp_path / "pred"), "predict_with_generate": True, "do_sample": False,
                    "max_new_tokens": 64},
        "export": {**common, "adapter_name_or_path": str(tmp_path / "out"), "export_dir": str(tmp_path / "merged")},
        "chat": {**common, "temperature": 0.6, "top_p": 0.95},
    }


@lf
@pytest.mark.slow
def test_lf_accepts_generated_recipes(lf_world):
    from llamafactory_ext.recipe.lf_check import check_many

    jobs = [(from_flat(kind, args), None, f"{kind}.yaml") for kind, args in lf_world.items()]
    skipped = check_many(jobs)
    assert len(skipped) == 4 and all("bf16" in s for s in skipped[0]) and skipped[1:] == [(), (), ()]


@lf
@pytest.mark.slow
def test_lf_rejects_with_its_own_message(lf_world):
    from llamafactory_ext.recipe.lf_check import check_with_lf

    recipe = from_flat("train", {**lf_world["train"], "dataset": "demo,missing"})  # the schema cannot know
    with pytest.raises(RecipeError, match=r"recipes/x\.yaml: .*Undefined dataset missing in dataset_info\.json"):
        check_with_lf(recipe, source="recipes/x.yaml")


def test_best_model_needs_matching_save_and_eval_cadence():
    base = {"model_name_or_path": "m", "do_train": True, "dataset": "d_train", "eval_dataset": "d_val",
            "output_dir": "o", "load_best_model_at_end": True, "metric_for_best_model": "eval_loss",
            "save_strategy": "steps", "eval_strategy": "steps"}
    assert from_flat("train", {**base, "save_steps": 10, "eval_steps": 5})
    with pytest.raises(RecipeError, match="multiple of eval_steps"):
        from_flat("train", {**base, "save_steps": 10, "eval_steps": 4})
    with pytest.raises(RecipeError, match="same strategy"):
        from_flat("train", {**base, "save_strategy": "epoch", "save_steps": None})
