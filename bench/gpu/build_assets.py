"""Build the GPU benchmark assets in DIR (default /tmp/lfbench). Adapted from the measuring kit in shared/gpu
(lf_build.py) so the project's bench is self-contained; same seeds, so the data match the calibration table.
  DIR/model  - random-weight model shaped like Qwen/Qwen3-4B-Thinking-2507 (bf16) + a byte-level BPE
               tokenizer trained here on synthetic Chinese text
  DIR/data   - synthetic sharegpt dataset `syn_zh` (2000 samples, lognormal token lengths, ~35% with <think>)
Usage: python3 lf_build.py [DIR] [--tiny]   (--tiny: 2-layer model for a CPU smoke test)
Deterministic (fixed seeds), so every call builds the same data.
"""
import json, os, random, sys, time

import numpy as np

DIR = next((a for a in sys.argv[1:] if not a.startswith("--")), "/tmp/lfbench")
TINY = "--tiny" in sys.argv
N_SAMPLES, MEDIAN_TOK, SIGMA, MAX_TOK, MIN_TOK = 2000, 250, 0.8, 1950, 24
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]
rng = random.Random(1234)

# ---- synthetic Chinese: Zipf-distributed pseudo-words over common CJK code points ----
chars = [chr(c) for c in range(0x4E00, 0x4E00 + 3500)]
words = ["".join(rng.choice(chars) for _ in range(rng.choice([1, 2, 2, 2, 3, 4]))) for _ in range(12000)]
words += ["Python", "API", "GPU", "LoRA", "SFT", "2024", "3.14", "JSON", "HTTP", "Linux"]
zipf = np.array([1.0 / (i + 1) ** 1.05 for i in range(len(words))])
cum = np.cumsum(zipf / zipf.sum())
nprng = np.random.default_rng(1234)


def sentence():
    idx = np.searchsorted(cum, nprng.random(rng.randint(4, 18)))
    body = "".join(words[min(i, len(words) - 1)] for i in idx)
    return body + rng.choice(["。", "。", "，", "？", "！", "；"])


def text(n_chars):
    out, n = [], 0
    while n < n_chars:
        s = sentence()
        if rng.random() < 0.08:
            s = f"\n{rng.randint(1, 9)}. " + s
        elif rng.random() < 0.05:
            s += "\n\n"
        out.append(s)
        n += len(s)
    return "".join(out)[: max(n_chars, 1)]


os.makedirs(f"{DIR}/model", exist_ok=True)
os.makedirs(f"{DIR}/data", exist_ok=True)
t0 = time.time()

# ---- tokenizer: byte-level BPE trained on the synthetic corpus ----
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

tok = Tokenizer(models.BPE(unk_token=None))
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tok.decoder = decoders.ByteLevel()
trainer = trainers.BpeTrainer(vocab_size=32000, special_tokens=SPECIAL, show_progress=False,
                              initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
tok.train_from_iterator((text(400) for _ in range(6000)), trainer)
hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                 additional_special_tokens=["<|im_start|>", "<|im_end|>"])
hf_tok.chat_template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
                        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
hf_tok.save_pretrained(f"{DIR}/model")
probe = text(20000)
chars_per_tok = len(probe) / len(hf_tok(probe)["input_ids"])
print(f"tokenizer: vocab {len(hf_tok)}, {chars_per_tok:.2f} chars/token, {time.time() - t0:.1f}s", flush=True)

# ---- dataset: total length ~ lognormal(median 250 tok), split prompt/response, some <think> ----
ntok = lambda s: len(hf_tok(s)["input_ids"])
rows, lengths = [], []
for i in range(N_SAMPLES):
    total = int(min(MAX_TOK, max(MIN_TOK, nprng.lognormal(np.log(MEDIAN_TOK), SIGMA))))
    p_tok = max(8, int(total * rng.uniform(0.1, 0.4)))
    r_tok = max(8, total - p_tok)
    prompt = rng.choice(["请解释", "请帮我分析", "如何理解", "总结一下", "写一段关于"]) + text(int(p_tok * chars_per_tok))
    if rng.random() < 0.35:  # reasoning sample: 60% of the answer budget goes into <think>
        th = int(r_tok * 0.6)
        answer = f"<think>\n{text(int(th * chars_per_tok))}\n</think>\n\n{text(int((r_tok - th) * chars_per_tok))}"
    else:
        answer = text(int(r_tok * chars_per_tok))
    conv = [{"from": "human", "value": prompt}, {"from": "gpt", "value": answer}]
    rows.append({"conversations": conv})
    lengths.append(ntok(prompt) + ntok(answer) + 10)  # +10: chat template tokens
json.dump(rows, open(f"{DIR}/data/syn_zh.json", "w"), ensure_ascii=False)
json.dump({"syn_zh": {"file_name": "syn_zh.json", "formatting": "sharegpt", "columns": {"messages": "conversations"}}},
          open(f"{DIR}/data/dataset_info.json", "w"))
L = np.array(lengths)
stats = {k: float(v) for k, v in dict(n=len(L), mean=L.mean(), median=np.median(L), p90=np.percentile(L, 90),
                                       p99=np.percentile(L, 99), max=L.max(), total=L.sum()).items()}
json.dump(stats, open(f"{DIR}/data/length_stats.json", "w"))
print("dataset token lengths (approx, incl. template):", {k: round(v) for k, v in stats.items()}, flush=True)

if "--tokenizer-and-data" in sys.argv:  # calib_ext.sh builds its own model shapes
    sys.exit(0)
# ---- model: Qwen3-4B-Thinking-2507 shape, random init, bf16 ----
import torch
from transformers import Qwen3Config, Qwen3ForCausalLM

shape = dict(hidden_size=2560, intermediate_size=9728, num_hidden_layers=36, num_attention_heads=32,
             num_key_value_heads=8, head_dim=128)
if TINY:
    shape = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=16)
cfg = Qwen3Config(vocab_size=151936, tie_word_embeddings=True, rms_norm_eps=1e-6, rope_theta=5000000,
                  max_position_embeddings=262144, max_window_layers=shape["num_hidden_layers"],
                  bos_token_id=hf_tok.pad_token_id, eos_token_id=hf_tok.eos_token_id,
                  pad_token_id=hf_tok.pad_token_id, **shape)
torch.manual_seed(0)
dev = "cuda" if torch.cuda.is_available() else "cpu"
torch.set_default_dtype(torch.bfloat16)
with torch.device(dev):
    model = Qwen3ForCausalLM(cfg)
torch.set_default_dtype(torch.float32)
model.config.dtype = torch.bfloat16
n_all = sum(p.numel() for p in model.parameters())
n_emb = model.get_input_embeddings().weight.numel()
model.save_pretrained(f"{DIR}/model", max_shard_size="4GB")
json.dump({"params_total": n_all, "params_embedding": n_emb, "params_non_embedding": n_all - n_emb},
          open(f"{DIR}/model/param_counts.json", "w"))
print(f"model: {n_all / 1e9:.3f}B params ({(n_all - n_emb) / 1e9:.3f}B non-embedding), "
      f"built on {dev} and saved in {time.time() - t0:.1f}s total", flush=True)
