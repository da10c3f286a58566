"""What LLaMA-Factory accepts, decided by LLaMA-Factory: generated entries load with LF's own loader and the
label masks are right for qwen3 / qwen3_nothink / qwen (tiny local tokenizers, no downloads); with Qwen3's real
vocabulary, our token counts are LF's row lengths and the planned cutoff truncates no row it says fits."""

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


def test_markdown_thinking_samples_train_one_think_block_then_the_answer(crypto, tiny_qwen3_real, tmp_path):
    rows = lf_encode(tiny_qwen3_real, crypto / "think", "c_train", "qwen3", tmp_path, cutoff_len=8192)
    assert len(rows) >= 30
    for r in rows:  # Qwen3's real ids: labels open with <think> (151667) and close with <|im_end|> (151645) \n
        assert r["label_ids"][0] == 151667 and r["label_ids"].count(151668) == 1 and r["label_ids"][-2:] == [151645, 198]
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


# --- Real Qwen3 vocabulary: token counts, cutoff and truncation as LF really builds them ---------------------------

SPLITS = ("crypto_train", "crypto_val", "crypto_test")


@pytest.fixture()
def shipped(tmp_path):
    """The shipped example dataset, copied (tests never write to the working tree's dataset_info/)."""
    import shutil
    from pathlib import Path

    src = Path(__file__).resolve().parents[1] / "dataset_info"
    folder = tmp_path / "data"
    folder.mkdir()
    for f in [*src.glob("crypto*"), src / "dataset_info.json"]:
        shutil.copy(f, folder / f.name)
    return folder


def _planned(folder, model):
    from llamafactory_ext.recipe.facts import read_facts
    from llamafactory_ext.recipe.hardware import describe
    from llamafactory_ext.recipe.models import get_preset
    from llamafactory_ext.recipe.plan import plan
    from llamafactory_ext.tokens import counter_for

    preset = get_preset("qwen3-4b-thinking")
    counter = counter_for(model)
    facts = read_facts(folder, "crypto", counter, preset.template)
    return counter, facts, plan(preset, preset.hub_id, facts, describe("1x24GB")).train.value("cutoff_len")


def _counted(folder, counter) -> list[int]:
    from llamafactory_ext.recipe.facts import read_rows, row_tokens

    return [row_tokens(row, counter, "qwen3")[0] for split in SPLITS for row in read_rows(folder, split)]


def test_real_vocab_lf_truncates_none_of_the_shipped_rows_the_plan_says_fit(shipped, tiny_qwen3_real, tmp_path):
    counter, facts, cutoff = _planned(shipped, tiny_qwen3_real)
    assert facts.token_counter == f"tokenizer:{tiny_qwen3_real}" and cutoff >= facts.tokens_p99
    counted = _counted(shipped, counter)
    rows = lf_encode(tiny_qwen3_real, shipped, ",".join(SPLITS), "qwen3", tmp_path, cutoff_len=cutoff)
    assert sorted(r["length"] for r in rows) == sorted(counted)  # our counts are LF's own row lengths
    fit = [r for r in rows if r["length"] <= cutoff]
    assert len(fit) == sum(n <= cutoff for n in counted) >= 0.99 * len(rows)
    for r in fit:  # not truncated: one think block, the answer and its end-of-turn token, with real ids
        assert r["label_ids"][:2] == [151667, 198] and 151668 in r["label_ids"]  # <think> \n … </think>
        assert r["label_ids"][-2:] == [151645, 198] and r["prompt"].endswith("<|im_start|>assistant\n")


def test_real_vocab_counts_predict_which_rows_lf_truncates(shipped, tiny_qwen3_real, tmp_path):
    counter, facts, _ = _planned(shipped, tiny_qwen3_real)
    cutoff = facts.tokens_p50  # about half the rows fit
    counted = sorted(_counted(shipped, counter)[:facts.train])
    rows = lf_encode(tiny_qwen3_real, shipped, "crypto_train", "qwen3", tmp_path, cutoff_len=cutoff)
    intact = sorted(r["length"] for r in rows if r["label_ids"][-2:] == [151645, 198])  # answer + <|im_end|>\n kept
    assert intact == [n for n in counted if n <= cutoff]  # exactly the rows the counts say fit, at their counted length
    assert 0 < len(intact) < len(rows) and max(r["length"] for r in rows) <= cutoff  # the rest were cut by LF
