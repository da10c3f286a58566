"""Test helpers for the run supervisor: a tiny alpaca dataset and a small train recipe, written into tmp.

Nothing here touches the working tree's recipes/ or dataset_info/.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

import yaml
from conftest import LF_ENV
from tiny_models import CORPUS

LINES = [line for line in CORPUS.splitlines() if line.strip()]


def rows(count: int, repeat: int = 1) -> list[dict[str, str]]:
    """Alpaca rows from the tiny corpus; `repeat` makes each answer that many corpus lines long."""
    return [{"instruction": LINES[i % len(LINES)], "input": "",
             "output": "".join(LINES[(i + k) % len(LINES)] for k in range(repeat))} for i in range(count)]


def write_dataset(root: Path, name: str = "tiny", data: list[dict] | None = None, file: str = "tiny.json") -> Path:
    """`root/dataset_info.json` naming `name` + `root/<file>` (16 short rows unless `data`); returns root."""
    root.mkdir(parents=True, exist_ok=True)
    (root / file).write_text(json.dumps(rows(16) if data is None else data, ensure_ascii=False), encoding="utf-8")
    info = {name: {"file_name": file}}
    (root / "dataset_info.json").write_text(json.dumps(info, ensure_ascii=True), encoding="utf-8")
    return root


def recipe_args(model: Path, data: Path, out: Path, **overrides: Any) -> dict[str, Any]:
    """A LoRA SFT recipe for the tiny model on CPU: a few steps, a checkpoint every 2 steps, resumable."""
    args: dict[str, Any] = {
        "model_name_or_path": str(model), "stage": "sft", "do_train": True, "finetuning_type": "lora",
        "lora_rank": 4, "lora_target": "all", "dataset": "tiny", "dataset_dir": str(data), "template": "qwen3",
        "cutoff_len": 128, "output_dir": str(out), "overwrite_output_dir": False, "logging_steps": 1,
        "save_steps": 2, "per_device_train_batch_size": 2, "gradient_accumulation_steps": 1,
        "learning_rate": 5.0e-4, "max_steps": 6, "report_to": "none", "bf16": False,
        "include_num_input_tokens_seen": True, "preprocessing_num_workers": None,
        "dataloader_num_workers": 0, "seed": 0,
    }
    args.update(overrides)
    return {k: v for k, v in args.items() if v is not None}


def write_recipe(path: Path, args: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(args, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def lf_env(cache: Path) -> dict[str, str]:
    return {**os.environ, **LF_ENV, "HF_DATASETS_CACHE": str(cache)}


def train_command(recipe: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "llamafactory_ext.train", str(recipe), *extra]


def run_train(recipe: Path, *extra: str, cache: Path, timeout: int = 600, **kw: Any) -> subprocess.CompletedProcess:
    """The supervisor CLI in a child process, CPU-only and offline, as a user would run it."""
    return subprocess.run(train_command(recipe, *extra), env=lf_env(cache), capture_output=True, text=True,
                          timeout=timeout, check=False, stdin=subprocess.DEVNULL, **kw)


def jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


class Lines:
    """A child's text output read on a thread as it comes: the pipe never fills up and blocks the child, and a test
    can wait for a line (a real event) instead of sleeping for a guessed time."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: list[str] = []
        self.closed = False
        self._seen = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            with self._seen:
                self.lines.append(line)
                self._seen.notify_all()
        with self._seen:
            self.closed = True
            self._seen.notify_all()

    def wait_for(self, text: str, timeout: float) -> bool:
        """True once a line containing `text` was printed; False when the output ended or `timeout` passed first."""
        def found() -> bool:
            return any(text in line for line in self.lines)

        with self._seen:
            self._seen.wait_for(lambda: self.closed or found(), timeout)
            return found()

    def text(self, timeout: float = 60) -> str:
        """Everything printed, once the output has closed (call after the child has exited)."""
        self._thread.join(timeout)
        with self._seen:
            return "".join(self.lines)
