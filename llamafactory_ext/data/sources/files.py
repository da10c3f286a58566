"""Edge of the dataset flow: the only place that reads user files (text, file lists, JSON records).

Nothing is transformed beyond decoding; every problem becomes a located DataError with its fix.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path

from llamafactory_ext.errors import DataError
from llamafactory_ext.records import Skipped

SNIFF_BYTES = 8192  # NUL bytes in the head of a text file mean it is not text (what git and grep check)
MAGIC = {  # leading bytes of formats users pass by mistake
    b"PK\x03\x04": "a ZIP archive (.zip/.docx/.xlsx)",
    b"\x89PNG": "a PNG image",
    b"%PDF": "a PDF document",
    b"\x1f\x8b": "a gzip archive",
    b"\xff\xd8\xff": "a JPEG image",
    b"7z\xbc\xaf": "a 7z archive",
    b"\xd0\xcf\x11\xe0": "an old Office document (.doc/.xls)",
}
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
JSONL_SUFFIXES = (".jsonl", ".ndjson")
# A single-object .json whose list of objects sits under one of these keys is a record itself, not a wrapper.
MESSAGE_KEYS = frozenset({"conversations", "messages", "history", "turns", "dialog", "dialogue", "chat"})
JSON_TYPE = {str: "string", list: "array", int: "number", float: "number", bool: "boolean", type(None): "null"}
_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


# ---------------------------------------------------------------- plain files


NOT_REGULAR = {stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a character device",
               stat.S_IFBLK: "a block device"}


def check_file(path: Path) -> Path:
    """``path`` if it is an existing regular file, else a DataError saying what it is instead (never opened)."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise DataError(path, None, "no such file", "check the path (relative paths start at the current folder)") from None
    except OSError as e:
        raise DataError(path, None, f"cannot be read ({e.strerror})", "check the path and its permissions") from None
    if stat.S_ISDIR(mode):
        raise DataError(path, None, "is a directory, expected a file", "pass a file inside it, or a reader that takes folders")
    if not stat.S_ISREG(mode):
        raise DataError(path, None, f"is {kind_of(mode)}, not a regular file; it was not opened", "pass a regular file")
    return path


def kind_of(mode: int) -> str:
    return NOT_REGULAR.get(stat.S_IFMT(mode), "not a regular file")


def read_bytes(path: Path) -> bytes:
    """The bytes of a regular file, or a DataError that names it (permissions, I/O errors)."""
    try:
        return check_file(path).read_bytes()
    except OSError as e:
        raise DataError(path, None, f"cannot be read ({e.strerror})",
                        "check its permissions (chmod u+r) or the disk; it was not used") from None


def sniff_binary(path: Path, head: bytes) -> None:
    """DataError if the first bytes show a binary or UTF-16 file rather than UTF-8 text."""
    if head.startswith(UTF16_BOMS):
        raise DataError(path, None, "file is UTF-16 encoded, expected UTF-8", f"iconv -f UTF-16 -t UTF-8 {path} > out")
    for magic, what in MAGIC.items():
        if head.startswith(magic):
            raise DataError(path, None, f"binary file ({what}), expected UTF-8 text", "extract or export the text first")
    if b"\x00" in head[:SNIFF_BYTES]:
        raise DataError(path, None, "binary file (NUL bytes), expected UTF-8 text", "pass the text file itself")


def read_text(path: Path) -> str:
    """The file decoded as UTF-8 (BOM dropped, CRLF/CR turned into LF), or a located DataError."""
    data = read_bytes(path)
    if not data:
        raise DataError(path, None, "file is empty (0 bytes)", "fill it, or leave it out")
    sniff_binary(path, data[:SNIFF_BYTES])
    data = data.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 BOM is harmless: drop it silently
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _not_utf8(path, data, e.start) from None
    if not text.strip():
        raise DataError(path, None, "file holds only whitespace", "fill it, or leave it out")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def _not_utf8(path: Path, data: bytes, pos: int) -> DataError:
    """Locate the first bad byte (line, column in characters) and guess GBK when it decodes as such."""
    line_start = data.rfind(b"\n", 0, pos) + 1
    line = data.count(b"\n", 0, pos) + 1
    col = len(data[line_start:pos].decode("utf-8", errors="replace")) + 1
    reason = f"not valid UTF-8 (byte 0x{data[pos]:02x})"
    try:
        data.decode("gb18030")  # GB18030 is a superset of GBK/GB2312
    except UnicodeDecodeError:
        return DataError(path, line, reason, "re-save the file as UTF-8", col)
    return DataError(path, line, reason + "; looks GBK-encoded", f"iconv -f GBK -t UTF-8 {path} > out", col)


def find_files(paths: Sequence[Path], suffixes: tuple[str, ...], *, exclude: Sequence[Path] = (),
               skipped: list | None = None) -> list[Path]:
    """Files given directly (any suffix) plus, for folders, their files ending in ``suffixes`` (recursive).

    Folder contents are sorted for determinism; hidden folders and files (".git", ".DS_Store") are skipped, and
    so are the ``exclude`` folders (the output folder: never read back as input). FIFOs, sockets, devices and
    unreadable folders met in a folder are never opened: each becomes a Skipped record in ``skipped``.
    """
    found: list[Path] = []
    skipped = [] if skipped is None else skipped
    banned = {os.path.realpath(p) for p in exclude}
    for path in map(Path, paths):
        if not path.exists() and not path.is_symlink():
            raise DataError(path, None, "no such file or folder", "check the path")
        if os.path.realpath(path) in banned:
            raise DataError(path, None, "is the output folder (--out), never read as input",
                            "pass the folder of your notes, and an --out outside it")
        found += _search(path, suffixes, banned, skipped) if path.is_dir() else [path]
    return list(dict.fromkeys(found))  # a file reached twice is read once


def _search(folder: Path, suffixes: tuple[str, ...], banned: set[str], skipped: list) -> list[Path]:
    wanted = tuple(s.lower() for s in suffixes)
    hits: list[Path] = []

    def unreadable(err: OSError) -> None:
        skipped.append(Skipped(str(err.filename or folder), 0, "folder", "unreadable",
                               f"{err.strerror}: check its permissions (chmod u+rx)"))

    for root, dirs, files in os.walk(folder, onerror=unreadable):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not _excluded(Path(root, d), banned, skipped))
        names = [f for f in files if not f.startswith(".") and f.lower().endswith(wanted)]
        hits += [p for p in (Path(root, f) for f in names) if _regular(p, skipped)]
    if not hits:
        expected = ", ".join(suffixes)
        raise DataError(folder, None, f"folder holds no {expected} file", f"put {expected} files in it, or pass files directly")
    return sorted(hits)


def _excluded(folder: Path, banned: set[str], skipped: list) -> bool:
    if os.path.realpath(folder) not in banned:
        return False
    skipped.append(Skipped(str(folder), 0, "folder", "output_folder",
                           "the output folder (--out), never read as input — keep --out outside your notes"))
    return True


def _regular(path: Path, skipped: list) -> bool:
    """A regular file (links followed); anything else is recorded as skipped without being opened."""
    try:
        mode = path.stat().st_mode
    except OSError as e:
        skipped.append(Skipped(str(path), 0, "file", "unreadable", f"{e.strerror} (a broken link?)"))
        return False
    if stat.S_ISREG(mode):
        return True
    skipped.append(Skipped(str(path), 0, "file", "not_regular_file",
                           f"{kind_of(mode)}, never opened — only regular files are read"))
    return False


# ---------------------------------------------------------------- JSON records

Item = tuple[int, object] | DataError


def iter_json_records(path: Path, *, keys: Sequence[str] = ()) -> Iterator[Item]:
    """``(line, obj)`` per record of a JSON-lines or JSON-array file, chosen by content, not only suffix.

    Problems in one row (bad JSON line, non-object row) are *yielded* as DataError so a caller can report
    them all; problems that stop the whole file (unreadable, array in .jsonl, syntax error in a .json,
    records wrapped under a key) are *raised*. ``keys`` only names the expected keys in messages.
    """
    path = Path(path)
    text = read_text(path)
    start = _WS.match(text).end()
    if path.suffix.lower() in JSONL_SUFFIXES:
        items = _iter_jsonl(path, text, start)
    elif text[start] == "[":
        items = _iter_array(path, text, start)
    else:
        items = _iter_other(path, text, start)
    for item in items:
        yield item if isinstance(item, DataError) or isinstance(item[1], dict) else _not_object(path, *item, keys)


def _iter_jsonl(path: Path, text: str, start: int) -> Iterator[Item]:
    """Lines, unless the file is one JSON array (on one line or pretty-printed): then say so."""
    if text[start] == "[" and (_parses_whole(text) or not _first_line_parses(text, start)):
        raise DataError(path, _line_at(text, start), "a JSON array in a .jsonl file",
                        "rename the file to .json, or write one object per line")
    return _iter_lines(path, text)


def _iter_other(path: Path, text: str, start: int) -> Iterator[Item]:
    """A .json (or other suffix) not holding an array: one object per line, or one single value."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise _too_deep(path, _line_at(text, start)) from None
    except json.JSONDecodeError as e:
        if e.msg != "Extra data":
            raise _syntax(path, e) from None
        if not _first_line_parses(text, start):
            raise DataError(path, e.lineno, "several JSON values in one file, not one object per line",
                            "wrap them in [ ] as a .json array, or write one object per line (.jsonl)",
                            e.colno) from None
        return _iter_lines(path, text)
    if isinstance(value, dict):
        _refuse_wrapper(path, value)
    return iter([(_line_at(text, start), value)])


def _parses_whole(text: str) -> bool:
    try:
        json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return False
    return True


def _too_deep(path: Path, line: int | None) -> DataError:
    return DataError(path, line, "JSON nested too deeply to read (over ~1000 levels of [ ] or { })",
                     "flatten this record: training rows need only a few levels")


def _first_line_parses(text: str, start: int) -> bool:
    end = text.find("\n", start)
    return _parses_whole(text[start : None if end < 0 else end])


def _refuse_wrapper(path: Path, value: dict) -> None:
    """A list of records under a key like "data" is not guessed: the user says which list to use."""
    wrapped = [k for k, v in value.items() if k not in MESSAGE_KEYS and _is_records(v)]
    if wrapped:
        raise DataError(path, None, f"records are wrapped in an object under key '{wrapped[0]}'",
                        f"make the file a top-level array: jq '.{wrapped[0]}' {path} > records.json")


def _syntax(path: Path, e: json.JSONDecodeError) -> DataError:
    return DataError(path, e.lineno, f"invalid JSON: {e.msg}", "fix the JSON syntax (quotes, commas, brackets)", e.colno)


def _iter_lines(path: Path, text: str) -> Iterator[Item]:
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except RecursionError:
            yield _too_deep(path, number)
        except json.JSONDecodeError as e:
            yield DataError(path, number, f"invalid JSON: {e.msg}",
                            "each line must be one complete JSON object (check quotes, commas, escapes)", e.colno)


def _iter_array(path: Path, text: str, start: int) -> Iterator[Item]:
    """Walk a top-level array element by element, keeping each element's exact starting line."""
    pos, line, seen = _WS.match(text, start + 1).end(), 1, 0
    empty = text.startswith("]", pos)
    while not empty:  # after a comma we always decode, so "[1,]" fails in raw_decode with its position
        line += text.count("\n", seen, pos)
        seen = pos
        try:
            value, pos = _DECODER.raw_decode(text, pos)
        except RecursionError:
            raise _too_deep(path, line) from None
        except json.JSONDecodeError as e:
            raise _syntax(path, e) from None
        yield line, value
        pos = _WS.match(text, pos).end()
        if text.startswith("]", pos):
            break
        if not text.startswith(",", pos):
            raise _syntax(path, json.JSONDecodeError("Expecting ',' or ']' after an array element", text, pos))
        pos = _WS.match(text, pos + 1).end()
    _expect_end(path, text, pos + 1)


def _expect_end(path: Path, text: str, pos: int) -> None:
    pos = _WS.match(text, pos).end()
    if pos != len(text):
        raise _syntax(path, json.JSONDecodeError("Extra data after the array", text, pos))


def _is_records(value: object) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _not_object(path: Path, line: int, value: object, keys: Sequence[str]) -> DataError:
    kind = JSON_TYPE.get(type(value), type(value).__name__)
    wanted = f"an object with keys {', '.join(keys)}" if keys else "an object {...}"
    return DataError(path, line, f"row is a {kind}, expected {wanted}",
                     "make every record a JSON object: {\"key\": value, ...}")


def _line_at(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1
