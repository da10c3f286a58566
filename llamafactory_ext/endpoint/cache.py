"""Content-addressed response cache on disk (SQLite): successes only, committed one by one.

The key is a sha256 of endpoint + model + messages + sampling parameters + prompt version (never the API key), so
an interrupted run — even by ``kill -9`` — continues where it stopped and never pays twice for a finished item,
while a changed prompt or setting asks again. A failure is never stored, so it is retried on the next run.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from pathlib import Path

_SCHEMA = "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, response TEXT NOT NULL, created REAL)"


def cache_key(endpoint: str, model: str, messages: list[dict], params: dict, prompt_version: str = "") -> str:
    """Stable key: canonical JSON (sorted keys, no whitespace variance) of everything that decides the answer."""
    payload = {"endpoint": endpoint.rstrip("/"), "model": model, "messages": messages, "params": params,
               "prompt_version": prompt_version}
    text = json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class ResponseCache:
    """Thread-safe get/put over one SQLite file (WAL, so a reader never blocks the writer)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        # why: autocommit (isolation_level=None) — each put is durable on its own, which is what survives kill -9
        self._db = sqlite3.connect(str(path), timeout=30, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)

    def get(self, key: str) -> dict | None:
        with self._lock:
            row = self._db.execute("SELECT response FROM responses WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, response: dict) -> None:
        text = json.dumps(response, ensure_ascii=False)
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO responses VALUES (?, ?, julianday('now'))", (key, text))

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
