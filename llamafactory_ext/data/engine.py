"""``--engine datatrove``: the per-sample tasks of data/parallel.py as one datatrove pipeline step, run by its
executors — local processes here, Slurm or Ray on a cluster — instead of this machine's pool.

Flow: the caller's tasks are spooled to ``tasks.pkl`` in the work folder (a pickle stream, read lazily, so a reader
error raises in the caller as with parallel.run), cut into contiguous shards (a few per worker, so the executor
balances them); datatrove runs ``ShardStep`` on each shard rank (``parallel._do`` on every task, results written
to ``results/RANK.pkl``), keeping its own logs, stats and completion markers in the same folder; the results are
then read back shard by shard, one task's results at a time, in task order.

Exactness: the same functions run on the same tasks, and the order-dependent decisions (dedup, split) stay in the
caller, fed in task order — so the rows, entries and manifest counts are those of the local path.

Reuse: with a kept ``--engine-dir`` a rerun skips shards datatrove marked complete only when the shard's digest
(its task bytes, this package's data code and lexicons, the user lexicon and key library versions) is unchanged;
a changed shard loses its completion and result first. One build per engine folder at a time.

Tested here: the local executor (real processes, 2 workers). Slurm and Ray are only constructed when chosen
(``executor=`` or ``LLAMAFACTORY_EXT_EXECUTOR``) and are not tested: no cluster or ray package here.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from itertools import pairwise
from pathlib import Path

from ..errors import UsageError
from . import parallel

try:  # the step must be a module-level class (workers unpickle it); a missing datatrove is a UsageError in run()
    from datatrove.executor.local import LocalPipelineExecutor
    from datatrove.pipeline.base import PipelineStep
except ImportError as _err:  # pragma: no cover - datatrove is a dependency
    LocalPipelineExecutor, PipelineStep, _MISSING = object, object, _err  # type: ignore[misc,assignment]
else:
    _MISSING = None

EXECUTOR_ENV = "LLAMAFACTORY_EXT_EXECUTOR"  # local | slurm | ray, when run() is not told
EXECUTORS = ("local", "slurm", "ray")
SHARDS_PER_WORKER = 4  # why: shards are uneven (dedup-heavy or long rows); 4 each keeps the last round short
SLURM_POLL_S = 30  # why: sbatch returns at once; completions on shared storage are checked this often
VERSIONED = ("datatrove", "jieba", "opencc", "datasketch", "numpy", "xxhash")  # their output decides the rows


@dataclass(frozen=True)
class Shard:
    """Tasks ``first`` .. ``first + count - 1``, bytes ``start`` .. ``end`` of tasks.pkl; ``digest`` names them."""

    first: int
    count: int
    start: int
    end: int
    digest: str


class TaskFailed(RuntimeError):
    """A task raised inside a worker; crosses processes by pickle (its arguments rebuild it)."""

    def __init__(self, rank: int, message: str):
        super().__init__(rank, message)
        self.rank, self.message = rank, message

    def __str__(self) -> str:
        return self.message


def run(tasks: Iterable[tuple], workers: int, workdir: Path | None = None, executor: str | None = None,
        **options) -> Iterator[parallel.Result]:
    """Same contract as parallel.run (results in task order), but the tasks run as a datatrove pipeline step under
    its LocalPipelineExecutor(tasks=<shards>, workers=workers), or its Slurm / Ray executor (``options`` go to it,
    e.g. partition= and time= for Slurm). ``workdir`` None: a temporary folder, removed at the end.

    Slurm (untested here): sbatch array jobs load the pickled executor, so every node needs this package and the
    same environment (options env_command= / venv_path=), and ``workdir`` on shared storage; this process waits
    for the completions and then reads the results. Ray (untested here): ``ray.init()`` must have run (a cluster,
    or a local instance) and ``workdir`` must be seen by every node."""
    kind = _kind(executor)
    if kind == "slurm" and workdir is None:
        raise UsageError("datatrove on Slurm needs --engine-dir on storage every node sees (the tasks, results and "
                         "logs go there) — pass one")
    if _MISSING is not None:
        raise UsageError(f"--engine datatrove needs the datatrove package ({_MISSING}) — "
                         "pip install 'datatrove==0.10.1', or use --engine local")
    with _folder(workdir) as folder:
        shards = spool(tasks, folder, max(1, workers))
        if shards:
            _execute(kind, shards, folder, max(1, workers), options, kept=workdir is not None)
            yield from results(folder, shards)


def _kind(executor: str | None) -> str:
    kind = executor or os.environ.get(EXECUTOR_ENV) or "local"
    if kind not in EXECUTORS:
        raise UsageError(f"datatrove executor '{kind}' (from {EXECUTOR_ENV} or executor=) is unknown — "
                         f"pick one of {', '.join(EXECUTORS)}")
    return kind


@contextlib.contextmanager
def _folder(workdir: Path | None) -> Iterator[Path]:
    """The user's folder, created and kept; else a temporary one removed at the end, also on errors and Ctrl-C."""
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="llamafactory_ext-datatrove-") as tmp:
            yield Path(tmp)
        return
    try:
        if workdir.exists() and not workdir.is_dir():
            raise NotADirectoryError(20, "it is a file, not a folder")
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "tasks.pkl.partial").touch()
    except OSError as err:
        raise UsageError(f"--engine-dir {workdir}: cannot use it as datatrove's work folder "
                         f"({err.strerror or err}) — give a writable folder (on a cluster: shared storage)") from None
    yield workdir.resolve()


# ---------------------------------------------------------------- tasks → shard files


def spool(tasks: Iterable[tuple], folder: Path, workers: int) -> list[Shard]:
    """Write the tasks to tasks.pkl (consuming the iterable) and cut them into shards; stale results of a changed
    shard are removed, so a kept folder never returns results of other inputs."""
    offsets, digests, salt = [0], [], b""
    partial = folder / "tasks.pkl.partial"
    with _writable(folder):
        (folder / "results").mkdir(exist_ok=True)
        f = partial.open("wb")
    with f:
        for task in tasks:  # a reader error raises here, in the caller, unchanged
            data = pickle.dumps(task, protocol=pickle.HIGHEST_PROTOCOL)
            salt = salt or _salt(task)
            with _writable(folder):
                f.write(data)
            offsets.append(offsets[-1] + len(data))
            digests.append(hashlib.sha256(data).digest())
    shards = _cut(offsets, digests, salt, workers * SHARDS_PER_WORKER)
    with _writable(folder):
        _invalidate(folder, shards)
        os.replace(partial, folder / "tasks.pkl")
        (folder / "shards.json").write_text(json.dumps([asdict(s) for s in shards]))
    return shards


def _cut(offsets: list[int], digests: list[bytes], salt: bytes, most: int) -> list[Shard]:
    n = len(digests)
    count = min(n, most)
    bounds = [n * i // count for i in range(count + 1)] if count else [0]
    return [Shard(a, b - a, offsets[a], offsets[b], hashlib.sha256(salt + b"".join(digests[a:b])).hexdigest())
            for a, b in pairwise(bounds)]


def _salt(task: tuple) -> bytes:
    """What else decides a task's results: this package's data code and lexicons, the user lexicon, versions."""
    from importlib.metadata import PackageNotFoundError, version

    h = hashlib.sha256(sys.version.encode())
    here = Path(__file__).parent
    for path in sorted(p for p in here.rglob("*") if p.is_file() and p.suffix != ".pyc"):
        h.update(str(path.relative_to(here)).encode() + path.read_bytes())
    lexicon = next((a.lexicon for a in task[1:] if isinstance(a, parallel.Stages) and a.lexicon), None)
    if lexicon is not None:
        h.update(Path(lexicon).read_bytes() if Path(lexicon).is_file() else str(lexicon).encode())
    for name in VERSIONED:
        with contextlib.suppress(PackageNotFoundError):
            h.update(f"{name}={version(name)}".encode())
    return h.digest()


def _invalidate(folder: Path, shards: list[Shard]) -> None:
    """Drop completions and results of shards whose digest changed (or that no longer exist)."""
    old = folder / "shards.json"
    before = [Shard(**s) for s in json.loads(old.read_text())] if old.is_file() else []
    for rank in range(max(len(before), len(shards))):
        result = folder / "results" / f"{rank:05d}.pkl"
        if rank < min(len(before), len(shards)) and before[rank].digest == shards[rank].digest and result.is_file():
            continue
        for stale in (folder / "completions" / f"{rank:05d}", result):
            stale.unlink(missing_ok=True)
    for leftover in (folder / "results").glob("*.partial"):  # from a task killed in an earlier run
        leftover.unlink(missing_ok=True)


@contextlib.contextmanager
def _writable(folder: Path) -> Iterator[None]:
    try:
        yield
    except OSError as err:
        raise UsageError(f"datatrove's work folder {folder}: {err.strerror or err} — free space there or give "
                         "another --engine-dir") from None


# ---------------------------------------------------------------- the datatrove step (runs in the workers)


class ShardStep(PipelineStep):  # type: ignore[misc,valid-type]
    """Runs the tasks of shard ``rank``: ``parallel._do`` on each, results appended to results/RANK.pkl."""

    name = "llamafactory_ext per-sample stages"
    type = "🧮 - PROCESS"

    def __init__(self, folder: str, shards: list[Shard]):
        super().__init__()
        self.folder, self.shards = folder, shards

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        shard, folder = self.shards[rank], Path(self.folder)
        out = folder / "results" / f"{rank:05d}.pkl"
        partial = out.with_name(f"{out.name}.{os.getpid()}.partial")  # why: a killed task leaves no result
        with self.track_time("shard"), (folder / "tasks.pkl").open("rb") as f, partial.open("wb") as w:
            f.seek(shard.start)
            pickle.dump(shard.digest, w)
            for index in range(shard.first, shard.first + shard.count):
                batch = self._do(pickle.load(f), index, rank)
                pickle.dump(batch, w, protocol=pickle.HIGHEST_PROTOCOL)
                self.stat_update("tasks")
                self.stat_update("results", value=len(batch), unit="task")
        os.replace(partial, out)
        yield from ()

    @staticmethod
    def _do(task: tuple, index: int, rank: int) -> list:
        try:
            return parallel._do(task)
        except Exception as exc:
            raise TaskFailed(rank, f"task {index} ({getattr(task[0], '__name__', task[0])}) of shard {rank} raised "
                             f"{type(exc).__name__}: {exc}") from exc


class QuietLocalExecutor(LocalPipelineExecutor):  # type: ignore[misc,valid-type]
    """datatrove's local executor with the console left to the build: its workers' output goes to
    logs/workers.log, Ctrl-C is handled by the parent only (as in parallel.py)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.parent_pid = os.getpid()

    def run(self):
        if self.workers > 1:
            _forkserver_without_sigint()
        return super().run()

    def _run_for_rank(self, rank: int, local_rank: int = 0, node_rank: int = -1):
        if os.getpid() != self.parent_pid:
            _detach_worker(Path(self.logging_dir.path) / "logs" / "workers.log")
            return super()._run_for_rank(rank, local_rank, node_rank)
        with _no_console(self.logging_dir.path):  # workers=1: the ranks run in this process
            return super()._run_for_rank(rank, local_rank, node_rank)


def _forkserver_without_sigint() -> None:
    """Start multiprocess's forkserver with SIGINT ignored: a Python started so keeps it ignored and so do the pool
    workers forked from it — else Ctrl-C prints a worker's KeyboardInterrupt traceback before its first task."""
    import threading

    from multiprocess import forkserver

    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        forkserver.ensure_running()
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        forkserver.ensure_running()
    finally:
        signal.signal(signal.SIGINT, old)


_DETACHED: list[int] = []


def _detach_worker(log: Path) -> None:
    """Once per worker process: stdout/stderr (loguru's console sink, C-level output) into the log file."""
    if os.getpid() in _DETACHED:
        return
    _DETACHED.append(os.getpid())
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    for target in (1, 2):
        os.dup2(fd, target)
    os.close(fd)


@contextlib.contextmanager
def _no_console(folder: str) -> Iterator[None]:
    """datatrove's loguru sinks off the console: its task logger adds ``sys.stderr`` as it is when called."""
    from datatrove.utils.logging import logger

    saved, sys.stderr = sys.stderr, open(os.devnull, "w")  # noqa: SIM115 - closed below
    try:
        yield
    finally:
        sys.stderr.close()
        sys.stderr = saved
        logger.remove()
        logger.add(Path(folder) / "logs" / "executor.log", level="DEBUG")


# ---------------------------------------------------------------- executors


def _execute(kind: str, shards: list[Shard], folder: Path, workers: int, options: dict, kept: bool) -> None:
    from datatrove.utils.logging import logger, setup_default_logger

    pipeline = [ShardStep(str(folder), shards)]
    (folder / "logs").mkdir(exist_ok=True)
    logger.remove()
    logger.add(folder / "logs" / "executor.log", level="DEBUG")
    try:
        executor = _executor(kind, pipeline, len(shards), workers, folder, options)
        _launch(executor, kind)
    except TaskFailed as exc:
        raise UsageError(f"datatrove {exc} — {_where_logged(folder, exc.rank, kept)}") from None
    except ImportError as err:  # e.g. ray, imported by datatrove only when its executor runs
        raise UsageError(f"datatrove's {kind} executor: {err} — install it, or use the local executor") from None
    except OSError as err:
        raise UsageError(f"datatrove's work folder {folder}: {err.strerror or err} — "
                         "free space there or give another --engine-dir") from None
    finally:
        setup_default_logger()  # datatrove's own default (stderr), as after `import datatrove`
    missing = executor.get_incomplete_ranks(skip_completed=True)
    if missing:
        raise UsageError(f"datatrove left {len(missing)} of {len(shards)} shards unfinished (first: {missing[0]}) — "
                         f"{_where_logged(folder, missing[0], kept)}")


def _executor(kind: str, pipeline: list, tasks: int, workers: int, folder: Path, options: dict):
    """The chosen datatrove executor; ``options`` (e.g. Slurm's partition= and time=) override the defaults."""
    common = {"tasks": tasks, "logging_dir": str(folder), "skip_completed": True}
    if kind == "local":
        return QuietLocalExecutor(pipeline, **common | {"workers": min(workers, tasks)} | options)
    try:
        if kind == "slurm":
            from datatrove.executor.slurm import SlurmPipelineExecutor

            return SlurmPipelineExecutor(pipeline, **common | options)  # workers: the cluster's limit, not ours
        from datatrove.executor.ray import RayPipelineExecutor

        return RayPipelineExecutor(pipeline, **common | {"workers": workers} | options)
    except TypeError as err:
        raise UsageError(f"datatrove's {kind} executor: {err} — pass its required options "
                         "(slurm: partition=, time=)") from None


def _launch(executor, kind: str) -> None:
    """Run every shard; sbatch returns at once, so for Slurm wait for the completions (or the job's end)."""
    if kind == "slurm" and shutil.which("sbatch") is None:
        raise UsageError("datatrove's Slurm executor needs sbatch, which is not on PATH — run the build on the "
                         "cluster's login node, or use the local executor")
    executor.run()
    while kind == "slurm" and executor.get_incomplete_ranks():
        job = str(getattr(executor, "job_id", "") or "")
        queued = subprocess.run(["squeue", "-h", "-j", job], capture_output=True, text=True).stdout if job else ""
        if not queued.strip():
            return  # the job is gone: the check for unfinished shards reports it
        time.sleep(SLURM_POLL_S)


def _where_logged(folder: Path, rank: int, kept: bool) -> str:
    """Where the traceback is: the kept folder's task log, or a copy of it (the temporary folder goes away)."""
    log = folder / "logs" / f"task_{rank:05d}.log"
    if not log.is_file():
        log = folder / "logs"
    elif not kept:
        fd, copy = tempfile.mkstemp(prefix="llamafactory_ext-datatrove-", suffix=".log")
        os.close(fd)
        shutil.copyfile(log, copy)
        log = Path(copy)
    return f"the traceback is in {log}; rerun with --engine local to compare, or report it with that log"


# ---------------------------------------------------------------- results, in task order


def results(folder: Path, shards: list[Shard]) -> Iterator[parallel.Result]:
    """Every shard's results in order, one task's batch in memory at a time."""
    for rank, shard in enumerate(shards):
        path = folder / "results" / f"{rank:05d}.pkl"
        with path.open("rb") as f:
            if pickle.load(f) != shard.digest:
                raise UsageError(f"{path}: results of other inputs (another build used this --engine-dir at "
                                 "the same time?) — rerun with a folder of its own")
            for _ in range(shard.count):
                yield from parallel._thaw(pickle.load(f))
