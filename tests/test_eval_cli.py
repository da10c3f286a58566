"""The evaluate CLI on its own: help, metrics on a predictions file, and located errors instead of tracebacks."""

from __future__ import annotations

import json

import pytest
from eval_support import FIXTURES

from llamafactory_ext.evaluate import main


@pytest.mark.parametrize("cmd", [[], ["metrics"], ["compare"], ["ppl"], ["review-export"], ["review-import"],
                                 ["verify-export"], ["report"]])
def test_help(cmd, capsys):
    assert main([*cmd, "--help"]) == 0
    assert "usage:" in capsys.readouterr().out


def test_metrics_on_a_predictions_file_writes_samples_totals_and_a_table(tmp_path, capsys):
    src = FIXTURES / "predictions_zh.jsonl"
    (tmp_path / "generated_predictions.jsonl").write_bytes(src.read_bytes())
    assert main(["metrics", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    totals = json.loads((tmp_path / "eval" / "eval_totals.json").read_text(encoding="utf-8"))
    assert totals["samples"] == 9 and totals["terms"]["source"] == "tagged references"
    assert totals["thinking"]["failures"]["not_truncated"] == 0  # no tokenizer: unchecked, not failed
    assert "bleu-4" in out and "thinking compliance" in out


def test_bad_predictions_line_is_located(tmp_path, capsys):
    path = tmp_path / "generated_predictions.jsonl"
    path.write_text('{"predict": "a", "label": "b"}\n{"predict": "a"}\n', encoding="utf-8")
    assert main(["metrics", str(path)]) == 1
    assert f"{path}:2: needs the keys predict and label" in capsys.readouterr().err


def test_missing_inputs_are_usage_errors(tmp_path, capsys):
    assert main(["metrics", str(tmp_path)]) == 2
    assert "generated_predictions.jsonl not found" in capsys.readouterr().err
    assert main(["compare", str(tmp_path), str(tmp_path)]) == 2
    assert "run `python -m llamafactory_ext.evaluate metrics`" in capsys.readouterr().err
    assert main(["review-import", str(tmp_path), str(tmp_path / "a.csv")]) == 2
    assert "pass the folder written by review-export" in capsys.readouterr().err
