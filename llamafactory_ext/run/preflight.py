"""Pre-flight (RUN flow: recipe → probe() facts → **check() pure** → summary → launch).

`probe` is the only edge: package versions (importlib.metadata, no imports), GPUs (NVML, no torch), the model
folder, the dataset files and their entry counts, LF's template names (read from its source, no import), the
output dir's state and free disk. `check` is pure: LF args + Facts → problems, each with the key and the fix.
Nothing here loads a model or imports torch.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from importlib import metadata, util
from pathlib import Path
from typing import Any

LF_VERSION = "0.9.5"  # the stack this package is pinned to; other versions change argument rules and logs
CORE = ("llamafactory", "torch", "transformers", "peft", "datasets", "accelerate")
DISK_MARGIN = 1.2  # 20% over the checkpoint estimate: optimizer/RNG/scheduler files and the final save
LOCK = ".lfx_run.lock"


@dataclass(frozen=True)
class Problem:
    key: str
    reason: str
    fix: str

    def render(self) -> str:
        return f"{self.key}: {self.reason} — {self.fix}"


@dataclass
class Dataset:
    name: str
    in_info: bool
    file: str | None = None
    exists: bool = False
    rows: int | None = None
    error: str | None = None


@dataclass
class Facts:
    versions: dict[str, str | None]
    gpus: list[dict[str, Any]]  # [{name, total, free}] in bytes
    model_dir: bool
    model_config: bool
    model_bytes: int
    info_path: str
    info_exists: bool
    datasets: list[Dataset]
    templates: frozenset[str]
    output_exists: bool
    output_entries: list[str]
    checkpoints: list[int]
    writable: str | None  # None when writable, else why not
    free_bytes: int
    lock_pid: int | None = None
    previous: dict[str, Any] = field(default_factory=dict)  # model/dataset of the run already in output_dir
    memory_estimate_gib: float | None = None
    deepspeed_stage: int | None = None


# ---- probe (the edge) -------------------------------------------------------------------------------------------


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def probe_gpus() -> list[dict[str, Any]]:
    """Visible GPUs through NVML; [] when there is no NVIDIA driver or CUDA_VISIBLE_DEVICES hides them all."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and not visible.strip():
        return []
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # no driver or no nvidia-ml-py: a CPU machine as far as we can tell
        return []
    ids = [int(i) for i in visible.split(",") if i.strip().isdigit()] if visible else \
        list(range(pynvml.nvmlDeviceGetCount()))
    rows = []
    for i in ids:
        handle = pynvml.nvmlDeviceGetHandleByIndex(i)
        mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
        rows.append({"name": str(pynvml.nvmlDeviceGetName(handle)), "total": mem.total, "free": mem.free})
    return rows


def lf_templates() -> frozenset[str]:
    """Template names registered by LF's data/template.py, read from the source (importing it pulls in torch)."""
    spec = util.find_spec("llamafactory")
    if spec is None or not spec.submodule_search_locations:
        return frozenset()
    source = Path(spec.submodule_search_locations[0], "data", "template.py").read_text(encoding="utf-8")
    return frozenset(re.findall(r'register_template\(\s*name="([^"]+)"', source))


def _rows(path: Path) -> int:
    if path.is_dir():
        return sum(_rows(p) for p in path.iterdir() if p.suffix in (".json", ".jsonl"))
    if path.suffix == ".jsonl":
        with path.open(encoding="utf-8") as fh:
            return sum(1 for line in fh if line.strip())
    data = json.loads(path.read_text(encoding="utf-8"))
    return len(data) if isinstance(data, list) else 1


def _names(value: Any) -> list[str]:
    if not value:
        return []
    return [n.strip() for n in (value.split(",") if isinstance(value, str) else value) if n.strip()]


def probe_datasets(args: dict[str, Any], workdir: Path) -> tuple[Path, bool, list[Dataset]]:
    root = workdir / str(args.get("dataset_dir", "data"))
    info_path = root / "dataset_info.json"
    info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.is_file() else {}
    found = []
    for name in _names(args.get("dataset")) + _names(args.get("eval_dataset")):
        entry = info.get(name)
        item = Dataset(name, entry is not None)
        if entry and entry.get("file_name"):
            path = root / entry["file_name"]
            item.file, item.exists = str(path), path.exists()
            if item.exists:
                try:
                    item.rows = _rows(path)
                except (OSError, ValueError) as exc:
                    item.error = f"{type(exc).__name__}: {exc}"
        found.append(item)
    return info_path, info_path.is_file(), found


def _writable(path: Path) -> tuple[str | None, Path]:
    """None if `path` (or the folder it will be created in) accepts files; else why not. Also that folder."""
    probe_at = path
    while not probe_at.exists() and probe_at != probe_at.parent:
        probe_at = probe_at.parent
    if not probe_at.is_dir():
        return f"{probe_at} is a file, not a folder", probe_at.parent
    try:
        with tempfile.TemporaryFile(dir=probe_at):
            pass
    except OSError as exc:
        return f"cannot create files in {probe_at} ({exc.strerror or exc})", probe_at
    return None, probe_at


def _lock_pid(out: Path) -> int | None:
    try:
        pid = int((out / LOCK).read_text().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def _previous(out: Path) -> dict[str, Any]:
    """Model and dataset of the run already in `out`: our run record, else the adapter's base model."""
    with contextlib.suppress(OSError, ValueError, KeyError):
        args = json.loads((out / "run_record.json").read_text(encoding="utf-8"))["args"]
        return {k: args.get(k) for k in ("model_name_or_path", "dataset", "stage", "finetuning_type")}
    with contextlib.suppress(OSError, ValueError, KeyError):
        cfg = json.loads((out / "adapter_config.json").read_text(encoding="utf-8"))
        return {"model_name_or_path": cfg["base_model_name_or_path"]}
    return {}


def _zero_stage(args: dict[str, Any], workdir: Path) -> int | None:
    if not args.get("deepspeed"):
        return None
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        cfg = json.loads((workdir / str(args["deepspeed"])).read_text(encoding="utf-8"))
        return int(cfg["zero_optimization"]["stage"])
    return None


def memory_note(recipe_text: str) -> float | None:
    """The planner's estimate from the recipe header: `# note: memory: ~19.8 GiB needed …`."""
    m = re.search(r"^#.*memory: ~([\d.]+) GiB needed", recipe_text, re.MULTILINE)
    return float(m.group(1)) if m else None


def probe(args: dict[str, Any], workdir: Path, recipe_text: str = "") -> Facts:
    model = Path(str(args.get("model_name_or_path", ""))).expanduser()
    out = workdir / str(args.get("output_dir", ""))
    info_path, info_exists, datasets = probe_datasets(args, workdir)
    writable, existing = _writable(out)
    entries = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    return Facts(
        versions={n: _version(n) for n in (*CORE, "liger-kernel", "bitsandbytes", "deepspeed", "jieba", "nltk",
                                            "rouge-chinese", "nvidia-ml-py", "matplotlib")},
        gpus=probe_gpus(), model_dir=model.is_dir(), model_config=(model / "config.json").is_file(),
        model_bytes=sum(p.stat().st_size for p in model.glob("*") if p.suffix in (".safetensors", ".bin"))
        if model.is_dir() else 0,
        info_path=str(info_path), info_exists=info_exists, datasets=datasets, templates=lf_templates(),
        output_exists=out.is_dir(), output_entries=entries,
        checkpoints=sorted(int(n.split("-")[1]) for n in entries if re.fullmatch(r"checkpoint-\d+", n)),
        writable=writable, free_bytes=shutil.disk_usage(existing if existing.is_dir() else existing.parent).free,
        lock_pid=_lock_pid(out), previous=_previous(out), memory_estimate_gib=memory_note(recipe_text),
        deepspeed_stage=_zero_stage(args, workdir))
