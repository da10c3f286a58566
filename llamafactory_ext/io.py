"""Writing primitives: encodings and hashes, signals held during renames, staged temp files, all-or-nothing
writes (recipes/, eval outputs) and reading a dataset folder's index. The dataset folder transaction built on them
is transaction.py. ``dataset_info.json`` is ASCII-escaped because LF opens it without an encoding (GBK locales
break otherwise), and a symlinked one is updated through the link.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .errors import DataError

INFO_FILE = "dataset_info.json"
PREFIX = ".lfx-"  # every temporary, backup and journal file of a transaction starts with this
KILL_ENV = "LFX_TEST_KILL_AT"  # test-only hook: "k" SIGKILLs this process at the k-th write/rename step, "k:TERM" …
_steps = [0]
Notify = Callable[[str], None]


@dataclass(frozen=True)
class Spooled:
    """A file's content already written to a temporary file (a big build streams its data files, never one string);
    the transaction copies it in like text."""

    path: Path
    sha256: str
    size: int


Content = str | Spooled


def content_sha256(content: Content) -> str:
    return content.sha256 if isinstance(content, Spooled) else sha256_text(content)


def jsonl_text(rows: Iterable[dict]) -> str:
    """One JSON object per line, UTF-8 text kept readable (data files are opened as UTF-8 by ``datasets``)."""
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def read_jsonl_tolerant(path: Path) -> list[dict]:
    """Rows of an append-only log (events, alerts, votes): [] when absent; a line torn by a crash is skipped."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return rows


def info_text(info: dict) -> str:
    """dataset_info.json text: ASCII-escaped, 2-space indent, key order as given (stable across runs)."""
    return json.dumps(info, ensure_ascii=True, indent=2) + "\n"


def encode(text: str) -> bytes:
    """UTF-8; a lone surrogate (from a non-UTF-8 file name) becomes its JSON-style escape, never a crash."""
    return text.encode("utf-8", "backslashreplace")


def sha256_text(text: str) -> str:
    return hashlib.sha256(encode(text)).hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------- signals


def _step() -> None:
    """Count one write/rename step; the test hook kills the process at the chosen one."""
    _steps[0] += 1
    at, _, name = os.environ.get(KILL_ENV, "").partition(":")
    if at == str(_steps[0]):
        os.kill(os.getpid(), getattr(signal, f"SIG{name or 'KILL'}"))


@contextmanager
def _deferred_signals() -> Iterator[None]:
    """Hold SIGINT/SIGTERM while renaming, so a commit is never cut in half; they arrive right after."""
    sigs = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, sigs)


# ---------------------------------------------------------------- reading the index


def info_target(folder: Path) -> Path:
    """Where dataset_info.json really lives: a symlink is followed so the shared file it names is updated."""
    path = Path(folder) / INFO_FILE
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def read_dataset_info(folder: Path) -> dict:
    """Existing entries of ``folder/dataset_info.json`` ({} if absent); malformed → DataError, never rewritten."""
    path = Path(folder) / INFO_FILE
    if path.is_symlink() and not path.exists():
        raise DataError(str(path), None, f"is a broken symlink (to {os.readlink(path)})",
                        "fix or remove the link; it was left unchanged")
    if not path.exists():
        return {}
    if not path.is_file():
        raise DataError(str(path), None, "is not a regular file", "move it away; nothing was written")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(str(path), None, f"cannot be read ({exc.strerror})", "fix its permissions") from None
    return _parse_info(path, raw)


def _parse_info(path: Path, raw: bytes) -> dict:
    keep = "fix or move the file; it was left unchanged and nothing was written"
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise DataError(str(path), None, f"not UTF-8 ({exc.reason})", "save it as UTF-8; it was left unchanged") from None
    except json.JSONDecodeError as exc:
        raise DataError(str(path), exc.lineno, f"malformed JSON ({exc.msg}, column {exc.colno})", keep) from None
    except RecursionError:
        raise DataError(str(path), None, "malformed JSON (nested too deeply)", keep) from None
    if not isinstance(data, dict):
        raise DataError(str(path), 1, f"top level is a {type(data).__name__}, expected an object of entries", keep)
    return data


# ---------------------------------------------------------------- plain all-or-nothing writes (recipes/)


def write_files(files: Mapping[Path, str], remove: Iterable[Path] = ()) -> None:
    """Write all files (and remove ``remove``) or change nothing: stage every temp file first, then rename,
    rolling back on failure."""
    staged: list[tuple[Path | None, Path]] = []
    try:
        for path, text in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            staged.append((_stage(path, text), path))
        staged += [(None, path) for path in remove if path.is_file()]
        with _deferred_signals():
            _commit(staged)
    finally:
        for tmp, _ in staged:
            if tmp is not None:
                tmp.unlink(missing_ok=True)


def _stage(path: Path, text: Content, name: str | None = None) -> Path:
    """Write ``text`` to a hidden temp file beside ``path`` (fsynced, with the permissions ``path`` has)."""
    if name is None:
        fd, tmp = tempfile.mkstemp(prefix=f"{PREFIX}{path.name}.", suffix=".tmp", dir=path.parent)
    else:
        tmp = str(path.parent / name)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            _write_content(fh, text)
            _step()
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _mode(path))  # mkstemp makes 0600; LF or the web UI may run as another user
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and not exc.filename:  # a full disk names no file: name the one being written
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        raise
    return Path(tmp)


def _write_content(fh, content: Content) -> None:
    if isinstance(content, Spooled):
        with content.path.open("rb") as src:
            shutil.copyfileobj(src, fh, 1 << 20)
    else:
        fh.write(encode(content))


def _mode(path: Path) -> int:
    """The replaced file's permissions, or what a plain open() would give under the current umask."""
    if path.is_file():
        return path.stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _commit(staged: list[tuple[Path | None, Path]]) -> None:
    """Rename temps over targets (a None temp removes the target); if one step fails, put back what was done."""
    done: list[tuple[Path, Path | None]] = []  # (target, its backup) for every target already touched
    try:
        for tmp, target in staged:
            backup = None
            if target.is_file() or target.is_symlink():
                backup = target.with_name(f"{PREFIX}bak-{target.name}")
                os.replace(target, backup)
            done.append((target, backup))
            if tmp is not None:
                os.replace(tmp, target)
    except OSError:
        _rollback(done)
        raise
    for _, backup in done:
        if backup is not None:
            backup.unlink(missing_ok=True)


def _rollback(done: list[tuple[Path, Path | None]]) -> None:
    for target, backup in reversed(done):
        if backup is not None:
            os.replace(backup, target)
        elif target.is_file():
            target.unlink()
