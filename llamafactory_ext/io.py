"""The only writer: one folder transaction for a dataset folder (and plain all-or-nothing writes for recipes/).

A transaction holds an inter-process lock (``filelock``) on the folder's ``dataset_info.json`` while it reads,
merges and writes; it stages every file as ``.lfx-tmp-*``, writes a journal, renames data and side files into
place (old versions kept as ``.lfx-bak-*``) and replaces the index last, in one atomic step. A run killed at any
point leaves only ``.lfx-*`` files, which the next run in that folder rolls back (index not replaced yet) or
completes (index replaced) before doing anything else. ``dataset_info.json`` is ASCII-escaped because LF opens
it without an encoding (GBK locales break otherwise), and a symlinked one is updated through the link.
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

from .dataset_info import merge_entries
from .errors import COMMITTED, DataError, Interrupted, UsageError

INFO_FILE = "dataset_info.json"
PREFIX = ".lfx-"  # every temporary, backup and journal file of a transaction starts with this
JOURNAL = PREFIX + "journal.json"
LOCK_TIMEOUT = 600  # why: a big Belle build writes in seconds; ten minutes of waiting means a stuck process
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


# ---------------------------------------------------------------- the folder transaction


@contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """An inter-process lock for the folder's index (keyed by its real path, so links share one lock).

    The lock file lives in the temp folder, never in the user's folder (which must stay byte-identical)."""
    from filelock import FileLock, Timeout

    key = sha256_text(os.path.realpath(Path(folder) / INFO_FILE))[:24]
    lock_dir = Path(tempfile.gettempdir()) / "llamafactory_ext-locks"
    lock_dir.mkdir(mode=0o777, exist_ok=True)
    try:
        with FileLock(str(lock_dir / f"{key}.lock"), timeout=LOCK_TIMEOUT):
            yield
    except Timeout:
        raise UsageError(f"{folder}: another build_dataset run has held the folder for {LOCK_TIMEOUT} s — "
                         "wait for it to finish, or stop it") from None


def recover(folder: Path, notify: Notify | None = None) -> None:
    """Roll back or complete what a killed run left in ``folder`` (call it with the lock held)."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    journal = folder / JOURNAL
    left = sorted(p for p in folder.iterdir() if p.name.startswith(PREFIX) and p != journal)
    index = info_target(folder)
    if index.parent != folder:  # a symlinked index is staged beside its real file
        left += sorted(index.parent.glob(f"{PREFIX}tmp-{index.name}.*"))
    if not journal.exists() and not left:
        return
    outcome = _replay(folder, journal) if journal.exists() else "nothing had been replaced"
    for p in left:
        p.unlink(missing_ok=True)
    journal.unlink(missing_ok=True)
    if notify:
        notify(f"note: {folder}: cleaned up the files of an interrupted run ({outcome})")


def _replay(folder: Path, journal: Path) -> str:
    try:
        plan = json.loads(journal.read_text(encoding="utf-8"))
        _check_plan(plan)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return "its journal was unreadable: temporary files removed"
    index = Path(plan["index"])
    now = sha256_bytes(index.read_bytes()) if index.is_file() else None
    committed = now == plan["new"] and (plan["old"] != plan["new"] or not _tmp_left(folder, plan))
    for item in plan["targets"]:
        _settle(folder, item, committed)
    Path(plan["index_tmp"]).unlink(missing_ok=True)
    return "completed: its entries are in place" if committed else "rolled back: the folder is as it was before it"


def _check_plan(plan: dict) -> None:
    """A journal only ever names files of this folder (and the index's own temp): refuse anything else."""
    names = [t["name"] for t in plan["targets"]] + [t[k] for t in plan["targets"] for k in ("tmp", "bak") if t[k]]
    if any("/" in n or os.sep in n or n in ("", ".", "..") for n in names) or not all(
            t[k].startswith(PREFIX) for t in plan["targets"] for k in ("tmp", "bak") if t[k]):
        raise ValueError("journal names a file outside the folder")
    if not Path(plan["index_tmp"]).name.startswith(PREFIX) or Path(plan["index"]).name != INFO_FILE:
        raise ValueError("journal names a foreign index")


def _tmp_left(folder: Path, plan: dict) -> bool:
    return any(t["tmp"] and (folder / t["tmp"]).exists() for t in plan["targets"])


def _settle(folder: Path, item: dict, committed: bool) -> None:
    target, backup = folder / item["name"], folder / item["bak"]
    tmp = folder / item["tmp"] if item["tmp"] else None
    if committed:
        backup.unlink(missing_ok=True)
    elif backup.exists() or backup.is_symlink():
        os.replace(backup, target)
    elif not item["existed"] and tmp is not None and (target.exists() or target.is_symlink()):
        target.unlink()


def transaction(folder: Path, files: Mapping[str, Content], info: dict, *, remove: Iterable[str] = (),
                notify: Notify | None = None) -> None:
    """Write ``files`` (names in ``folder``), remove ``remove`` and replace the index with ``info``, as one
    recoverable step. Files whose content is already there are not touched. Call it with the lock held."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    index = info_target(folder)
    new_index = info_text(info)
    old = sha256_bytes(index.read_bytes()) if index.is_file() else None
    changed = {n: t for n, t in files.items() if not _same(folder / n, t)}
    _refuse_folders(folder, changed)
    targets = [{"name": n, "tmp": f"{PREFIX}tmp-{n}", "bak": f"{PREFIX}bak-{n}", "existed": _exists(folder / n)}
               for n in changed]
    targets += [{"name": n, "tmp": None, "bak": f"{PREFIX}bak-{n}", "existed": True}
                for n in remove if _exists(folder / n) and n not in changed]
    index_tmp = index.parent / f"{PREFIX}tmp-{index.name}.{os.getpid()}"
    plan = {"index": str(index), "index_tmp": str(index_tmp), "old": old, "new": sha256_text(new_index),
            "targets": targets}
    state = {"committed": False}
    try:
        _run(folder, plan, changed, new_index, (index, index_tmp), state)
    except BaseException as exc:
        if isinstance(exc, Interrupted):
            exc.completed = state["committed"]
        with _deferred_signals():
            if (folder / JOURNAL).exists():
                _replay(folder, folder / JOURNAL)
            for p in [index_tmp] + [folder / t[k] for t in targets for k in ("tmp", "bak") if t[k]]:
                p.unlink(missing_ok=True)
            (folder / JOURNAL).unlink(missing_ok=True)
        raise


def _refuse_folders(folder: Path, names: Iterable[str]) -> None:
    for n in names:
        if (folder / n).is_dir() and not (folder / n).is_symlink():
            raise DataError(str(folder / n), None, "is a folder where a data file must go",
                            "move it away, or choose another --name; nothing was written")


def _run(folder: Path, plan: dict, changed: Mapping[str, Content], new_index: str, paths: tuple[Path, Path],
         state: dict) -> None:
    index, index_tmp = paths
    for item in plan["targets"]:
        if item["tmp"]:
            _stage(folder / item["name"], changed[item["name"]], item["tmp"])
    _stage(index, new_index, index_tmp.name)
    _stage(folder / JOURNAL, json.dumps(plan), JOURNAL)  # the journal is what makes a kill recoverable
    with _deferred_signals():
        for item in plan["targets"]:
            target = folder / item["name"]
            if item["existed"]:
                os.replace(target, folder / item["bak"])
                _step()
            if item["tmp"]:
                os.replace(folder / item["tmp"], target)
                _step()
        os.replace(index_tmp, index)  # the commit point: one atomic replace of the index
        state["committed"] = True
        COMMITTED.append(str(folder))
        _step()
        for item in plan["targets"]:
            (folder / item["bak"]).unlink(missing_ok=True)
        (folder / JOURNAL).unlink()
        _step()


def _exists(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def _same(path: Path, text: Content) -> bool:
    if not path.is_file() or path.is_symlink():
        return False
    if isinstance(text, Spooled):
        return path.stat().st_size == text.size and sha256_file(path) == text.sha256
    return path.read_bytes() == encode(text)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------- the dataset write


def owned_files(folder: Path, name: str) -> dict[str, str]:
    """Files the tool wrote for ``name`` (from its manifest): ``{file name: sha256}``; {} if none or unreadable."""
    try:
        data = json.loads((Path(folder) / f"{name}.manifest.json").read_text(encoding="utf-8"))
        written = data.get("written", {})
    except (OSError, ValueError, RecursionError, AttributeError):
        return {}
    if not isinstance(written, dict):
        return {}
    owned = {k: v for k, v in written.items() if isinstance(k, str) and isinstance(v, str)}
    manifest = Path(folder) / f"{name}.manifest.json"
    return owned | {manifest.name: sha256_bytes(manifest.read_bytes())}  # a manifest of ours owns itself


def _is_ours(folder: Path, file_name: str, owned: Mapping[str, str]) -> bool:
    """A file this tool wrote and nobody changed since: inside the folder, plain, with the recorded hash."""
    path = folder / file_name
    if file_name not in owned or "/" in file_name or "\\" in file_name or file_name.startswith("."):
        return False
    return path.is_file() and not path.is_symlink() and sha256_bytes(path.read_bytes()) == owned[file_name]


def _conflicts(folder: Path, files: Mapping[str, Content], data: Iterable[str], owned: Mapping[str, str]) -> list[str]:
    """Targets that hold something else: any data file, or a side file the tool did not write (or was edited)."""
    data = set(data)
    out = []
    for name, text in files.items():
        path = folder / name
        if not _exists(path) or _same(path, text):
            continue
        if name in data or not _is_ours(folder, name, owned):
            out.append(name)
    return out


def _removable(folder: Path, merged: dict, stale: Iterable[str], owned: Mapping[str, str],
               notify: Notify | None) -> list[str]:
    """Files of stale entries that may go: written by the tool for this name, inside the folder, unreferenced."""
    referenced = {e.get("file_name") for e in merged.values() if isinstance(e, dict)}
    out = []
    for entry in stale:
        file_name = entry.get("file_name") if isinstance(entry, dict) else None
        if not isinstance(file_name, str):
            continue
        if _is_ours(folder, file_name, owned) and file_name not in referenced:
            out.append(file_name)
        elif notify:
            notify(f"note: kept {folder / file_name}: it was not written by this tool for this name, "
                   "or another entry uses it")
    return out


def write_dataset(folder: Path, data_files: Mapping[str, Content], entries: dict[str, dict], *, overwrite: bool,
                  side_files: Mapping[str, Content] | None = None, stale: Iterable[str] = (), name: str | None = None,
                  notify: Notify | None = None) -> dict:
    """Write data files and ``side_files`` (report, manifest, …) and merge ``entries`` into the folder's
    ``dataset_info.json``, as one locked, recoverable transaction; returns the merged info.

    Without ``overwrite`` an entry or file with other content is refused (a side file the tool itself wrote for
    ``name`` and nobody edited is simply replaced). With it, the ``stale`` entries (an earlier build's splits this
    build does not write) are removed, and their files too when the manifest of ``name`` records them as written
    by the tool, they sit inside the folder and no other entry uses them.
    """
    folder = Path(folder)
    with folder_lock(folder):
        recover(folder, notify)
        merged = merge_entries(read_dataset_info(folder), entries, overwrite=overwrite,
                               path=str(folder / INFO_FILE))
        files = {**data_files, **(side_files or {})}
        _refuse_folders(folder, files)
        owned = owned_files(folder, name) if name else {}
        remove: list[str] = []
        if overwrite:
            gone = [merged.pop(k) for k in stale if k in merged]
            remove = _removable(folder, merged, gone, owned, notify)
        else:
            _refuse(folder, _conflicts(folder, files, data_files, owned))
        transaction(folder, files, merged, remove=remove, notify=notify)
    return merged


def _refuse(folder: Path, names: list[str]) -> None:
    if names:
        shown = ", ".join(str(folder / n) for n in names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        raise UsageError(f"{shown}: exists with different content — pass --overwrite to replace it, "
                         "or choose another --name")
