"""Recipe → LF YAML text: LF's layout, floats that stay floats, Chinese unescaped, and LF's key=value overrides."""

from __future__ import annotations

import math

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from llamafactory_ext.errors import RecipeError, UnknownNameError
from llamafactory_ext.recipe.render import apply_overrides, flat, format_float, from_flat, render
from llamafactory_ext.recipe.schema import (
    DatasetSection,
    EvalSection,
    MethodSection,
    ModelSection,
    OutputSection,
    TrainRecipe,
    TrainSection,
)

RECIPE = TrainRecipe(
    model=ModelSection(model_name_or_path="Qwen/Qwen3-4B-Thinking-2507", trust_remote_code=True, flash_attn="auto"),
    method=MethodSection(stage="sft", do_train=True, finetuning_type="lora", lora_rank=16, lora_alpha=32,
                         lora_target="all"),
    dataset=DatasetSection(dataset="crypto_zh", dataset_dir="dataset_info", template="qwen3", cutoff_len=4096,
                           val_size=0.1, mask_history=True, default_system="你是一位密码学专家，请先思考再回答。",
                           preprocessing_num_workers=4),
    output=OutputSection(output_dir="saves/qwen3-4b-thinking/lora/sft", logging_steps=10, save_steps=500,
                         plot_loss=True, overwrite_output_dir=True, report_to="none"),
    train=TrainSection(per_device_train_batch_size=1, gradient_accumulation_steps=8, learning_rate=1e-4,
                       num_train_epochs=3, lr_scheduler_type="cosine", warmup_steps=0.1, bf16=True,
                       ddp_timeout=180000000, resume_from_checkpoint=None),
    eval=EvalSection(eval_strategy="steps", eval_steps=500, per_device_eval_batch_size=1),
)

GOLDEN = """\
# llamafactory-cli train recipes/qwen3_thinking_lora.yaml
# planned for 1x RTX 4090 (24 GiB)

### model
model_name_or_path: Qwen/Qwen3-4B-Thinking-2507
trust_remote_code: true
flash_attn: auto

### method
stage: sft
do_train: true
finetuning_type: lora
lora_rank: 16
lora_alpha: 32
lora_target: all

### dataset
dataset: crypto_zh
dataset_dir: dataset_info
template: qwen3
cutoff_len: 4096
val_size: 0.1
mask_history: true
default_system: 你是一位密码学专家，请先思考再回答。
preprocessing_num_workers: 4

### output
output_dir: saves/qwen3-4b-thinking/lora/sft
logging_steps: 10
save_steps: 500
plot_loss: true
overwrite_output_dir: true
report_to: none

### train
per_device_train_batch_size: 1
gradient_accumulation_steps: 8
learning_rate: 1.0e-4
num_train_epochs: 3.0
lr_scheduler_type: cosine
warmup_steps: 0.1
bf16: true
ddp_timeout: 180000000
resume_from_checkpoint: null

### eval
eval_strategy: steps
eval_steps: 500
per_device_eval_batch_size: 1
"""


def _types(data: dict) -> dict:
    return {k: type(v) for k, v in data.items()}


def test_golden_train_recipe_in_lf_layout():
    header = ["llamafactory-cli train recipes/qwen3_thinking_lora.yaml", "planned for 1x RTX 4090 (24 GiB)"]
    assert render(RECIPE, header) == GOLDEN


def test_yaml_readers_get_exactly_what_lf_should_receive():
    loaded = yaml.safe_load(render(RECIPE))
    assert loaded == flat(RECIPE) and _types(loaded) == _types(flat(RECIPE))
    omegaconf = pytest.importorskip("omegaconf")  # what `llamafactory-cli train file.yaml` loads YAML with
    seen = omegaconf.OmegaConf.to_container(omegaconf.OmegaConf.create(render(RECIPE)))
    assert seen == flat(RECIPE) and _types(seen) == _types(flat(RECIPE))


def test_read_back_gives_the_same_recipe():
    again = from_flat("train", yaml.safe_load(render(RECIPE)))
    assert again == RECIPE and render(again) == render(RECIPE)


def test_enable_thinking_unset_is_omitted_but_null_is_written():
    unset = RECIPE.model_copy(update={"dataset": DatasetSection(dataset="d", template="qwen3")})
    mixed = RECIPE.model_copy(update={"dataset": DatasetSection(dataset="d", template="qwen3", enable_thinking=None)})
    assert "enable_thinking" not in render(unset)
    assert "enable_thinking: null" in render(mixed)
    assert yaml.safe_load(render(mixed))["enable_thinking"] is None


def test_strings_that_look_like_numbers_stay_strings():
    odd = apply_overrides(RECIPE, ["dataset=1e5", "output_dir=2024"])
    loaded = yaml.safe_load(render(odd))
    assert loaded["dataset"] == "1e5" and loaded["output_dir"] == "2024"


@pytest.mark.parametrize(("value", "text"), [
    (1e-4, "1.0e-4"), (2e-5, "2.0e-5"), (1.5e-4, "1.5e-4"), (5e-6, "5.0e-6"), (0.1, "0.1"), (3.0, "3.0"),
    (0.001, "0.001"), (0.95, "0.95"), (0.0, "0.0"), (1e16, "1.0e+16"), (-2.5e-7, "-2.5e-7"), (math.inf, ".inf"),
])
def test_format_float_in_lf_style(value, text):
    assert format_float(value) == text


@given(st.floats(allow_nan=False))
def test_every_float_reads_back_as_the_same_float(x):
    back = yaml.safe_load(f"x: {format_float(x)}")["x"]
    assert isinstance(back, float) and back == x


@given(lr=st.floats(min_value=0, max_value=1, exclude_min=True, exclude_max=True),
       warmup=st.floats(min_value=0, max_value=1, exclude_max=True),
       temperature=st.floats(min_value=0, allow_infinity=False))
def test_rendered_floats_round_trip_with_their_type(lr, warmup, temperature):
    recipe = apply_overrides(RECIPE, [f"learning_rate={lr!r}", f"warmup_steps={warmup!r}",
                                      f"temperature={temperature!r}"])
    loaded = yaml.safe_load(render(recipe))
    assert loaded == flat(recipe) and _types(loaded) == _types(flat(recipe))
    assert (loaded["learning_rate"], loaded["warmup_steps"], loaded["temperature"]) == (lr, warmup, temperature)


def test_override_learning_rate_like_lf_cli_gives_a_float():
    recipe = apply_overrides(RECIPE, ["learning_rate=1e-4", "num_train_epochs=2"])
    assert recipe.train.learning_rate == 1e-4 and isinstance(recipe.train.num_train_epochs, float)
    assert "learning_rate: 1.0e-4" in render(recipe) and "num_train_epochs: 2.0" in render(recipe)


def test_override_typo_suggests_the_key():
    with pytest.raises(UnknownNameError, match="Did you mean: learning_rate"):
        apply_overrides(RECIPE, ["lerning_rate=1e-4"])


def test_override_warmup_ratio_points_to_warmup_steps():
    with pytest.raises(RecipeError, match=r"warmup_ratio.*warmup_steps=0\.1"):
        apply_overrides(RECIPE, ["warmup_ratio=0.1"])


@pytest.mark.parametrize(("item", "key"), [
    ("cutoff_len=long", "cutoff_len"), ("cutoff_len=1.5", "cutoff_len"), ("bf16=[1]", "bf16"),
    ("flash_attn=fa3", "flash_attn"), ("learning_rate=-1", "learning_rate"), ("output_dir=null", "output_dir"),
])
def test_override_type_errors_name_the_key(item, key):
    with pytest.raises(RecipeError, match=key):
        apply_overrides(RECIPE, [item])


def test_override_reruns_cross_rules():
    with pytest.raises(RecipeError, match="val_size.*eval_dataset"):
        apply_overrides(RECIPE, ["eval_dataset=crypto_zh_test"])
    fixed = apply_overrides(RECIPE, ["eval_dataset=crypto_zh_test", "val_size=null"])
    assert fixed.dataset.eval_dataset == "crypto_zh_test" and "val_size" not in flat(fixed)


def test_override_null_unsets_and_nullable_keys_write_null():
    recipe = apply_overrides(RECIPE, ["bf16=null", "enable_thinking=null", "report_to=[wandb, tensorboard]"])
    assert "bf16" not in flat(recipe) and flat(recipe)["enable_thinking"] is None
    assert "report_to: [wandb, tensorboard]" in render(recipe)
    assert RECIPE.train.bf16 is True  # the original is untouched


def test_override_key_of_another_recipe_kind_or_without_equals():
    with pytest.raises(RecipeError, match="export_dir: not a key of a train recipe"):
        apply_overrides(RECIPE, ["export_dir=merged"])
    with pytest.raises(RecipeError, match="key=value"):
        apply_overrides(RECIPE, ["learning_rate"])


def test_lf_canonical_example_reads_back_once_warmup_ratio_is_replaced():
    example = yaml.safe_load(_LF_EXAMPLE)
    with pytest.raises(RecipeError, match="warmup_steps"):
        from_flat("train", example)
    example["warmup_steps"] = example.pop("warmup_ratio")
    recipe = from_flat("train", example)
    assert yaml.safe_load(render(recipe)) == example


_LF_EXAMPLE = """\
model_name_or_path: Qwen/Qwen3-4B-Instruct-2507
trust_remote_code: true
stage: sft
do_train: true
finetuning_type: lora
lora_rank: 8
lora_target: all
dataset: identity,alpaca_en_demo
template: qwen3_nothink
cutoff_len: 2048
max_samples: 1000
preprocessing_num_workers: 16
dataloader_num_workers: 4
output_dir: saves/qwen3-4b/lora/sft
logging_steps: 10
save_steps: 500
plot_loss: true
overwrite_output_dir: true
save_only_model: false
report_to: none
per_device_train_batch_size: 1
gradient_accumulation_steps: 8
learning_rate: 1.0e-4
num_train_epochs: 3.0
lr_scheduler_type: cosine
warmup_ratio: 0.1
bf16: true
ddp_timeout: 180000000
resume_from_checkpoint: null
"""


def test_a_header_line_never_breaks_out_of_its_comment():
    import yaml as _yaml

    from llamafactory_ext.recipe.schema import ChatRecipe, ModelSection

    recipe = ChatRecipe(model=ModelSection(model_name_or_path="m"))
    text = render(recipe, header=["note: folder a\nresume_from_checkpoint: x\u2028y"])
    assert _yaml.safe_load(text) == {"model_name_or_path": "m"}
    assert text.splitlines()[0] == "# note: folder a\\nresume_from_checkpoint: x\\u2028y"
