"""The dataset folder transaction and the dataset write (the only writer of a dataset folder).

A transaction holds an inter-process lock (``filelock``) on the folder's ``dataset_info.json`` while it reads,
merges and writes; it stages every file as ``.lfx-tmp-*``, writes a journal, renames data and side files into
place (old versions kept as ``.lfx-bak-*``) and replaces the index last, in one atomic step. A run killed at any
point leaves only ``.lfx-*`` files, which the next run in that folder rolls back (index not replaced yet) or
completes (index replaced) before doing anything else. Built on io.py's staging, signal and encoding primitives.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from .dataset_info import merge_entries
from .errors import COMMITTED, DataError, Interrupted, UsageError
from .io import (
    INFO_FILE,
    PREFIX,
    Content,
    Notify,
    Spooled,
    _deferred_signals,
    _stage,
    _step,
    encode,
    info_target,
    info_text,
    read_dataset_info,
    sha256_bytes,
    sha256_file,
    sha256_text,
)

JOURNAL = PREFIX + "journal.json"
LOCK_TIMEOUT = 600  # why: a big Belle build writes in seconds; ten minutes of waiting means a stuck process


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
        with _deferred_signals():
            if (folder / JOURNAL).exists():
                _replay(folder, folder / JOURNAL)
            for p in [index_tmp] + [folder / t[k] for t in targets for k in ("tmp", "bak") if t[k]]:
                p.unlink(missing_ok=True)
            (folder / JOURNAL).unlink(missing_ok=True)
        if isinstance(exc, Interrupted):
            exc.completed = state["committed"] or _replaced(index, plan)
        raise


def _replaced(index: Path, plan: dict) -> bool:
    """Whether the index now holds this transaction's version: a signal can reach the main thread between the
    index replace and the commit mark (pthread_sigmask holds it only for this thread; tqdm's monitor thread can
    take it), and the replay then completes the commit — the interrupt message must say so."""
    return plan["old"] != plan["new"] and index.is_file() and sha256_bytes(index.read_bytes()) == plan["new"]


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
