"""The only writer: atomic files and the dataset_info.json merge.

A run either replaces all its targets or leaves the folder exactly as it was (temp files + os.replace,
with rollback if a later rename fails). ``dataset_info.json`` is ASCII-escaped because LF opens it
without an encoding (GBK locales break otherwise).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from .dataset_info import merge_entries
from .errors import DataError, UsageError

INFO_FILE = "dataset_info.json"


def jsonl_text(rows: Iterable[dict]) -> str:
    """One JSON object per line, UTF-8 text kept readable (data files are opened as UTF-8 by ``datasets``)."""
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def info_text(info: dict) -> str:
    """dataset_info.json text: ASCII-escaped, 2-space indent, key order as given (stable across runs)."""
    return json.dumps(info, ensure_ascii=True, indent=2) + "\n"


def read_dataset_info(folder: Path) -> dict:
    """Existing entries of ``folder/dataset_info.json`` ({} if absent); malformed → DataError, never rewritten."""
    path = folder / INFO_FILE
    if not path.exists():
        return {}
    raw = path.read_bytes()
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise DataError(str(path), None, f"not UTF-8 ({exc.reason})", "save it as UTF-8; it was left unchanged") from None
    except json.JSONDecodeError as exc:
        raise DataError(
            str(path), exc.lineno, f"malformed JSON ({exc.msg}, column {exc.colno})",
            "fix or move the file; it was left unchanged and nothing was written",
        ) from None
    if not isinstance(data, dict):
        raise DataError(str(path), 1, f"top level is a {type(data).__name__}, expected an object of entries",
                        "fix or move the file; it was left unchanged and nothing was written")
    return data


def write_files(files: Mapping[Path, str], remove: Iterable[Path] = ()) -> None:
    """Write all files (and remove ``remove``) or change nothing: stage every temp file first, then rename,
    rolling back on failure."""
    staged: list[tuple[Path | None, Path]] = []
    try:
        for path, text in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            staged.append((_stage(path, text), path))
        staged += [(None, path) for path in remove if path.is_file()]
        _commit(staged)
    finally:
        for tmp, _ in staged:
            if tmp is not None:
                tmp.unlink(missing_ok=True)


def _stage(path: Path, text: str) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(name, _mode(path))  # mkstemp makes 0600; LF or the web UI may run as another user
    return Path(name)


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
            if target.is_file():
                backup = target.with_name(f".{target.name}.bak")
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


def _refuse_changed(files: Mapping[Path, str]) -> None:
    """An existing data file with other content is the user's data: keep it unless --overwrite."""
    for path, text in files.items():
        if path.is_file() and path.read_text(encoding="utf-8", errors="replace") != text:
            raise UsageError(
                f"{path}: exists with different content — pass --overwrite to replace it, or choose another --name"
            )


def write_dataset(folder: Path, data_files: Mapping[str, str], entries: dict[str, dict], *, overwrite: bool,
                  side_files: Mapping[str, str] | None = None, stale: Iterable[str] = ()) -> dict:
    """Write data files (+ ``side_files`` such as the report, always replaced) and merge ``entries`` into
    ``folder/dataset_info.json``, atomically; returns the merged info.

    Without ``overwrite`` a data file or entry with other content is refused. With it, the ``stale`` entries (an
    earlier build's splits this build does not write) are removed along with their files.
    """
    info_path = folder / INFO_FILE
    existing = read_dataset_info(folder)
    merged = merge_entries(existing, entries, overwrite=overwrite, path=str(info_path))
    files = {folder / name: text for name, text in data_files.items()}
    remove: list[Path] = []
    if overwrite:
        for name in stale:
            entry = merged.pop(name, None)
            if isinstance(entry, dict) and entry.get("file_name"):
                remove.append(folder / entry["file_name"])
    else:
        _refuse_changed(files)
    files.update({folder / name: text for name, text in (side_files or {}).items()})
    files[info_path] = info_text(merged)
    write_files(files, remove)
    return merged
