"""Edge of the dataset flow: a seeded uniform sample of BelleGroup train_0.5M_CN, from the file or the hub.

The file path streams raw lines (no torch/datasets import) and decodes only the rows it keeps.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import math
import operator
import random
from collections.abc import Iterable, Iterator
from itertools import compress, count, islice, tee
from pathlib import Path
from typing import TypeVar

from llamafactory_ext.data.converters.detect import wrong_kind
from llamafactory_ext.data.sources.files import SNIFF_BYTES, check_file, sniff_binary
from llamafactory_ext.errors import DataError, UsageError

HUB_NAME = "BelleGroup/train_0.5M_CN"
FILE_NAME = "Belle_open_source_0.5M.json"
READ_BUFFER = 1 << 20  # 1 MiB reads: fewer syscalls, still a flat memory profile
HUB_SHUFFLE_BUFFER = 10_000  # the datasets default is 1,000; larger mixes the shards' order better

T = TypeVar("T")
_END = object()


def sample_lines(path: Path, n: int = 2000, seed: int = 0) -> list[tuple[int, dict]]:
    """``n`` decoded rows (see :func:`sample_raw`); the first kept line that is not a Belle row raises DataError."""
    return [(number, _decode(path, number, raw)) for number, raw in sample_raw(path, n, seed)]


def sample_records(path: Path, n: int = 2000, seed: int = 0) -> list[tuple[int, dict] | DataError]:
    """Like :func:`sample_lines`, but a bad kept row becomes a DataError item (for --on-error skip)."""
    out: list[tuple[int, dict] | DataError] = []
    for number, raw in sample_raw(path, n, seed):
        try:
            out.append((number, _decode(path, number, raw)))
        except DataError as err:
            out.append(err)
    return out


def sample_raw(path: Path, n: int = 2000, seed: int = 0) -> list[tuple[int, bytes]]:
    """``n`` rows drawn uniformly without loading the file: ``[(line_number, row), ...]`` by line number.

    Deterministic for (file, n, seed). Blank lines are not rows. When the file has ``n`` rows or fewer,
    all of them come back: ``len(result) < n`` tells the caller to warn that the file is smaller than asked.
    A kept line that is not a Belle row raises DataError with its line; lines not kept are never decoded.
    """
    if n < 1:
        raise UsageError(f"sample size must be at least 1, got {n}")
    path = check_file(path)
    rng = random.Random(seed)
    with path.open("rb", buffering=READ_BUFFER) as f:
        head = f.peek(SNIFF_BYTES)[:SNIFF_BYTES]
        sniff_binary(path, head)
        check_shape(path, head)
        kept = reservoir(f, n, rng)  # fast path: physical lines, straight from the file iterator
        if any(raw.isspace() for _, raw in kept):
            # A blank line got in. Redo on non-blank lines only, with the rng continued: a sample without
            # blanks is uniform over rows, and so is the redo, so the result stays exactly uniform.
            f.seek(0)
            kept = [item for _, item in reservoir(_numbered_rows(f), n, rng)]
    if not kept:
        raise DataError(path, None, "no rows: the file is empty or blank", f"pass the downloaded {FILE_NAME}")
    return sorted(kept)  # type: ignore[return-value]


STREAM_ABOVE = 20_000  # why: below this the kept raw lines are a few MB; above, holding them costs ~600 B a row


def stream_raw(path: Path, n: int = 2000, seed: int = 0, *, above: int = STREAM_ABOVE
               ) -> tuple[int, Iterator[tuple[int, bytes]]]:
    """The rows :func:`sample_raw` draws — the very same ones — as ``(count, iterator by line number)``, without
    holding them: the positions are drawn first over the line numbers (the reservoir's choices depend only on
    the stream's length and the rng), then a second pass yields the kept lines. Small samples use sample_raw."""
    if n <= above:
        rows = sample_raw(path, n, seed)
        return len(rows), iter(rows)
    path = check_file(path)
    numbers = _sample_numbers(path, n, random.Random(seed))
    if not numbers:
        raise DataError(path, None, "no rows: the file is empty or blank", f"pass the downloaded {FILE_NAME}")
    return len(numbers), _lines_at(path, numbers)


def _sample_numbers(path: Path, n: int, rng: random.Random) -> list[int]:
    """Sorted line numbers of the sample, chosen exactly as sample_raw chooses them (blank-line redo included)."""
    with path.open("rb", buffering=READ_BUFFER) as f:
        head = f.peek(SNIFF_BYTES)[:SNIFF_BYTES]
        sniff_binary(path, head)
        check_shape(path, head)
        blanks = set(compress(count(1), map(bytes.isspace, f)))  # in C; the file iterator also counts the lines
        f.seek(0)
        total = sum(1 for _ in f)
    kept = [number for _, number in reservoir(iter(range(1, total + 1)), n, rng)]
    if blanks and any(k in blanks for k in kept):  # as sample_raw: redo over the rows, the rng continued
        rows = (i for i in range(1, total + 1) if i not in blanks)
        kept = [number for _, number in reservoir(rows, n, rng)]
    return sorted(kept)


def _lines_at(path: Path, numbers: list[int]) -> Iterator[tuple[int, bytes]]:
    """``(number, raw line)`` for the given sorted line numbers, reading the file once."""
    wanted = iter(numbers)
    target = next(wanted)
    with path.open("rb", buffering=READ_BUFFER) as f:
        for number, raw in enumerate(f, 1):
            if number == target:
                yield number, raw
                target = next(wanted, 0)
                if not target:
                    return


def check_shape(path: Path, head: bytes) -> None:
    """One DataError for a file that is not Belle JSON lines: a JSON array, or rows of another source kind."""
    text = head.removeprefix(b"\xef\xbb\xbf")
    if text.lstrip().startswith(b"["):
        raise DataError(path, 1, "a JSON array; the belle reader samples JSON lines (one object per line, as in "
                        f"{FILE_NAME})", "pass it as `alpaca` (reads JSON arrays), or write one object per line")
    lines = text.lstrip().split(b"\n", 1)
    if len(lines) < 2 and len(head) == SNIFF_BYTES:
        return  # why: the first row does not fit in the head; its kind is left to the per-row checks
    try:
        first = json.loads(lines[0])
    except ValueError:
        return
    line = text[: len(text) - len(text.lstrip())].count(b"\n") + 1
    wrong = wrong_kind(first, "belle", str(path), line)
    if wrong is not None:
        raise wrong


def _numbered_rows(lines: Iterable[bytes]) -> Iterator[tuple[int, bytes]]:
    """``(line_number, raw_line)`` for non-blank lines, with the whole pipeline in C (no Python per line)."""
    numbered, raw = tee(lines)
    return compress(enumerate(numbered, 1), map(operator.not_, map(bytes.isspace, raw)))


def reservoir(items: Iterator[T], n: int, rng: random.Random) -> list[tuple[int, T]]:
    """Uniform sample of ``n`` items from a stream of unknown length, as ``(1-based position, item)``.

    Li's Algorithm L: O(n log(N/n)) random draws; the items in between are skipped by islice, in C.
    """
    kept = list(enumerate(islice(items, n), 1))
    if len(kept) < n:
        return kept
    position, w = n, math.exp(math.log(_unit(rng)) / n)
    while w < 1.0:  # w reaches 1.0 only by float rounding; the stream is then effectively exhausted
        skip = math.floor(math.log(_unit(rng)) / math.log1p(-w))
        item = next(islice(items, skip, None), _END)
        if item is _END:
            break
        position += skip + 1
        kept[rng.randrange(n)] = (position, item)
        w *= math.exp(math.log(_unit(rng)) / n)
    return kept


def _unit(rng: random.Random) -> float:
    """A uniform float in (0, 1): log() needs it above zero."""
    return rng.random() or 5e-324


def _decode(path: Path, number: int, raw: bytes) -> dict:
    try:
        row = json.loads(raw)
    except UnicodeDecodeError as e:
        raise DataError(path, number, f"not valid UTF-8 ({e.reason})", "re-save the file as UTF-8") from None
    except json.JSONDecodeError as e:
        raise DataError(path, number, f"invalid JSON: {e.msg}",
                        "each line must be one JSON object with instruction, input, output", e.colno) from None
    except RecursionError:
        raise DataError(path, number, "JSON nested too deeply to read",
                        "flatten it: each line must be one JSON object with instruction, input, output") from None
    if not isinstance(row, dict) or not _is_belle(row):
        raise DataError(path, number, f"not a Belle row: {raw[:80].decode('utf-8', 'replace')!r}",
                        'expected {"instruction": str, "input": str, "output": str}')
    return row


def _is_belle(row: dict) -> bool:
    """instruction and output are strings; input may be missing (it is often empty) but not another type.

    A field may also be a nested object ({"instruction": {"instruction": …}}): the alpaca converter repairs it
    for Belle rows exactly as for alpaca rows (one code path), or names the field it cannot repair."""
    fields = (row.get("instruction"), row.get("output"), row.get("input", ""))
    return all(isinstance(v, (str, dict)) for v in fields)


def load_hub(name: str = HUB_NAME, n: int = 2000, seed: int = 0) -> list[tuple[int, dict]]:
    """``n`` rows from the hub through ``datasets`` streaming + shuffle(seed) + take(n).

    The number in each pair is the row's position in the sample (a stream has no file lines).
    Needs network; without it, download the file and use :func:`sample_lines`.
    """
    try:
        from datasets import load_dataset
    except ImportError:
        raise UsageError(f"the hub path needs `datasets` (pip install datasets); or download {FILE_NAME} "
                         "and pass its path") from None
    try:
        stream = load_dataset(name, split="train", streaming=True)
        rows = list(stream.shuffle(seed=seed, buffer_size=HUB_SHUFFLE_BUFFER).take(n))
    except _network_errors() as e:
        raise UsageError(f"cannot reach the hub for {name} ({type(e).__name__}: {e}); download {FILE_NAME} "
                         f"from https://huggingface.co/datasets/{name} and pass its path") from None
    return list(enumerate(rows, 1))


def _network_errors() -> tuple[type[BaseException], ...]:
    """Connection-type errors of the hub stack (httpx under huggingface_hub 1.x, requests before)."""
    errors: list[type[BaseException]] = [OSError]  # ConnectionError, timeouts, DatasetNotFoundError
    for module, attr in (("httpx", "HTTPError"), ("requests", "RequestException")):
        with contextlib.suppress(ImportError, AttributeError):
            errors.append(getattr(importlib.import_module(module), attr))
    return tuple(errors)
