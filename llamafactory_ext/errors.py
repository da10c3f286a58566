"""One exception family. Every message names the place (file:line, or the key) and the fix.

Library code raises; only the CLIs catch, print and choose the exit code (1 data, 2 usage).
"""

from __future__ import annotations

import difflib
import os
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager


class ExtError(ValueError):
    """Base of every error this package raises on purpose."""


class UsageError(ExtError):
    """Wrong arguments or options: the CLI exits 2."""


class DataError(ExtError):
    """A problem in the user's data, located: ``file:line[:col]: reason — fix``. The CLI exits 1."""

    def __init__(self, path: str, line: int | None, reason: str, fix: str = "", col: int | None = None):
        self.path, self.line, self.col, self.reason, self.fix = str(path), line, col, reason, fix
        super().__init__(self.render())

    @property
    def where(self) -> str:
        parts = [self.path] + [str(n) for n in (self.line, self.col) if n is not None]
        return ":".join(parts)

    def render(self) -> str:
        return f"{self.where}: {self.reason}" + (f" — {self.fix}" if self.fix else "")

    def as_dict(self) -> dict:
        return {"file": self.path, "line": self.line, "col": self.col, "reason": self.reason, "fix": self.fix}


class RecipeError(ExtError):
    """An impossible or inconsistent recipe; the message names the YAML keys involved."""


class Interrupted(BaseException):
    """SIGINT / SIGTERM turned into an exception (a BaseException, so no ``except Exception`` swallows it).

    ``completed`` is set by the writer when the signal arrived after its commit (the files are in place)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum, self.completed = signum, False

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # the shell convention: 130 for Ctrl-C, 143 for SIGTERM


@contextmanager
def signals_as_exceptions() -> Iterator[None]:
    """SIGINT and SIGTERM raise Interrupted (exit 130 / 143) instead of killing the process mid-write."""
    def handler(signum, _frame):
        raise Interrupted(signum)

    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


class UnknownNameError(UsageError):
    """A name missing from a registry, with close matches."""

    def __init__(self, what: str, name: str, known: Iterable[str]):
        known = sorted(known)
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        super().__init__(f"Unknown {what} '{name}' — pick a known one.{hint} Available: {', '.join(known)}")
        self.name, self.close = name, close


def lookup(registry: dict, what: str, name: str):
    """``registry[name]``, or UnknownNameError with "did you mean" suggestions."""
    try:
        return registry[name]
    except KeyError:
        raise UnknownNameError(what, name, registry) from None


# Folders whose transaction committed in this process: a signal held during the renames may surface only after the
# writer returned, so the interrupt message asks this list, not only the exception, whether anything was updated.
COMMITTED: list[str] = []

INTERNAL_EXIT = 70  # why: EX_SOFTWARE from sysexits.h, "internal software error", apart from 1 (data) and 2 (usage)


def exit_code(run: Callable[[], int], *, debug: bool = False, write_target: object = None) -> int:
    """Run a CLI body; print our errors as ``error: …`` and map them to exit codes (1 data, 2 usage/recipe,
    130/143 interrupted, 70 internal error). No traceback reaches the user unless ``debug``: an unexpected
    error prints one line naming the log file that holds it.

    ``write_target`` names what an OSError failed to write (the writer guarantees nothing was changed)."""
    _tolerant_streams()
    try:
        return _guarded(run, debug, write_target)
    except Interrupted as exc:
        done = f"{write_target} was already updated" if exc.completed or COMMITTED else "nothing was changed"
        print(f"interrupted — {done}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted — nothing was changed", file=sys.stderr)
        return 128 + signal.SIGINT


def _tolerant_streams() -> None:
    """Text that cannot be encoded (a lone surrogate from the user's JSON) is escaped, never a crash on print."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")


def _guarded(run: Callable[[], int], debug: bool, write_target: object) -> int:
    try:
        return _mapped(run, debug, write_target)
    except (ExtError, OSError, Interrupted, KeyboardInterrupt):
        raise
    except Exception as exc:  # an unexpected internal error: one line, the traceback in a log file
        if debug:
            raise
        log = _log_traceback()
        print(f"internal error ({type(exc).__name__}: {str(exc)[:200]}) — the traceback is in {log}; "
              "please report it with that file, or rerun with --debug to see it", file=sys.stderr)
        return INTERNAL_EXIT


def _log_traceback() -> str:
    fd, path = tempfile.mkstemp(prefix=f"llamafactory_ext-error-{time.strftime('%Y%m%d-%H%M%S')}-", suffix=".log")
    with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as fh:
        fh.write(" ".join(sys.argv) + "\n" + traceback.format_exc())
    return path


def _mapped(run: Callable[[], int], debug: bool, write_target: object) -> int:
    try:
        return run()
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except ExtError as err:
        if debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        if debug:
            raise
        where = f"{err.filename}: " if err.filename else ""
        reason = err.strerror or str(err)
        tail = f" — nothing in {write_target} was changed" if write_target is not None else ""
        print(f"error: {where}{reason}{tail}", file=sys.stderr)
        return 1
