"""Pre-flight on the real CLI: each failure exits non-zero with the fix, before torch or any model is loaded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from run_support import lf_env, recipe_args, write_dataset, write_recipe

# Runs main() in a fresh interpreter and reports whether torch was ever imported: a model cannot be loaded without it.
PROBE = ("import sys; from llamafactory_ext.train import main; rc = main(sys.argv[1:]); "
         "print('TORCH_IMPORTED', 'torch' in sys.modules); sys.exit(rc)")


def preflight(recipe: Path, *extra: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PROBE, str(recipe), *extra], cwd=cwd, env=lf_env(cwd / "cache"),
                          capture_output=True, text=True, timeout=300, check=False, stdin=subprocess.DEVNULL)


@pytest.fixture
def setup(tmp_path, tiny_qwen3):
    data = write_dataset(tmp_path / "data")
    return tmp_path, recipe_args(tiny_qwen3, data, Path("out"))


def _blocked(tmp: Path) -> str:
    (tmp / "blocker").write_text("a file where a folder should be")
    return str(tmp / "blocker" / "out")


CASES = {
    "missing dataset file": (lambda t, a: (t / "data" / "tiny.json").unlink() or {}, "dataset", "not found"),
    "unknown template": (lambda t, a: {"template": "qwen33"}, "template", "did you mean qwen3"),
    "wrong model path": (lambda t, a: {"model_name_or_path": str(t / "no_such_model")}, "model_name_or_path",
                         "fix the path"),
    "unwritable output dir": (lambda t, a: {"output_dir": _blocked(t)}, "output_dir", "writable output_dir"),
    "too little disk": (lambda t, a: {"save_steps": 1, "max_steps": 10**9}, "save_steps", "save_total_limit"),
    "bf16 without a GPU": (lambda t, a: {"bf16": True}, "bf16", "bf16=false"),
}


@pytest.mark.parametrize("case", CASES)
def test_preflight_failure_exits_before_loading_anything(setup, case):
    tmp, args = setup
    change, key, fix = CASES[case]
    recipe = write_recipe(tmp / "r.yaml", {**args, **change(tmp, args)})
    proc = preflight(recipe, "--yes", cwd=tmp)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "pre-flight failed" in proc.stderr and f"{key}:" in proc.stderr and fix in proc.stderr, proc.stderr
    assert "TORCH_IMPORTED False" in proc.stdout and not (tmp / "out").exists()


def test_without_a_terminal_and_without_yes_it_refuses_with_the_reason(setup):
    tmp, args = setup
    proc = preflight(write_recipe(tmp / "r.yaml", args), "--skip-lf-check", cwd=tmp)
    assert proc.returncode == 2 and "pass --yes" in proc.stderr
    assert "global 2" in proc.stdout  # the summary came first
    assert "TORCH_IMPORTED False" in proc.stdout and not (tmp / "out").exists()


@pytest.mark.lf
def test_lf_own_check_runs_before_launch(setup):
    tmp, args = setup
    # LF's parser refuses do_predict without predict_with_generate in SFT; our pure checks leave that to LF
    recipe = write_recipe(tmp / "r.yaml", {**args, "do_predict": True})
    proc = preflight(recipe, "--yes", cwd=tmp)
    assert proc.returncode == 2 and "LLaMA-Factory 0.9.5 rejects" in proc.stderr, proc.stderr
    assert "TORCH_IMPORTED False" in proc.stdout and not (tmp / "out").exists()


def test_cli_help_and_usage_errors(tmp_path, capsys):
    from llamafactory_ext.train import main

    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    assert main([str(tmp_path / "missing.yaml")]) == 2
    capsys.readouterr()
    # a typo in --stop-on is refused before the recipe is even read, also with --dry-run
    assert main([str(tmp_path / "missing.yaml"), "--stop-on", "nan", "--dry-run"]) == 2
    assert "nan" in capsys.readouterr().err
