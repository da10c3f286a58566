"""Encode a generated dataset with LLaMA-Factory's own loader, in-process, and return prompts and labels.

No mocks: LF's get_train_args, load_tokenizer, template and get_dataset do the work, as in training.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("DISABLE_VERSION_CHECK", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def lf_encode(model: Path, dataset_dir: Path, dataset: str, template: str, tmp: Path, **extra) -> list[dict]:
    """Rows as LF trains them: ``{"prompt": decoded masked part, "labels": decoded labelled part, "length": number of
    input ids, "label_ids": the labelled ids}``."""
    from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
    from llamafactory.hparams import get_train_args
    from llamafactory.model import load_tokenizer

    args = dict(model_name_or_path=str(model), stage="sft", do_train=True, finetuning_type="lora", dataset=dataset,
                dataset_dir=str(dataset_dir), template=template, cutoff_len=1024, output_dir=str(tmp / "out"),
                overwrite_cache=True, report_to="none")
    args.update(extra)
    model_args, data_args, training_args, _, _ = get_train_args(args)
    tokenizer_module = load_tokenizer(model_args)
    tok = tokenizer_module["tokenizer"]
    tpl = get_template_and_fix_tokenizer(tok, data_args)
    data = get_dataset(tpl, model_args, data_args, training_args, stage="sft", **tokenizer_module)["train_dataset"]
    out = []
    for ex in data:
        ids, labels = ex["input_ids"], ex["labels"]
        prompt = [i for i, lab in zip(ids, labels, strict=True) if lab == -100]
        label_ids = [x for x in labels if x != -100]
        out.append({"prompt": tok.decode(prompt), "labels": tok.decode(label_ids), "length": len(ids),
                    "label_ids": label_ids})
    return out
