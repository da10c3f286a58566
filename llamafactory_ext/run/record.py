"""The run record (RUN flow: supervisor attempts → **run_record.json** next to the outputs → report).

One JSON file per output dir: the recipe, every attempt (why it ended, which settings changed, the step it
resumed from and reached), and the resume command. Pydantic with extra="forbid": the report reads it back.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..io import write_files

NAME = "run_record.json"
EVENTS = "run_events.jsonl"  # one row per Trainer log, written by the worker's callback
ALERTS = "alerts.jsonl"


class Attempt(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n: int
    started: float
    ended: float | None = None
    status: str = "running"  # done | stopped | oom | error | interrupted | running
    reason: str = ""
    message: str = ""
    changes: dict[str, list[Any]] = Field(default_factory=dict)  # LF key → [old, new]
    resumed_from: int | None = None  # the checkpoint step this attempt started from
    end_step: int | None = None
    global_batch: int | None = None
    command: list[str] = Field(default_factory=list)


class RunRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    recipe: str | None = None
    overrides: list[str] = Field(default_factory=list)
    args: dict[str, Any] = Field(default_factory=dict)
    started: float = Field(default_factory=time.time)
    ended: float | None = None
    status: str = "running"
    attempts: list[Attempt] = Field(default_factory=list)
    resume_command: str | None = None
    manifest: str | None = None  # build_dataset's manifest of the training data, when found


def save(record: RunRecord, output_dir: Path) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    write_files({output_dir / NAME: record.model_dump_json(indent=2) + "\n"})


def load(output_dir: Path) -> RunRecord | None:
    path = output_dir / NAME
    if not path.is_file():
        return None
    return RunRecord.model_validate_json(path.read_text(encoding="utf-8"))
