"""Hardware as data: probe() asks this machine (the only place that does), describe() parses what the user says.

RECIPE flow: probe() / describe() → Hardware → plan.py and memory.py, which never touch a GPU.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..errors import UsageError

_BF16_CC = (8, 0)  # bf16 tensor cores arrived with Ampere (sm_80)


class Gpu(BaseModel):
    """One kind of card; ``count`` of them per node. ``bf16`` defaults from the compute capability."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    vram_gib: float = Field(gt=0)
    compute_capability: tuple[int, int]
    bf16: bool
    count: int = Field(default=1, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _bf16_from_capability(cls, data):
        if isinstance(data, dict) and "bf16" not in data and "compute_capability" in data:
            data = {**data, "bf16": tuple(data["compute_capability"]) >= _BF16_CC}
        return data


class Hardware(BaseModel):
    """GPUs per node × nodes. ``gpu`` None (and gpus 0) means CPU only. ``notes`` lists every assumption made."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gpus: int = Field(ge=0)
    gpu: Gpu | None
    nodes: int = Field(default=1, ge=1)
    source: Literal["probe", "described"]
    notes: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> Hardware:
        if (self.gpu is None) != (self.gpus == 0):
            raise ValueError("gpus must be 0 exactly when gpu is None (CPU only)")
        if self.gpu is not None and self.gpu.count != self.gpus:
            raise ValueError(f"gpu.count {self.gpu.count} differs from gpus {self.gpus}")
        return self

    @property
    def has_gpu(self) -> bool:
        return self.gpu is not None

    @property
    def supports_bf16(self) -> bool:
        return self.gpu is not None and self.gpu.bf16

    @property
    def world_size(self) -> int:
        """Training processes torchrun starts: one per GPU on every node."""
        return self.gpus * self.nodes

    @property
    def total_vram_gib(self) -> float:
        return self.gpu.vram_gib * self.world_size if self.gpu else 0.0


# ---- known cards -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Card:
    name: str
    sizes: tuple[int, ...]  # GB variants as sold, smallest first: a bare name assumes the smallest so recipes fit
    cc: tuple[int, int]
    usable: tuple[float, ...] = ()  # GiB nvidia-smi reports for each size (ECC, firmware reserve); () = as sold


# Usable GiB = nvidia-smi memory.total (MiB / 1024) as the cards report it: a "16 GB" T4 shows 15360 MiB, an A10 or
# L4 23028 MiB, an L40S 46068 MiB. The memory model adds the CUDA context on top, so this is what a run may fill.
_CARDS = {
    "p100": _Card("P100", (12, 16), (6, 0), (11.9, 15.9)),
    "t4": _Card("T4", (16,), (7, 5), (15.0,)),
    "v100": _Card("V100", (16, 32), (7, 0), (15.8, 31.7)),
    "2080ti": _Card("RTX 2080 Ti", (11,), (7, 5), (11.0,)),
    "3060": _Card("RTX 3060", (12,), (8, 6), (12.0,)),
    "3060ti": _Card("RTX 3060 Ti", (8,), (8, 6), (8.0,)),
    "3070": _Card("RTX 3070", (8,), (8, 6), (8.0,)),
    "3080": _Card("RTX 3080", (10, 12), (8, 6), (10.0, 12.0)),
    "3090": _Card("RTX 3090", (24,), (8, 6), (24.0,)),
    "4060": _Card("RTX 4060", (8,), (8, 9), (8.0,)),
    "4060ti": _Card("RTX 4060 Ti", (8, 16), (8, 9), (8.0, 16.0)),
    "4070": _Card("RTX 4070", (12,), (8, 9), (12.0,)),
    "4080": _Card("RTX 4080", (16,), (8, 9), (16.0,)),
    "4090": _Card("RTX 4090", (24,), (8, 9), (24.0,)),
    "5090": _Card("RTX 5090", (32,), (12, 0), (31.8,)),
    "a10": _Card("A10", (24,), (8, 6), (22.5,)),
    "a10g": _Card("A10G", (24,), (8, 6), (22.5,)),
    "a40": _Card("A40", (48,), (8, 6), (45.0,)),
    "a6000": _Card("RTX A6000", (48,), (8, 6), (48.0,)),
    "l4": _Card("L4", (24,), (8, 9), (22.5,)),
    "l40s": _Card("L40S", (48,), (8, 9), (45.0,)),
    "a100": _Card("A100", (40, 80), (8, 0), (39.6, 80.0)),
    "a800": _Card("A800", (40, 80), (8, 0), (39.6, 80.0)),
    "h100": _Card("H100", (80, 94), (9, 0), (79.6, 93.6)),
    "h800": _Card("H800", (80,), (9, 0), (79.6,)),
    "h200": _Card("H200", (141,), (9, 0), (140.4,)),
}
MAX_GPUS_PER_NODE = 16  # why: the largest single servers (HGX/DGX-2 class) hold 16; 999xH100 is a typo
MAX_NODES = 1024
UNNAMED_PRE_AMPERE_GIB = 16  # why: most unnamed cards this small are T4/V100/P100/Turing: fp16 is the safe guess
_EXAMPLES = "1x8GB, 8GB, 2xA100-80GB, 4x4090, A100-40GB, h100, 2xV100-32GB, T4, cpu"
_COUNT = re.compile(r"^(?P<n>\d+)\s*[x×*]\s*(?P<rest>.+)$", re.I)
_SIZE = re.compile(r"(?:^|[-_\s])(?P<gb>\d+(?:\.\d+)?)\s*(?:gib|gb|g)$", re.I)
_PREFIXES = ("nvidia", "geforce", "tesla", "quadro", "rtx")


def _card_key(name: str) -> str:
    """'NVIDIA GeForce RTX 4090' → '4090', 'Tesla T4' → 't4', 'A100-SXM4' → 'a100sxm4'."""
    key = re.sub(r"[^a-z0-9]", "", name.lower())
    for prefix in _PREFIXES:
        key = key.removeprefix(prefix)
    return key


def _known_card(name: str) -> _Card | None:
    """The longest known key inside a probed name ('a100sxm480gb' → a100, not a10)."""
    key = _card_key(name)
    hits = [k for k in _CARDS if k in key]
    return _CARDS[max(hits, key=len)] if hits else None


# ---- describe ----------------------------------------------------------------------------------------------


def describe(spec: str | None = None, *, vram_gb: float | None = None, gpus: int | None = None,
             nodes: int = 1) -> Hardware:
    """Hardware from words: ``[N x] (NAME[-SIZE] | SIZE)`` or ``cpu``; keywords fill what the spec leaves open.

    GB means GiB, as GPU vendors use it. A bare size ("8GB") is an unknown card: it is assumed Ampere-class
    (bf16, cc 8.0) and the assumption is written to ``notes``; name the card if it is older.
    """
    if not 1 <= nodes <= MAX_NODES:
        raise UsageError(f"--nodes {nodes}: give 1 to {MAX_NODES} nodes.")
    text = (spec or "").strip()
    if text.lower() == "cpu" or (not text and gpus == 0):
        return Hardware(gpus=0, gpu=None, nodes=nodes, source="described", notes=("CPU only, as described.",))
    count, name, size = _parse(text) if text else (None, "", None)
    count = _merge("GPU count", count, gpus, text)
    count = 1 if count is None else count
    size = _merge("VRAM (GB)", size, vram_gb, text)
    if not 1 <= count <= MAX_GPUS_PER_NODE:
        raise UsageError(f"GPU count {count} in '{text or '--gpus'}' is not plausible: give 1 to {MAX_GPUS_PER_NODE} "
                         f"GPUs per node (use --nodes for more, 'cpu' for none). Examples: {_EXAMPLES}.")
    gpu, notes = _gpu_for(name, size, count, text)
    return Hardware(gpus=count, gpu=gpu, nodes=nodes, source="described", notes=notes)


def _parse(text: str) -> tuple[int | None, str, float | None]:
    """'2xA100-80GB' → (2, 'A100', 80.0); '8GB' → (None, '', 8.0); 'T4' → (None, 'T4', None)."""
    count = None
    if match := _COUNT.match(text):
        count, text = int(match["n"]), match["rest"].strip()
    size = None
    if match := _SIZE.search(text):
        size, text = float(match["gb"]), text[: match.start()].strip(" -_")
    return count, text, size


def _merge(what: str, from_spec, from_keyword, text: str):
    if from_spec is not None and from_keyword is not None and from_spec != from_keyword:
        raise UsageError(f"{what} is {from_spec:g} in '{text}' but {from_keyword:g} was also given; give it once.")
    return from_spec if from_spec is not None else from_keyword


def _gpu_for(name: str, size: float | None, count: int, text: str) -> tuple[Gpu, tuple[str, ...]]:
    if not name:
        if size is None:
            raise UsageError(f"Describe the GPU by name or VRAM size (e.g. --vram-gb 24). Examples: {_EXAMPLES}.")
        _check_size(size, text)
        return _unnamed(size, count)
    card = _CARDS.get(_card_key(name))
    if card is None:
        close = difflib.get_close_matches(_card_key(name), _CARDS, n=3, cutoff=0.5)
        hint = f" Did you mean: {', '.join(_CARDS[c].name for c in close)}?" if close else ""
        raise UsageError(f"Unknown GPU '{name}' in '{text}'.{hint} Known: {', '.join(c.name for c in _CARDS.values())}."
                         f" Or give the VRAM alone (e.g. '24GB'). Examples: {_EXAMPLES}.")
    if size is not None and size not in card.sizes:
        raise UsageError(f"{card.name} comes with {' or '.join(map(str, card.sizes))} GB, not {size:g} ('{text}').")
    notes = ()
    if size is None and len(card.sizes) > 1:
        notes = (f"{card.name} comes with {' or '.join(map(str, card.sizes))} GB: assumed {card.sizes[0]} GB; "
                 f"write e.g. '{card.name.replace(' ', '')}-{card.sizes[-1]}GB' for the larger one.",)
    index = card.sizes.index(size) if size is not None else 0
    vram = card.usable[index] if card.usable else card.sizes[index]
    return Gpu(name=card.name, vram_gib=vram, compute_capability=card.cc, count=count), notes


def _unnamed(size: float, count: int) -> tuple[Gpu, tuple[str, ...]]:
    """A card known only by its size: small ones are assumed pre-Ampere (fp16), larger ones Ampere-class (bf16)."""
    if size <= UNNAMED_PRE_AMPERE_GIB:
        note = (f"Unknown {size:g} GB card: assumed pre-Ampere (fp16, like a T4 or V100); name it (e.g. '3070', "
                "'4060ti-16GB') if it is Ampere or newer, so bf16 is used.")
        return Gpu(name=f"GPU {size:g}GB", vram_gib=size, compute_capability=(7, 5), count=count), (note,)
    note = (f"Unknown {size:g} GB card: assumed Ampere-class or newer (bf16, compute capability 8.0). "
            "Name the card (e.g. 'V100-32GB') if it is older, so fp16 is used instead.")
    return Gpu(name=f"GPU {size:g}GB", vram_gib=size, compute_capability=(8, 0), count=count), (note,)


def _check_size(size: float, text: str) -> None:
    if not (math.isfinite(size) and 1 <= size <= 1024):  # guards against MB typed as GB ("8000GB"), nan, inf
        raise UsageError(f"VRAM {size:g} GB in '{text}' is not plausible; give GB per GPU. Examples: {_EXAMPLES}.")


# ---- probe -------------------------------------------------------------------------------------------------

_Row = tuple[str, float, tuple[int, int] | None]  # name, GiB, compute capability (None: unknown)
_SMI_QUERY = ["--query-gpu=name,memory.total,compute_cap", "--format=csv,noheader"]


def probe() -> Hardware:
    """This machine's GPUs: torch.cuda first, else nvidia-smi, else CPU only. Never raises for a missing GPU."""
    rows = _torch_rows()
    if rows is None:
        rows = _smi_rows()
    if not rows:
        return Hardware(gpus=0, gpu=None, source="probe",
                        notes=("No CUDA GPU found (torch.cuda, nvidia-smi): CPU only.",))
    return _from_rows(rows)


def from_nvidia_smi(output: str) -> Hardware:
    """Hardware from ``nvidia-smi --query-gpu=name,memory.total,compute_cap --format=csv,noheader`` output."""
    rows = [_smi_row(line) for line in output.splitlines() if line.strip()]
    if not rows:
        return Hardware(gpus=0, gpu=None, source="probe", notes=("nvidia-smi listed no GPU: CPU only.",))
    return _from_rows(rows)


def _torch_rows() -> list[_Row] | None:
    try:
        import torch  # lazy: the rest of the recipe wing never needs torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    props = [torch.cuda.get_device_properties(i) for i in range(torch.cuda.device_count())]
    return [(p.name, p.total_memory / 2**30, (p.major, p.minor)) for p in props]


def _smi_rows() -> list[_Row]:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    for query in (_SMI_QUERY, ["--query-gpu=name,memory.total", "--format=csv,noheader"]):  # old drivers lack cc
        try:
            done = subprocess.run([exe, *query], capture_output=True, text=True, timeout=20, check=True)
        except (OSError, subprocess.SubprocessError):
            continue
        return _visible([_smi_row(line) for line in done.stdout.splitlines() if line.strip()])
    return []


def _smi_row(line: str) -> _Row:
    """'NVIDIA A100-SXM4-80GB, 81920 MiB, 8.0' → ('NVIDIA A100-SXM4-80GB', 80.0, (8, 0))."""
    parts = [p.strip() for p in line.split(",")]
    mem = re.match(r"(\d+(?:\.\d+)?)\s*(MiB|GiB)?", parts[1] if len(parts) > 1 else "")
    gib = float(mem[1]) / (1 if mem[2] == "GiB" else 1024) if mem else 0.0
    cc = re.fullmatch(r"(\d+)\.(\d+)", parts[2]) if len(parts) > 2 else None
    return parts[0], gib, (int(cc[1]), int(cc[2])) if cc else None


def _visible(rows: list[_Row]) -> list[_Row]:
    """Honour numeric CUDA_VISIBLE_DEVICES as CUDA does (nvidia-smi ignores it); UUID lists keep every row."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is None:
        return rows
    ids = [s.strip() for s in env.split(",") if s.strip()]
    if not all(re.fullmatch(r"-?\d+", i) for i in ids):
        return rows
    picked = []
    for i in map(int, ids):
        if not 0 <= i < len(rows):
            break  # CUDA stops at the first invalid index
        picked.append(rows[i])
    return picked


def _from_rows(rows: list[_Row]) -> Hardware:
    """Plan for the smallest card: data-parallel training is limited by the smallest GPU."""
    name, gib, cc = min(rows, key=lambda r: r[1])
    notes = []
    if len({r[0] for r in rows}) > 1:
        notes.append(f"Mixed GPUs ({', '.join(sorted({r[0] for r in rows}))}): planning for the smallest, {name}.")
    if cc is None:
        card = _known_card(name)
        cc = card.cc if card else (7, 0)  # unknown and old driver: assume pre-Ampere, fp16 is safe everywhere
        notes.append(f"Compute capability of {name} not reported: assumed {cc[0]}.{cc[1]}.")
    gpu = Gpu(name=name, vram_gib=round(gib, 1), compute_capability=cc, count=len(rows))
    return Hardware(gpus=len(rows), gpu=gpu, source="probe", notes=tuple(notes))
