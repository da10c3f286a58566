"""The folder transaction under stress: concurrent runs, a SIGKILL at every write/rename step, SIGINT/SIGTERM.

Runs are real separate processes: forked children (fast: the package is already imported) for concurrency and
crash injection, `python -m` subprocesses for the signal tests. The kill hook is LFX_TEST_KILL_AT (see io.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llamafactory_ext import io, transaction
from llamafactory_ext.build_dataset import main

USER_INFO = {"mine": {"file_name": "mine.json", "formatting": "alpaca"}}
ROOT = Path(__file__).parents[1]


def alpaca(path: Path, n: int, tag: str) -> Path:
    rows = [{"instruction": f"{tag}问题{i}：什么是密钥{i}？", "input": "", "output": f"{tag}回答{i}：密钥{i}是秘密参数。"}
            for i in range(n)]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def user_folder(root: Path) -> Path:
    folder = root / "out"
    folder.mkdir()
    (folder / "dataset_info.json").write_text(json.dumps(USER_INFO), encoding="utf-8")
    (folder / "mine.json").write_text("[]", encoding="utf-8")
    return folder


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def fork_build(argv: list[str], env: dict[str, str] | None = None) -> int:
    """Run build_dataset in a forked child process; returns its pid (the child never returns)."""
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            os.environ.update(env or {})
            io._steps[0] = 0
            sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - the child exits right after
            code = main(argv)
        finally:
            os._exit(code)
    return pid


def wait(pid: int) -> int:
    """Exit code, or -signal for a child killed by a signal."""
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def args(src: Path, name: str, out: Path, *extra: str) -> list[str]:
    return ["alpaca", str(src), "--name", name, "--out", str(out), "--no-terms", "--no-near-dedup", "--quiet", *extra]


@pytest.fixture(scope="module", autouse=True)
def warm(tmp_path_factory) -> None:
    """One build in this process first, so forked children start with every module imported (fast runs)."""
    root = tmp_path_factory.mktemp("warm")
    assert main(args(alpaca(root / "w.jsonl", 12, "热"), "w", root / "out")) == 0


# ---------------------------------------------------------------- concurrency


def test_concurrent_runs_into_one_folder_keep_every_entry(tmp_path):
    srcs = [alpaca(tmp_path / f"s{i}.jsonl", 12, f"源{i}") for i in range(8)]
    started = time.monotonic()
    for loop in range(21):
        folder = tmp_path / f"loop{loop}"
        folder.mkdir()
        (folder / "dataset_info.json").write_text(json.dumps(USER_INFO), encoding="utf-8")
        n = 2 + loop % 7  # N = 2…8
        pids = [fork_build(args(srcs[i], f"d{i}", folder)) for i in range(n)]
        assert [wait(p) for p in pids] == [0] * n, f"loop {loop}"
        info = json.loads((folder / "dataset_info.json").read_text(encoding="utf-8"))
        expected = {"mine"} | {f"d{i}_{s}" for i in range(n) for s in ("train", "val", "test")}
        assert set(info) == expected, f"loop {loop}: missing {expected - set(info)}"
        assert info["mine"] == USER_INFO["mine"]
        assert all((folder / info[k]["file_name"]).is_file() for k in expected - {"mine"})
        assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]
    assert time.monotonic() - started < 90  # a lock that serialises, not one that stalls


# ---------------------------------------------------------------- crash injection


def visible(folder: Path) -> dict[str, object]:
    """The folder's files, temp files left out; a manifest without the fields that name the --out path."""
    out: dict[str, object] = {}
    for k, v in snapshot(folder).items():
        if k.endswith(".manifest.json"):
            v = {f: x for f, x in json.loads(v).items() if f not in ("command", "arguments")}
        if not k.startswith(io.PREFIX):
            out[k] = v
    return out


@pytest.mark.parametrize("overwrite", [False, True], ids=["new-name", "overwrite-existing"])
def test_sigkill_at_every_step_leaves_before_or_after_state(tmp_path, overwrite):
    src = alpaca(tmp_path / "a.jsonl", 20, "甲")
    base = user_folder(tmp_path)
    if overwrite:  # an earlier build of the same name, replaced by a different one
        assert main(args(alpaca(tmp_path / "old.jsonl", 20, "旧"), "x", base)) == 0
    before, before_view = snapshot(base), visible(base)
    extra = ["--overwrite", "--split", "100/0/0"] if overwrite else []  # with --overwrite, val/test files go
    ref = tmp_path / "ref"
    os.rename(base, ref)
    os.mkdir(base)
    for name, data in before.items():
        (base / name).write_bytes(data)
    assert main(args(src, "x", ref, *extra)) == 0
    after = visible(ref)
    kills = 0
    for k in range(1, 200):
        folder = tmp_path / f"k{k}"
        folder.mkdir()
        for name, data in before.items():
            (folder / name).write_bytes(data)
        code = wait(fork_build(args(src, "x", folder, *extra), {io.KILL_ENV: str(k)}))
        if code == 0:
            break  # k is past the last step: every step has been tried
        assert code == -signal.SIGKILL
        kills += 1
        info = json.loads((folder / "dataset_info.json").read_text(encoding="utf-8"))  # never absent or partial
        assert info["mine"] == USER_INFO["mine"]
        with transaction.folder_lock(folder):
            transaction.recover(folder)
        assert visible(folder) in (before_view, after), f"killed at step {k}"
        assert not [p for p in folder.iterdir() if p.name.startswith(io.PREFIX)]
        assert main(args(alpaca(tmp_path / "b.jsonl", 10, "乙"), "y", folder)) == 0  # the next run succeeds
        entries = json.loads((folder / "dataset_info.json").read_text(encoding="utf-8"))
        assert {"mine", "y_train"} <= set(entries)
    assert kills >= 10  # every write and rename of the run was hit


def test_next_run_cleans_a_killed_runs_leftovers_with_one_line(tmp_path, capfd):
    folder = user_folder(tmp_path)
    src = alpaca(tmp_path / "a.jsonl", 20, "甲")
    assert wait(fork_build(args(src, "x", folder), {io.KILL_ENV: "11"})) == -signal.SIGKILL  # mid-renames
    assert [p for p in folder.iterdir() if p.name.startswith(io.PREFIX)]  # the kill left temp files
    capfd.readouterr()
    assert main(args(src, "y", folder)) == 0
    err = capfd.readouterr().err
    assert err.count("cleaned up the files of an interrupted run") == 1 and "rolled back" in err
    assert not [p for p in folder.iterdir() if p.name.startswith(io.PREFIX)]
    assert set(json.loads((folder / "dataset_info.json").read_text())) == {"mine", "y_train", "y_val", "y_test"}


# ---------------------------------------------------------------- signals


@pytest.fixture(scope="module")
def big_belle(tmp_path_factory) -> Path:
    """A synthetic Belle file large enough that a build takes seconds (instruction/input/output rows)."""
    path = tmp_path_factory.mktemp("belle") / "Belle_open_source_0.5M.json"
    with path.open("w", encoding="utf-8") as fh:
        for i in range(60_000):
            fh.write(json.dumps({"instruction": f"请解释第{i}种分组密码工作模式的特点和用途。", "input": "",
                                 "output": f"第{i}种模式：" + "它把明文分组后依次加密，每组的结果影响下一组。" * 4},
                                ensure_ascii=False) + "\n")
    return path


def start(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "llamafactory_ext.build_dataset", *argv], cwd=cwd,
                            env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_mid_sample_exits_cleanly_and_changes_nothing(tmp_path, big_belle, sig):
    folder = user_folder(tmp_path)
    before = snapshot(folder)
    proc = start(["belle", str(big_belle), "--name", "b", "--out", str(folder), "--sample", "40000", "--no-terms"],
                 tmp_path)
    time.sleep(2.5)  # the interpreter has started and the sample is being converted
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err
    assert "Traceback" not in out + err
    assert err.strip().splitlines()[-1] == "interrupted — nothing was changed"
    assert snapshot(folder) == before and not [p for p in folder.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize(("step", "sig"), [(2, "TERM"), (5, "INT"), (14, "TERM")])
def test_signal_mid_write_removes_temp_files(tmp_path, big_belle, step, sig):
    folder = user_folder(tmp_path)
    before = snapshot(folder)
    proc = start(["belle", str(big_belle), "--name", "b", "--out", str(folder), "--sample", "300", "--no-terms"],
                 tmp_path, {io.KILL_ENV: f"{step}:{sig}"})
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + getattr(signal, f"SIG{sig}"), err
    assert "Traceback" not in out + err
    last = err.strip().splitlines()[-1]
    assert last.startswith("interrupted — ")
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]
    if last == "interrupted — nothing was changed":
        assert snapshot(folder) == before
    else:  # the signal came during the renames, which finish first: the build is complete
        assert "was already updated" in last
        assert {"mine", "b_train"} <= set(json.loads((folder / "dataset_info.json").read_text()))
