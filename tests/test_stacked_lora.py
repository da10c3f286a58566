"""Stacked mixed-adapter batches (serve/stacked.py) against PEFT itself: on the tiny Qwen3 with three adapters of
different ranks, alphas and targets (one rslora), the stacked logits equal PEFT's mixed batch and each adapter run
alone, greedy answers are token-identical, PEFT's own path is back after every batch, and what cannot be stacked
exactly (DoRA, LoRA on embeddings) falls back to PEFT with its reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from llamafactory_ext.errors import UsageError
from llamafactory_ext.serve.engine import BASE, LORA_BATCH_ENV, Engine, Settings
from llamafactory_ext.serve.stacked import PEFT_BASE, Stacker, lora_layers

pytestmark = [pytest.mark.lf, pytest.mark.slow]
torch = pytest.importorskip("torch")

ATOL = 1e-5  # why: fp32 sums of the same products in another order differ by ~1e-6 at these logit sizes
PROMPT = "请解释对称加密和非对称加密的区别。"
ADAPTERS = {  # different ranks, alphas and target modules; the third scales by alpha/sqrt(r) (rslora)
    "a0": dict(r=8, lora_alpha=16, target_modules="all-linear"),
    "a1": dict(r=4, lora_alpha=32, target_modules=["q_proj", "v_proj"]),
    "a2": dict(r=2, lora_alpha=8, use_rslora=True, target_modules=["k_proj", "o_proj", "gate_proj", "down_proj"]),
}


def _random_adapter(base: Path, out: Path, seed: int, **lora) -> Path:
    """A LoRA adapter with random A and B (init_lora_weights=False): it moves the logits like a trained one."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base)
    get_peft_model(model, LoraConfig(init_lora_weights=False, **lora)).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def adapters(tiny_qwen3, tmp_path_factory) -> dict[str, str]:
    work = tmp_path_factory.mktemp("stacked")
    return {name: str(_random_adapter(tiny_qwen3, work / name, i, **cfg)) for i, (name, cfg) in
            enumerate(ADAPTERS.items())}


def _engine(base: Path, adapters: dict, lora_batch: str) -> Engine:
    engine = Engine({"model_name_or_path": str(base), "template": "qwen3"}, adapters, lora_batch=lora_batch)
    engine.load()
    assert not engine.errors, engine.errors
    return engine


@pytest.fixture(scope="module")
def engines(tiny_qwen3, adapters) -> tuple[Engine, Engine]:
    return _engine(tiny_qwen3, adapters, "stacked"), _engine(tiny_qwen3, adapters, "peft")


def _ids(engine: Engine, rows: int):
    return torch.tensor([engine.prompt_ids(PROMPT, True)] * rows)


def _stacked_logits(model, names: list[str], ids, dtype=None):
    with torch.inference_mode(), Stacker(model, dtype).rows(names) as kwargs:
        assert kwargs == {}, "the stacked path was refused"
        return model(input_ids=ids).logits


def _peft_mixed_logits(model, names: list[str], ids):
    with torch.inference_mode():
        return model(input_ids=ids, adapter_names=names).logits


def _alone_logits(model, name: str, ids):
    """PEFT's ordinary forward with one adapter active (or all disabled for the base)."""
    with torch.inference_mode():
        if name == PEFT_BASE:
            with model.disable_adapter():
                return model(input_ids=ids).logits
        previous = model.active_adapter
        model.set_adapter(name)
        try:
            return model(input_ids=ids).logits
        finally:
            model.set_adapter(previous)


def test_engine_uses_the_stacked_path_by_default(engines, monkeypatch):
    stacked, peft_engine = engines
    assert stacked.batching == "stacked" and "LoRA batch: stacked" in stacked.state
    assert peft_engine.batching.startswith("peft: chosen")
    assert stacked.twin("stacked-model-dtype").batching == "stacked-model-dtype"
    monkeypatch.setenv(LORA_BATCH_ENV, "peft")
    assert Engine({}, {}).lora_batch == "peft"
    monkeypatch.setenv(LORA_BATCH_ENV, "fast")
    with pytest.raises(UsageError, match="'fast'.*none of stacked, stacked-model-dtype, peft"):
        Engine({}, {})


@pytest.mark.parametrize("names", [[PEFT_BASE, "a0", "a1", "a2"], ["a2", PEFT_BASE, "a0", "a1", "a0"]])
def test_stacked_logits_equal_peft_mixed_batch_and_each_adapter_alone(engines, names):
    stacked, peft_engine = engines
    ids = _ids(stacked, len(names))
    got = _stacked_logits(stacked.model, names, ids)
    mixed = _peft_mixed_logits(peft_engine.model, names, ids)
    torch.testing.assert_close(got, mixed, atol=ATOL, rtol=0)
    for row, name in enumerate(names):
        alone = _alone_logits(peft_engine.model, name, ids[:1])
        torch.testing.assert_close(got[row:row + 1], alone, atol=ATOL, rtol=0)
    spread = [(got[0] - got[i]).abs().max().item() for i in range(1, len(names)) if names[i] != names[0]]
    assert min(spread) > 1e-2, "an adapter did not move the logits: the comparison would prove nothing"


def test_probe_logits_and_greedy_answers_match_peft(engines):
    stacked, peft_engine = engines
    cols = stacked.columns
    assert cols == [BASE, "a0", "a1", "a2"]
    torch.testing.assert_close(torch.tensor(stacked.probe_logits(PROMPT, cols)),
                               torch.tensor(peft_engine.probe_logits(PROMPT, cols)), atol=ATOL, rtol=0)
    settings = Settings(max_new_tokens=16, greedy=True)
    (_, fast), (_, slow) = stacked.generate(PROMPT, settings, cols), peft_engine.generate(PROMPT, settings, cols)
    assert stacked.batching == "stacked" and fast.tokens == slow.tokens
    assert len({tuple(t) for t in fast.tokens}) > 1, "every column answered alike: nothing was compared"


def test_peft_path_is_restored_after_a_stacked_batch(engines):
    stacked, _ = engines
    names = [PEFT_BASE, "a0", "a1", "a2"]
    ids = _ids(stacked, len(names))
    before = _peft_mixed_logits(stacked.model, names, ids)
    _stacked_logits(stacked.model, names, ids)
    assert not any("forward" in vars(layer) or "forward" in layer._modules for _, layer in lora_layers(stacked.model))
    torch.testing.assert_close(_peft_mixed_logits(stacked.model, names, ids), before, atol=0, rtol=0)


def test_bf16_base_with_fp32_adapters_matches_peft(tiny_qwen3, adapters):
    """How PEFT serves on a GPU: bf16 base, adapters upcast to fp32; the stacked path keeps those dtypes."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_qwen3, dtype=torch.bfloat16)
    model = PeftModel.from_pretrained(model, adapters["a0"], adapter_name="a0")
    model.load_adapter(adapters["a1"], adapter_name="a1")
    model.eval()
    names = ["a1", PEFT_BASE, "a0"]
    ids = torch.tensor([[5, 17, 42, 99, 7, 300]] * len(names))
    peft_logits = _peft_mixed_logits(model, names, ids)
    torch.testing.assert_close(_stacked_logits(model, names, ids), peft_logits,
                               atol=2e-2, rtol=0)  # bf16 output rounding; on CPU it is bit-identical
    in_bf16 = _stacked_logits(model, names, ids, torch.bfloat16)  # stacks cast once: LoRA rounded in bf16 too
    torch.testing.assert_close(in_bf16, peft_logits, atol=5e-2, rtol=0)
    assert (in_bf16[0] - in_bf16[1]).abs().max() > 5e-2, "the adapter's effect is lost in bf16 noise"


def _peft_model(base: Path, **lora):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base), LoraConfig(init_lora_weights=False, **lora))
    return model.eval()


@pytest.mark.parametrize(("lora", "reason"), [
    (dict(r=4, target_modules=["q_proj", "v_proj"], use_dora=True), "DoRA"),
    (dict(r=4, target_modules=["embed_tokens", "q_proj"]), "Embedding layer (only plain Linear LoRA stacks)"),
    (dict(r=4, target_modules=["q_proj"], lora_bias=True), "lora_bias"),
])
def test_what_cannot_be_stacked_falls_back_to_peft_with_its_reason(tiny_qwen3, lora, reason):
    model = _peft_model(tiny_qwen3, **lora)
    stacker = Stacker(model)
    assert reason in stacker.reason and "\n" not in stacker.reason
    names = [PEFT_BASE, "default"]
    with Stacker(model).rows(names) as kwargs:
        assert kwargs == {"adapter_names": names}


def test_merged_adapter_is_refused_per_batch(tiny_qwen3):
    model = _peft_model(tiny_qwen3, r=4, target_modules=["q_proj"])
    stacker = Stacker(model)
    assert stacker.why_not([PEFT_BASE, "default"]) is None
    assert "unknown adapter" in stacker.why_not([PEFT_BASE, "typo"])
    model.merge_adapter()
    assert "merged" in stacker.why_not([PEFT_BASE, "default"])


def test_a_batch_of_base_rows_is_the_base_model(engines):
    stacked, peft_engine = engines
    names = [PEFT_BASE, PEFT_BASE]
    ids = _ids(stacked, len(names))
    torch.testing.assert_close(_stacked_logits(stacked.model, names, ids),
                               _alone_logits(peft_engine.model, PEFT_BASE, ids), atol=ATOL, rtol=0)


def test_an_adapter_trained_by_llamafactory_is_stacked(tiny_qwen3, run_lf, tmp_path):
    """The adapters users bring: LF's own LoRA run (lora_target all) serves through the stacked path, equal to PEFT."""
    from webapp_support import dataset, train_adapter

    trained = train_adapter(run_lf, tiny_qwen3, dataset(tmp_path / "data"), tmp_path / "lf", lr=5e-2, seed=1)
    engine = _engine(tiny_qwen3, {"lf": str(trained)}, "stacked")
    assert engine.batching == "stacked", engine.batching
    cols = engine.columns
    torch.testing.assert_close(torch.tensor(engine.probe_logits(PROMPT, cols)),
                               torch.tensor(engine.twin("peft").probe_logits(PROMPT, cols)), atol=ATOL, rtol=0)
