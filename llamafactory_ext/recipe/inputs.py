"""Everything build_recipe reads or is told, checked before anything is written (the RECIPE flow's input edge).

Names and paths from the command line, the dataset's dataset_info.json entry and data files, the rows the GPTQ
calibration text is made from, and what already sits where the recipes point (an earlier run's checkpoints, an
earlier recipe file): every problem is a located message with the fix, never a traceback or a late LF failure.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from pathlib import Path

from ..errors import DataError, UsageError

SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,119}")  # file stems and dataset names: no separators, no dots first
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]")
MAX_EFFECTIVE_BATCH = 65536  # why: far beyond any LoRA SFT run; larger is a typo
MAX_ROW_BYTES = 64 * 2**20  # why: one JSONL row of 64 MB is not a training sample; refuse it before json.loads
FINAL_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin", "model.safetensors", "pytorch_model.bin")


def check_name(option: str, value: str) -> str:
    """A file stem or dataset name: letters, digits, '.', '_', '-'; never a path, never hidden."""
    if not SAFE_NAME.fullmatch(value or "") or ".." in value:
        raise UsageError(f"{option} {value!r}: use letters, digits, '.', '_' and '-' only (no '/', '..', spaces or "
                         f"control characters; at most 120), e.g. {option} qwen3_crypto_lora")
    return value


def check_path(option: str, value: str | Path | None) -> None:
    """A folder or model path option: no control characters (they would break YAML comments and shell lines)."""
    if value is not None and _CONTROL.search(str(value)):
        raise UsageError(f"{option} {str(value)!r}: contains a control character (newline, tab …); rename the "
                         "folder or pass another path")


def check_saves(value: str) -> None:
    """--saves is written into every recipe: a plain folder, relative to the launch folder or absolute, no '..'."""
    check_path("--saves", value)
    if not value.strip() or ".." in Path(value).parts or " " in value:
        raise UsageError(f"--saves {value!r}: give a folder without '..' or spaces (torchrun re-splits arguments on "
                         "spaces), e.g. --saves saves or --saves /data/saves")


def check_effective_batch(value: int | None) -> None:
    if value is not None and not 1 <= value <= MAX_EFFECTIVE_BATCH:
        raise UsageError(f"--effective-batch {value}: give 1 to {MAX_EFFECTIVE_BATCH} samples per optimizer step")


def check_vram(value: float | None) -> None:
    if value is not None and not (math.isfinite(value) and 1 <= value <= 1024):
        raise UsageError(f"--vram-gb {value}: give the GPU memory per card in GB, 1 to 1024 (e.g. --vram-gb 24)")


# ---- dataset_info entry and files --------------------------------------------------------------------------------


def dataset_files(folder: Path, name: str, splits: tuple[str, ...]) -> dict[str, Path]:
    """split → data file of ``name_<split>``, checked: the entry is in dataset_info.json and its file is readable."""
    from ..io import INFO_FILE, read_dataset_info

    info = read_dataset_info(folder)
    index = folder / INFO_FILE
    if not info:
        raise DataError(str(index), None, "missing or empty: LF finds datasets only through it",
                        f"build the dataset: python -m llamafactory_ext.build_dataset … --name {name} --out {folder}")
    return {split: _entry_file(folder, index, info, f"{name}_{split}") for split in splits}


def _entry_file(folder: Path, index: Path, info: dict, key: str) -> Path:
    entry = info.get(key)
    if not isinstance(entry, dict) or not isinstance(entry.get("file_name"), str):
        raise DataError(str(index), None, f"no entry '{key}' with a file_name",
                        "rebuild the dataset with build_dataset (it writes the entry and the file together)")
    path = folder / entry["file_name"]
    if not path.resolve().is_relative_to(folder.resolve()):
        raise DataError(str(index), None, f"entry '{key}' points outside the folder ({entry['file_name']})",
                        "keep data files inside the dataset folder (LF resolves them there)")
    if not path.is_file():
        raise DataError(str(path), None, f"the data file of entry '{key}' is missing",
                        "rebuild the dataset with build_dataset, or restore the file")
    try:
        with path.open("rb") as fh:
            fh.read(1)
    except OSError as exc:
        raise DataError(str(path), None, f"cannot be read ({exc.strerror})", "fix its permissions") from None
    return path


def row_texts(path: Path) -> Iterator[str]:
    """Visible text of every row of a JSONL data file (calibration input), each row validated with its line."""
    from .calibration import row_text

    with path.open("rb") as fh:
        for number, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            row = _row(path, number, raw)
            try:
                yield row_text(row)
            except (TypeError, AttributeError, ValueError):
                raise DataError(str(path), number, "row has the wrong shape (text fields must be strings, messages "
                                "a list of {role, content} objects)", "rebuild the dataset with build_dataset") from None


def _row(path: Path, number: int, raw: bytes) -> dict:
    fix = "rebuild the dataset with build_dataset, or fix this line"
    if len(raw) > MAX_ROW_BYTES:
        raise DataError(str(path), number, f"row of {len(raw) / 2**20:.0f} MB", fix)
    try:
        row = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise DataError(str(path), number, f"not UTF-8 ({exc.reason})", fix) from None
    except json.JSONDecodeError as exc:
        raise DataError(str(path), number, f"not JSON ({exc.msg}, column {exc.colno})", fix) from None
    except RecursionError:
        raise DataError(str(path), number, "JSON nested too deeply", fix) from None
    if not isinstance(row, dict):
        raise DataError(str(path), number, f"row is a {type(row).__name__}, not an object", fix)
    _check_strings(path, number, row)
    return row


def _check_strings(path: Path, number: int, row: dict) -> None:
    messages = row.get("messages")
    if messages is not None:
        ok = isinstance(messages, list) and all(isinstance(m, dict) and isinstance(m.get("content", ""), str)
                                                for m in messages)
    else:
        ok = all(isinstance(row.get(k, ""), str) for k in ("instruction", "input", "output"))
        history = row.get("history", [])
        ok = ok and isinstance(history, list) and all(
            isinstance(p, list) and all(isinstance(x, str) for x in p) for p in history)
    if not ok:
        raise DataError(str(path), number, "row has the wrong shape (text fields must be strings, messages a list of "
                        "{role, content} objects)", "rebuild the dataset with build_dataset")


# ---- what already sits where the recipes point -------------------------------------------------------------------


def _step(path: Path) -> int:
    tail = path.name.rpartition("-")[2]
    return int(tail) if tail.isdigit() else -1


def last_checkpoint(output_dir: Path) -> Path | None:
    found = [p for p in output_dir.glob("checkpoint-*") if p.is_dir() and _step(p) >= 0]
    return max(found, key=_step) if found else None


def run_conflict(output_dir: Path, model_path: str, rank: int) -> str | None:
    """Why ``output_dir`` holds another run (LF would resume it or stop), or None (absent, empty, or this run)."""
    if not output_dir.is_dir():
        return None
    last = last_checkpoint(output_dir)
    if last is None:
        if any((output_dir / n).exists() for n in FINAL_WEIGHTS):
            return "holds a finished run (final weights, no checkpoint): LF would stop with 'Output directory " \
                   "already exists and is not empty'"
        return None
    try:
        cfg = json.loads((last / "adapter_config.json").read_text(encoding="utf-8"))
        base, r = cfg.get("base_model_name_or_path"), cfg.get("r")
    except (OSError, ValueError, AttributeError, RecursionError):
        return f"holds {last.name}, whose adapter_config.json cannot be read: LF would try to resume from it"
    if base != model_path or r != rank:
        return (f"holds {last.name} of another run (base {base}, LoRA rank {r}; this plan: {model_path}, rank "
                f"{rank}): LF would resume from it")
    return None


def recipe_conflict(path: Path, dataset: str) -> str | None:
    """Why the train recipe file at ``path`` belongs to another dataset's run, or None."""
    if not path.exists():
        return None
    import yaml

    try:
        old = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError, yaml.YAMLError) as exc:
        return f"exists and cannot be read as a recipe ({type(exc).__name__})"
    if not isinstance(old, dict):
        return "exists and is not a recipe"
    if old.get("dataset") not in (None, f"{dataset}_train"):
        return f"holds the recipe for dataset {old.get('dataset')!r}"
    return None
