"""One exception family. Every message names the place (file:line, or the key) and the fix.

Library code raises; only the CLIs catch, print and choose the exit code (1 data, 2 usage).
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Callable, Iterable


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


class UnknownNameError(UsageError):
    """A name missing from a registry, with close matches."""

    def __init__(self, what: str, name: str, known: Iterable[str]):
        known = sorted(known)
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        super().__init__(f"Unknown {what} '{name}'.{hint} Available: {', '.join(known)}")
        self.name, self.close = name, close


def lookup(registry: dict, what: str, name: str):
    """``registry[name]``, or UnknownNameError with "did you mean" suggestions."""
    try:
        return registry[name]
    except KeyError:
        raise UnknownNameError(what, name, registry) from None


def exit_code(run: Callable[[], int], *, debug: bool = False, write_target: object = None) -> int:
    """Run a CLI body; print our errors as ``error: …`` and map them to exit codes (1 data, 2 usage/recipe).

    ``write_target`` names what an OSError failed to write (the writer guarantees nothing was changed)."""
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
        if debug or write_target is None:
            raise
        print(f"error: {err} — nothing in {write_target} was changed", file=sys.stderr)
        return 1
