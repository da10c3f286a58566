"""--engine datatrove (issue 15): the per-sample stages as a datatrove pipeline step under its local executor, for
real on 2 worker processes, write what the local pool writes; its work folder, reuse and failures are one-line,
located messages, never a traceback."""

from __future__ import annotations

import importlib.util
import json
import tempfile
from pathlib import Path

import pytest

from llamafactory_ext import build_dataset
from llamafactory_ext.data import engine, parallel
from llamafactory_ext.errors import DataError, UsageError

REPO = Path(__file__).resolve().parent.parent
ROWS = 50_000  # issue 15: the engine path runs in the tests over ≥50k rows
SPLITS = ("train", "val", "test")


def _generator():
    spec = importlib.util.spec_from_file_location("build_scale", REPO / "bench" / "build_scale.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.build_file


@pytest.fixture(scope="module")
def belle_50k(tmp_path_factory) -> Path:
    """Belle-style rows of general Chinese text with ~1% exact and ~2% lightly edited copies (bench generator)."""
    path = tmp_path_factory.mktemp("engine") / "belle.jsonl"
    _generator()(path, ROWS, 7)
    return path


@pytest.fixture
def belle_small(tmp_path) -> Path:
    path = tmp_path / "small.jsonl"
    _generator()(path, 1500, 3)
    return path


def _build(source: Path, out: Path, sample: int, *extra: str) -> int:
    return build_dataset.main(["belle", str(source), "--name", "x", "--sample", str(sample), "--out", str(out),
                               "--workers", "2", "--quiet", *extra])


def _rows(path: Path) -> list[str]:
    return sorted(path.read_text(encoding="utf-8").splitlines())


def _manifest(folder: Path) -> dict:
    data = json.loads((folder / "x.manifest.json").read_text(encoding="utf-8"))
    return {k: v for k, v in data.items() if k not in ("command", "arguments")}  # these name --out and --engine


def test_datatrove_writes_what_the_local_pool_writes_at_50k_rows(belle_50k, tmp_path, capfd):
    work = tmp_path / "dt"
    assert _build(belle_50k, tmp_path / "A", ROWS) == 0
    assert _build(belle_50k, tmp_path / "B", ROWS, "--engine", "datatrove", "--engine-dir", str(work)) == 0
    a, b = tmp_path / "A", tmp_path / "B"
    assert json.loads((a / "dataset_info.json").read_text()) == json.loads((b / "dataset_info.json").read_text())
    for split in SPLITS:
        rows_a, rows_b = _rows(a / f"x_{split}.jsonl"), _rows(b / f"x_{split}.jsonl")
        assert rows_a == rows_b and len(rows_a) > 1000  # the same rows, order-insensitive (the bar) …
        assert (a / f"x_{split}.jsonl").read_bytes() == (b / f"x_{split}.jsonl").read_bytes()  # … and the same bytes
    manifest = _manifest(a)
    assert manifest == _manifest(b)
    assert manifest["counts"]["read"] == ROWS and manifest["drops"]["exact_duplicate"] > 100
    # The kept --engine-dir holds datatrove's own bookkeeping: a log per shard, stats, a completion per shard.
    shards = json.loads((work / "shards.json").read_text())
    assert len(shards) == 2 * engine.SHARDS_PER_WORKER
    assert len(list((work / "completions").iterdir())) == len(shards)
    assert "Processing done" in (work / "logs" / "task_00000.log").read_text(encoding="utf-8")
    assert json.loads((work / "stats.json").read_text())  # merged over the shards by the executor
    assert "Launching pipeline" not in capfd.readouterr().err  # datatrove's console logging stays off the console


def test_rerun_reuses_finished_shards_only_for_the_same_inputs(belle_small, tmp_path):
    work = tmp_path / "dt"
    assert _build(belle_small, tmp_path / "B1", 1500, "--engine", "datatrove", "--engine-dir", str(work)) == 0
    first = (work / "results" / "00000.pkl").stat().st_mtime_ns
    rows = _rows(tmp_path / "B1" / "x_train.jsonl")
    # Same inputs and options (the output folder is one: media paths are written relative to it).
    assert _build(belle_small, tmp_path / "B1", 1500, "--engine", "datatrove", "--engine-dir", str(work),
                  "--overwrite") == 0
    assert (work / "results" / "00000.pkl").stat().st_mtime_ns == first  # datatrove skipped the completed shard
    assert _rows(tmp_path / "B1" / "x_train.jsonl") == rows
    # Another sample in the same folder: every changed shard is recomputed, never read from the earlier run.
    assert _build(belle_small, tmp_path / "B3", 1000, "--engine", "datatrove", "--engine-dir", str(work)) == 0
    assert _build(belle_small, tmp_path / "A3", 1000) == 0
    for split in SPLITS:
        assert _rows(tmp_path / "B3" / f"x_{split}.jsonl") == _rows(tmp_path / "A3" / f"x_{split}.jsonl")


def test_engine_dir_that_cannot_be_a_folder_is_a_usage_error(belle_small, tmp_path, capsys):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file")
    assert _build(belle_small, tmp_path / "out", 100, "--engine", "datatrove", "--engine-dir", str(blocker)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --engine-dir") and "a file, not a folder" in err and "\n" not in err
    assert "Traceback" not in err and not (tmp_path / "out").exists()


def test_task_that_raises_in_a_worker_is_one_line_naming_its_log(tmp_path):
    tasks = [(list, "ab"), (int, "not a number"), (list, "cd")]  # int() raises ValueError inside the worker
    with pytest.raises(UsageError) as caught:
        list(engine.run(tasks, 2, tmp_path / "dt"))
    message = str(caught.value)
    assert "task 1 (int)" in message and "ValueError" in message and "\n" not in message
    log = Path(message.split("the traceback is in ")[1].split(";")[0])
    assert log.is_relative_to(tmp_path / "dt") and "invalid literal" in log.read_text(encoding="utf-8")


def test_failed_task_in_a_temporary_folder_keeps_a_copy_of_its_log(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the temporary work folder and the copy go
    with pytest.raises(UsageError) as caught:
        list(engine.run([(int, "x"), (list, "ab")], 2))
    log = Path(str(caught.value).split("the traceback is in ")[1].split(";")[0])
    assert log.parent == tmp_path and "ValueError" in log.read_text(encoding="utf-8")
    assert [p.name for p in tmp_path.iterdir()] == [log.name]  # the work folder itself is gone


def test_reader_error_reaches_the_caller_and_the_folder_is_removed(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    def tasks():
        yield (list, "ab")
        raise DataError("in.jsonl", 3, "unreadable row", "fix it")

    with pytest.raises(DataError, match="in.jsonl:3: unreadable row"):
        list(engine.run(tasks(), 2))
    assert list(tmp_path.iterdir()) == []


def test_results_come_back_in_task_order_for_any_worker_count(tmp_path):
    tasks = [(list, f"{i:03d}") for i in range(30)]
    expected = list(parallel.run(tasks, 1))
    assert list(engine.run(tasks, 1)) == expected  # one worker: the ranks run in this process
    assert list(engine.run(tasks, 2, tmp_path / "dt")) == expected
    assert list(engine.run([], 2)) == []


def test_unknown_executor_names_the_choices(monkeypatch):
    monkeypatch.setenv(engine.EXECUTOR_ENV, "spark")
    with pytest.raises(UsageError, match="local, slurm, ray"):
        list(engine.run([(list, "ab")], 2))


def test_ctrl_c_while_the_workers_run_is_one_line_and_removes_the_work_folder(belle_50k, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    command = [sys.executable, "-m", "llamafactory_ext.build_dataset", "belle", str(belle_50k), "--name", "x",
               "--sample", str(ROWS), "--out", str(tmp_path / "out"), "--workers", "2", "--engine", "datatrove"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TMPDIR": str(scratch)}, start_new_session=True)
    deadline = time.monotonic() + 60
    while not list(scratch.glob("*/logs/task_*.log")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert list(scratch.glob("*/logs/task_*.log")), "datatrove's workers never started"
    os.killpg(proc.pid, signal.SIGINT)  # as Ctrl-C in a terminal: the whole process group
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err.strip().splitlines()[-1] == "interrupted — nothing was changed" and "Traceback" not in err
    assert list(scratch.glob("llamafactory_ext-datatrove-*")) == [] and not (tmp_path / "out").exists()


def test_cluster_executors_are_built_only_when_chosen_and_refuse_plainly_here(tmp_path):
    tasks = [(list, "ab")]
    with pytest.raises(UsageError, match="--engine-dir on storage every node sees"):
        list(engine.run(tasks, 2, executor="slurm"))
    with pytest.raises(UsageError, match="partition="):  # datatrove's SlurmPipelineExecutor requires it
        list(engine.run(tasks, 2, tmp_path / "dt", executor="slurm"))
    with pytest.raises(UsageError, match="sbatch"):  # built for real; no Slurm on this machine
        list(engine.run(tasks, 2, tmp_path / "dt", executor="slurm", partition="cpu", time="1:00:00"))
    with pytest.raises(UsageError, match="pip install ray"):
        list(engine.run(tasks, 2, tmp_path / "dt", executor="ray"))
