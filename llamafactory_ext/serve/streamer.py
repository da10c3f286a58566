"""A streamer for batched ``generate``: one text per row, decoded as tokens arrive, with each row's time to first
token (transformers' TextIteratorStreamer takes batch size 1 only)."""

from __future__ import annotations

import queue
import time
from collections.abc import Iterable


class BatchStreamer:
    """Pass as ``streamer=`` to generate(); read ``events`` (row, text so far) until None arrives."""

    def __init__(self, tokenizer, rows: int, stop_ids: Iterable[int]) -> None:
        self.tokenizer, self.rows, self.stop = tokenizer, rows, set(stop_ids)
        self.tokens: list[list[int]] = [[] for _ in range(rows)]
        self.done = [False] * rows
        self.texts = [""] * rows
        self.started = time.perf_counter()
        self.first: list[float | None] = [None] * rows
        self.finished: list[float | None] = [None] * rows
        self.events: queue.Queue = queue.Queue()
        self._prompt_seen = False

    def put(self, value) -> None:
        if not self._prompt_seen:  # generate() first pushes the prompt ids
            self._prompt_seen = True
            return
        now = time.perf_counter()
        for row, token in enumerate(value.reshape(self.rows, -1)[:, -1].tolist()):
            self._add(row, int(token), now)

    def _add(self, row: int, token: int, now: float) -> None:
        if self.done[row]:
            return
        if self.first[row] is None:
            self.first[row] = now - self.started
        if token in self.stop:
            self.done[row], self.finished[row] = True, now - self.started
            return
        self.tokens[row].append(token)
        self.texts[row] = self.tokenizer.decode(self.tokens[row], skip_special_tokens=True)
        self.events.put((row, self.texts[row]))

    def end(self) -> None:
        now = time.perf_counter() - self.started
        self.finished = [f if f is not None else now for f in self.finished]
        self.events.put(None)
