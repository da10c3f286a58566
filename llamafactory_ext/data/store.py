"""The kept samples of a build, out of memory: their Written records (rows.py) in a spill file, and per sample only
what the split needs in compact columns; then the write pass streams each split's data file and the provenance file
to temporary files, gathering the statistics and leakage on the way.

Memory per kept sample: ~150 bytes (id, group when shared, a few integers) instead of the sample itself (~2 KB).
"""

from __future__ import annotations

import hashlib
import pickle
from array import array
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..io import Spooled, encode
from .rows import COLUMN_BITS, REASONING, TOOL_CALLS, Written, provenance_line, row_line
from .split import SPLITS, Unit


class Store:
    """Kept samples in input order: Written records on disk, split units and flags in memory."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._file = (folder / "kept.bin").open("w+b")
        self.offsets = array("q", [0])
        self.uids: list[str] = []
        self.groups: list[str | None] = []  # None: the sample is its own group ("u:" + uid)
        self.labels: dict[tuple, int] = {}  # (kind, tags, source) → number, each stored once
        self.label_ids, self.lines, self.flags = array("l"), array("q"), bytearray()
        self._label_list: list[tuple] = []

    def __len__(self) -> int:
        return len(self.uids)

    def add(self, u: Unit, flags: int, blob: bytes) -> None:
        with spill_errors(self.folder / "kept.bin"):
            self._file.write(blob)
        self.offsets.append(self.offsets[-1] + len(blob))
        source, line, uid = u.order
        self.uids.append(uid)
        self.groups.append(None if u.group == f"u:{uid}" else u.group)
        self.label_ids.append(self.labels.setdefault((u.kind, u.tags, source), len(self.labels)))
        self.lines.append(line)
        self.flags.append(flags)

    def label(self, i: int) -> tuple:
        """(kind, tags, source) of sample ``i``."""
        if len(self._label_list) != len(self.labels):
            self._label_list = list(self.labels)
        return self._label_list[self.label_ids[i]]

    def units(self) -> list[Unit]:
        labels = list(self.labels)
        return [Unit(group or f"u:{uid}", labels[k][0], labels[k][1], (labels[k][2], line, uid))
                for uid, group, k, line in zip(self.uids, self.groups, self.label_ids, self.lines, strict=True)]

    def reasoning(self) -> list[bool]:
        return [bool(f & REASONING) for f in self.flags]

    def read(self, i: int) -> Written:
        with spill_errors(self.folder / "kept.bin"):  # the first seek flushes what is still buffered
            self._file.seek(self.offsets[i])
            return pickle.loads(self._file.read(self.offsets[i + 1] - self.offsets[i]))

    def close(self) -> None:
        self._file.close()


@dataclass
class Output:
    """What the write pass made: data files (spooled) with their entries and row counts, provenance, statistics."""

    files: dict[str, Spooled] = field(default_factory=dict)
    entries: dict[str, dict] = field(default_factory=dict)
    written: dict[str, int] = field(default_factory=dict)
    stats: dict[str, dict] = field(default_factory=dict)
    leaks: dict[str, int] = field(default_factory=dict)
    provenance: Spooled | None = None


def write(store: Store, parts: dict[str, list[int]], name: str, fmt: str, counter_name: str,
          progress: Callable[[Iterable], Iterable] = lambda items: items) -> Output:
    """Stream every non-empty split to ``NAME_<split>.jsonl`` and the provenance file, in split then row order
    (``progress`` wraps the stream of rows: the CLI's bar)."""
    from .report import Leaks, SplitStats

    out, leaks = Output(), Leaks()
    with _Spool(store.folder / "provenance.jsonl") as provenance:
        for split_name in SPLITS:
            indices = parts.get(split_name, [])
            stats = SplitStats(counter_name)
            if indices:
                _write_split(store, split_name, indices, (name, fmt, progress), out, (stats, leaks, provenance))
            out.stats[split_name] = stats.result()
    out.provenance, out.leaks = provenance.spooled, leaks.counts()
    return out


def _write_split(store: Store, split_name: str, indices: list[int], how: tuple, out: Output, sinks: tuple) -> None:
    from .formats import split_entry

    stats, leaks, provenance = sinks
    name, fmt, progress = how
    needed = 0
    for i in indices:
        needed |= store.flags[i]
    extra = [c for c, bit in COLUMN_BITS.items() if needed & bit]
    file_name = f"{name}_{split_name}.jsonl"
    with _Spool(store.folder / file_name) as data:
        for row, i in enumerate(progress(indices)):
            w = store.read(i)
            data.write(row_line(w, extra))
            provenance.write(provenance_line(store.uids[i], split_name, row, w))
            kind, tags, _ = store.label(i)
            stats.add(kind, tags, w.chars, w.tokens, w.reasoning)
            leaks.add(split_name, w.code, w.answers)
    out.files[file_name] = data.spooled
    out.entries[f"{name}_{split_name}"] = split_entry(file_name, fmt, extra, bool(needed & TOOL_CALLS))  # type: ignore[arg-type]
    out.written[split_name] = stats.samples


@contextmanager
def spill_errors(path: Path) -> Iterator[None]:
    """A full or failing temp disk names the file and the way out (a write error names no file by itself)."""
    try:
        yield
    except OSError as err:
        raise OSError(err.errno, f"{err.strerror or err} (a build's temporary file, ~3 KB per sample; point TMPDIR "
                      "at a disk with room)", str(path)) from None


class _Spool:
    """A temporary output file written line by line, hashed on the way (the manifest records its sha256)."""

    def __init__(self, path: Path) -> None:
        self.path, self.sha, self.size = path, hashlib.sha256(), 0
        self.spooled: Spooled | None = None

    def __enter__(self) -> _Spool:
        self._fh = self.path.open("wb", buffering=1 << 20)
        return self

    def write(self, text: str) -> None:
        data = encode(text)
        with spill_errors(self.path):
            self._fh.write(data)
        self.sha.update(data)
        self.size += len(data)

    def __exit__(self, *exc: object) -> None:
        with spill_errors(self.path):
            self._fh.close()
        self.spooled = Spooled(self.path, self.sha.hexdigest(), self.size)
