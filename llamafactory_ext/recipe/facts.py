"""What the planner needs to know about a dataset, read from build_dataset's manifest (the RECIPE flow's data edge)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError, UsageError


@dataclass(frozen=True)
class DataFacts:
    """Counts and lengths of one built dataset (``name`` → entries name_train / name_val / name_test)."""

    name: str
    train: int
    val: int = 0
    test: int = 0
    tokens_p50: int = 256
    tokens_p99: int = 1024
    tokens_max: int = 2048
    answer_tokens_p99: int = 1024  # assistant output (reasoning + answer) p99: sizes predict/chat max_new_tokens
    token_counter: str = "estimate"  # which counter produced the lengths: "tokenizer:<path>", "qwen-bpe", "estimate"
    with_reasoning: float = 0.0  # share of train samples with reasoning, 0..1
    multi_turn: bool = False

    @property
    def eval_split(self) -> str | None:
        return "test" if self.test else ("val" if self.val else None)


def read_facts(dataset_dir: Path, name: str) -> DataFacts:
    """Facts from ``<dataset_dir>/<name>.manifest.json``; a clear error when the dataset was not built."""
    path = dataset_dir / f"{name}.manifest.json"
    if not path.is_file():
        raise UsageError(f"{path}: no such manifest — build the dataset first: "
                         f"python -m llamafactory_ext.build_dataset markdown YOUR_NOTES --name {name} --out {dataset_dir}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        splits = manifest["splits"]
    except (json.JSONDecodeError, KeyError) as exc:
        raise DataError(str(path), None, f"not a build_dataset manifest ({exc})", "rebuild the dataset") from None
    return facts_from_splits(name, splits, manifest.get("reasoning_mode", "think"))


def facts_from_splits(name: str, splits: dict, reasoning_mode: str = "think") -> DataFacts:
    """Pure core of read_facts: the manifest's ``splits`` statistics → DataFacts.

    Reasoning counts only when it was written as <think> blocks (a plain-mode build dropped it or made it text)."""
    train = splits.get("train", {})
    n = train.get("samples", 0)
    if not n:
        raise UsageError(f"dataset '{name}' has no training samples — rebuild it with a train share above 0")
    tokens = train.get("tokens_est", {})
    return DataFacts(
        name=name, train=n, val=splits.get("val", {}).get("samples", 0), test=splits.get("test", {}).get("samples", 0),
        tokens_p50=tokens.get("p50", 256), tokens_p99=tokens.get("p99", 1024), tokens_max=tokens.get("max", 2048),
        with_reasoning=train.get("with_reasoning", 0) / n if reasoning_mode == "think" else 0.0, multi_turn=train.get("kinds", {}).get("chat", 0) > 0,
    )
