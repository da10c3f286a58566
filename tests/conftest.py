"""Shared test fixtures: tiny models built once per session, a runner for the real `llamafactory-cli`, and the CI rule.

CI rule: with CI=true in the environment, a skipped test marked `lf` (or a module skipped over a missing
llamafactory) fails the whole session, so a broken install never turns end-to-end tests into silent skips.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from tiny_models import build_gemma3, build_qwen3, build_qwen3_real_vocab

TAIL_CHARS = 6000  # enough for a Python traceback plus LF's last log lines

# Offline, CPU-only, quiet: the run must not reach the hub, a GPU, wandb or a version server.
LF_ENV = {
    "DISABLE_VERSION_CHECK": "1",
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "WANDB_DISABLED": "true",
    "CUDA_VISIBLE_DEVICES": "",
    "TOKENIZERS_PARALLELISM": "false",
    "MPLBACKEND": "Agg",  # plot_loss must not look for a display
}

pytest_plugins = ["pytester"]  # lets test_tiny_models check the CI rule in a throwaway session

RunLF = Callable[..., subprocess.CompletedProcess]


@pytest.fixture(scope="session")
def tiny_qwen3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_qwen3(tmp_path_factory.mktemp("tiny_qwen3"))


@pytest.fixture(scope="session")
def tiny_qwen3_real(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Qwen3's real vocabulary (rebuilt from the shipped ranks, <think> = 151667) on a 1-layer random model: for
    tests where token ids, label masks, truncation and cutoff must be Qwen's own. ~10 s to build."""
    return build_qwen3_real_vocab(tmp_path_factory.mktemp("tiny_qwen3_real"))


@pytest.fixture(scope="session")
def tiny_gemma3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_gemma3(tmp_path_factory.mktemp("tiny_gemma3"))


def lf_command(args: list[str]) -> list[str]:
    """`llamafactory-cli ARGS` via the module: works whether or not the console script is on PATH."""
    return [sys.executable, "-m", "llamafactory.cli", *args]


def _tail(proc: subprocess.CompletedProcess) -> str:
    return f"--- stdout (tail) ---\n{proc.stdout[-TAIL_CHARS:]}\n--- stderr (tail) ---\n{proc.stderr[-TAIL_CHARS:]}"


@pytest.fixture(scope="session")
def run_lf(tmp_path_factory: pytest.TempPathFactory) -> RunLF:
    """Returns run(args, cwd, timeout=600, check=True): runs the real CLI; check=True asserts exit 0 with the tail."""
    # A private datasets cache: tests never write into ~/.cache and never see another run's stale Arrow files.
    cache = tmp_path_factory.mktemp("hf_datasets_cache")

    def run(args: list[str], cwd: Path, timeout: int = 600, check: bool = True) -> subprocess.CompletedProcess:
        env = {**os.environ, **LF_ENV, "HF_DATASETS_CACHE": str(cache)}
        proc = subprocess.run(
            lf_command(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check:
            assert proc.returncode == 0, f"llamafactory-cli {' '.join(args)} exited {proc.returncode}\n{_tail(proc)}"
        return proc

    return run


_skipped_lf: list[str] = []  # node ids; one pytest process per session, so a module list is enough


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and "lf" in report.keywords and not hasattr(report, "wasxfail"):
        _skipped_lf.append(report.nodeid)


def pytest_collectreport(report: pytest.CollectReport) -> None:
    # A module-level skip on a missing llamafactory hides its tests before any marker is seen: catch it by reason.
    if report.skipped and "llamafactory" in str(report.longrepr):
        _skipped_lf.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("CI", "").lower() != "true" or not _skipped_lf:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"CI=true: LLaMA-Factory tests must run, but these were skipped: {_skipped_lf}", red=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
