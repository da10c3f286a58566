"""Perplexity on a test split with LF's own template and label mask, the adapter kept unmerged (peft).

Rows are encoded by LF's ``SupervisedDatasetProcessor`` (cutoff, truncation, history and masking as in training),
so the number is the exponent of the same loss LF's ``eval_loss`` averages — but weighted by tokens over the corpus.
"""

from __future__ import annotations

import math
from pathlib import Path

from ..errors import UsageError

DEFINITIONS = {
    "perplexity": "token-weighted corpus perplexity: exp(Σ NLL over all label tokens / number of label tokens); "
                  "labels = LF SupervisedDatasetProcessor labels (prompt masked, train_on_prompt=false)",
    "perplexity_geomean": "per-sample geometric mean: exp(mean over samples of (sample NLL / sample label tokens))",
}


def read_split(dataset_dir: Path, name: str) -> list[list[dict]]:
    """Rows of dataset entry ``name`` as LF messages (the shared reader: alpaca system and history included)."""
    from ..endpoint.predict import entry_rows

    return [row["messages"] for row in entry_rows(dataset_dir, name)[1]]


def encode(rows: list[list[dict]], tokenizer, template: str, cutoff_len: int, enable_thinking: bool = True):
    """(input_ids, labels) per row, by LF's SupervisedDatasetProcessor."""
    from llamafactory.data import get_template_and_fix_tokenizer
    from llamafactory.data.processor import SupervisedDatasetProcessor
    from llamafactory.hparams import DataArguments

    args = DataArguments(template=template, cutoff_len=cutoff_len, enable_thinking=enable_thinking)
    proc = SupervisedDatasetProcessor(template=get_template_and_fix_tokenizer(tokenizer, args),
                                      tokenizer=tokenizer, processor=None, data_args=args)
    out = []
    for msgs in rows:
        system = msgs[0]["content"] if msgs and msgs[0]["role"] == "system" else None
        turns = msgs[1:] if system is not None else msgs
        out.append(proc._encode_data_example(turns[:-1], turns[-1:], system, None, [], [], []))
    return out


def load_model(model_path: str, adapter: str | None = None):
    """(model, tokenizer) in float32 on CPU (GPU if present), the adapter attached unmerged."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).to(device)
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)  # unmerged: LoRA runs beside the frozen weights
    return model.eval(), AutoTokenizer.from_pretrained(adapter or model_path)


def sample_nll(model, encoded) -> list[tuple[float, int]]:
    """(summed NLL, label tokens) per sample; one sample per forward, so no padding enters the numbers."""
    import torch

    out = []
    device = next(model.parameters()).device
    with torch.no_grad():
        for ids, labels in encoded:
            x = torch.tensor([ids], device=device)
            y = torch.tensor([labels[1:]], device=device)  # position t predicts token t+1
            logits = model(input_ids=x).logits[:, :-1].float()
            nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), y, ignore_index=-100, reduction="sum")
            out.append((float(nll), int((y != -100).sum())))
    return out


def perplexity(nlls: list[tuple[float, int]]) -> dict:
    """Corpus and geometric-mean perplexity from per-sample (NLL, tokens); samples without labels are skipped."""
    kept = [(s, n) for s, n in nlls if n]
    if not kept:
        raise UsageError("no label tokens: is cutoff_len shorter than every prompt?")
    corpus = math.exp(sum(s for s, _ in kept) / sum(n for _, n in kept))
    geo = math.exp(sum(s / n for s, n in kept) / len(kept))
    return {"perplexity": corpus, "perplexity_geomean": geo, "samples": len(kept),
            "tokens": sum(n for _, n in kept), "per_sample": [math.exp(s / n) for s, n in kept]}
