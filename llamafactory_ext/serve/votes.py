"""Blind-mode bookkeeping: which column hid behind A and B (``blind_map.jsonl``) and the votes
(``votes.jsonl``), kept in two files so a reviewer reading the votes never sees the systems; read back as
ranking.Vote records for the Bradley–Terry ranking (here and in the evaluation report)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..io import read_jsonl_tolerant
from .ranking import OUTCOMES, Vote

MAP_FILE, VOTES_FILE = "blind_map.jsonl", "votes.jsonl"


def record_round(folder: Path, round_id: str, prompt: str, a: str, b: str) -> None:
    _append(folder / MAP_FILE, {"round": round_id, "A": a, "B": b, "prompt": prompt, "time": time.time()})


def record_vote(folder: Path, round_id: str, outcome: str) -> None:
    if outcome not in OUTCOMES:
        raise ValueError(f"vote outcome {outcome!r}: expected one of {', '.join(OUTCOMES)}")
    _append(folder / VOTES_FILE, {"round": round_id, "outcome": outcome, "time": time.time()})


def read_votes(folder: Path) -> list[Vote]:
    """Votes joined with the mapping; the last vote of a round counts (a reviewer may change their mind)."""
    rounds = {r["round"]: r for r in read_jsonl_tolerant(folder / MAP_FILE)}
    last = {v["round"]: v["outcome"] for v in read_jsonl_tolerant(folder / VOTES_FILE)}
    return [Vote(rounds[k]["A"], rounds[k]["B"], o) for k, o in last.items() if k in rounds]


def _append(path: Path, row: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:  # one line per write: a crash loses at most the line in flight
        f.write(json.dumps(row, ensure_ascii=False) + "\n")
