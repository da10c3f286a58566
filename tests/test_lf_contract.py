"""What LLaMA-Factory accepts, decided by LLaMA-Factory: generated entries load with LF's own loader and the
label masks are right for qwen3 / qwen3_nothink / qwen (tiny local tokenizer, no downloads)."""

from __future__ import annotations

import json

import pytest
from lf_probe import lf_encode

from llamafactory_ext.build_dataset import main

pytestmark = pytest.mark.lf

ROWS = [
    {"messages": [{"role": "user", "content": "什么是AES？"},
                  {"role": "assistant", "content": "AES 是分组密码。", "reasoning_content": "首先分析问题。因此是分组密码。"}]},
    {"messages": [{"role": "system", "content": "你是密码学助手"}, {"role": "user", "content": "SM3 是什么？"},
                  {"role": "assistant", "content": "<think>\n先回忆国密标准。所以是哈希。\n</think>\n\nSM3 是国密哈希算法。"}]},
    {"messages": [{"role": "user", "content": "RSA 基于什么难题？"}, {"role": "assistant", "content": "大整数分解。"},
                  {"role": "user", "content": "那 ECC 呢？"}, {"role": "assistant", "content": "椭圆曲线离散对数问题。"}]},
]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("contract")
    src = root / "chats.jsonl"
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ROWS), encoding="utf-8")
    out = {}
    for fmt in ("sharegpt", "alpaca"):
        folder = root / fmt
        assert main(["openai", str(src), "--name", "c", "--out", str(folder), "--split", "100/0/0",
                     "--format", fmt, "--quiet"]) == 0
        out[fmt] = folder
    return out


@pytest.mark.parametrize("fmt", ["sharegpt", "alpaca"])
def test_qwen3_trains_the_reasoning_block_once(built, tiny_qwen3, tmp_path, fmt):
    rows = lf_encode(tiny_qwen3, built[fmt], "c_train", "qwen3", tmp_path)
    by_answer = {r["labels"].split("</think>\n\n")[-1].split("<|im_end|>")[0]: r for r in rows}
    aes = by_answer["AES 是分组密码。"]
    assert aes["labels"].startswith("<think>\n首先分析问题。因此是分组密码。\n</think>\n\nAES 是分组密码。<|im_end|>")
    assert aes["labels"].count("<think>") == 1  # no empty think block added to a sample that carries reasoning
    assert "什么是AES？" in aes["prompt"] and "<think>" not in aes["prompt"]
    sm3 = by_answer["SM3 是国密哈希算法。"]
    assert "你是密码学助手" in sm3["prompt"] and sm3["labels"].count("<think>\n先回忆国密标准。所以是哈希。\n</think>") == 1


@pytest.mark.parametrize("template", ["qwen3_nothink", "qwen"])
def test_plain_templates_keep_text_as_is(built, tiny_qwen3, tmp_path, template):
    rows = lf_encode(tiny_qwen3, built["sharegpt"], "c_train", template, tmp_path)
    labels = sorted(r["labels"] for r in rows)
    assert any(lab.startswith("<think>\n首先分析问题。") for lab in labels)
    assert not any(lab.startswith("<think>\n\n</think>") for lab in labels)  # no empty block injected
    if template == "qwen":
        assert all("You are Qwen" in r["prompt"] or "你是密码学助手" in r["prompt"] for r in rows)


def test_multi_turn_history_is_masked_with_mask_history(built, tiny_qwen3, tmp_path):
    rows = lf_encode(tiny_qwen3, built["sharegpt"], "c_train", "qwen3", tmp_path, mask_history=True)
    ecc = next(r for r in rows if "椭圆曲线离散对数问题" in r["labels"])
    assert "大整数分解" in ecc["prompt"] and "大整数分解" not in ecc["labels"]


def test_plain_mode_drops_or_shows_reasoning(tmp_path, tiny_qwen3):
    src = tmp_path / "chats.jsonl"
    src.write_text(json.dumps(ROWS[0], ensure_ascii=False) + "\n", encoding="utf-8")
    for choice, expected in [("drop", "AES 是分组密码。<|im_end|>"), ("text", "思考过程：\n首先分析问题。")]:
        folder = tmp_path / choice
        assert main(["openai", str(src), "--name", "p", "--out", str(folder), "--split", "100/0/0",
                     "--template-mode", "plain", "--plain-reasoning", choice, "--quiet"]) == 0
        (row,) = lf_encode(tiny_qwen3, folder, "p_train", "qwen", tmp_path)
        assert row["labels"].startswith(expected) and "<think>" not in row["labels"]


@pytest.fixture(scope="module")
def crypto(tmp_path_factory):
    """The shipped markdown corpus built twice: for a thinking model, and in plain mode with reasoning as text."""
    from pathlib import Path

    corpus = Path(__file__).resolve().parents[1] / "examples" / "crypto_notes"
    root = tmp_path_factory.mktemp("crypto")
    assert main(["markdown", str(corpus), "--name", "c", "--out", str(root / "think"), "--split", "100/0/0",
                 "--model", "qwen3-4b-thinking", "--require-reasoning", "--quiet"]) == 0
    assert main(["markdown", str(corpus), "--name", "c", "--out", str(root / "plain"), "--split", "100/0/0",
                 "--model", "qwen2.5-1.5b-instruct", "--plain-reasoning", "text", "--quiet"]) == 0
    return root


def test_markdown_thinking_samples_train_one_think_block_then_the_answer(crypto, tiny_qwen3, tmp_path):
    rows = lf_encode(tiny_qwen3, crypto / "think", "c_train", "qwen3", tmp_path, cutoff_len=8192)
    assert len(rows) >= 30
    for r in rows:
        labels = r["labels"]
        assert labels.startswith("<think>\n") and labels.count("<think>") == 1 and labels.count("</think>") == 1
        reasoning, answer = labels.split("\n</think>\n\n")
        assert reasoning.strip() != "<think>" and answer.strip().endswith("<|im_end|>")
        assert len(answer.replace("<|im_end|>", "").strip()) > 0
        assert "<thinking>" not in labels and "<think>" not in r["prompt"]


@pytest.mark.parametrize("template", ["qwen3_nothink", "qwen"])
def test_markdown_plain_mode_keeps_reasoning_as_visible_text(crypto, tiny_qwen3, tmp_path, template):
    rows = lf_encode(tiny_qwen3, crypto / "plain", "c_train", template, tmp_path, cutoff_len=8192)
    assert rows and not any("<think>" in r["labels"] for r in rows)
    assert sum("思考过程：" in r["labels"] for r in rows) >= 30  # reasoning shown as a labelled paragraph
