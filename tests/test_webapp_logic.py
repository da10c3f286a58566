"""Web-app logic without a browser: Bradley–Terry against hand-computed values, the self-test verdict, votes kept
apart from the blind mapping, reasoning folded for both think forms, prompt limits."""

from __future__ import annotations

import math

import numpy as np
import pytest

from llamafactory_ext.serve.app import MAX_PROMPT_CHARS, check_prompt, messages
from llamafactory_ext.serve.ranking import Vote, fit, rank, win_matrix
from llamafactory_ext.serve.selftest import Probe, verdict
from llamafactory_ext.serve.votes import MAP_FILE, VOTES_FILE, read_votes, record_round, record_vote


def test_two_systems_match_the_closed_form():
    votes = [Vote("x", "y", "a")] * 3 + [Vote("x", "y", "b")]
    score = fit(win_matrix(votes, ["x", "y"]))
    # with half a pseudo-win each way: p_x / p_y = 3.5 / 1.5, and the geometric mean is 1
    assert score[0] - score[1] == pytest.approx(math.log(3.5 / 1.5), abs=1e-6)
    assert score[0] == pytest.approx(math.log(3.5 / 1.5) / 2, abs=1e-6)


def test_three_systems_satisfy_the_likelihood_equations():
    votes = ([Vote("a", "b", "a")] * 4 + [Vote("b", "a", "a")] + [Vote("b", "c", "a")] * 3 +
             [Vote("c", "a", "tie")] * 2 + [Vote("a", "c", "a")])
    names = ["a", "b", "c"]
    w = win_matrix(votes, names)
    p = np.exp(fit(w))
    wp = w + 0.5 * ((w + w.T) > 0)
    n = wp + wp.T
    expected = [(n[i] * p[i] / (p[i] + p)).sum() - n[i, i] * 0.5 for i in range(3)]
    assert wp.sum(axis=1) == pytest.approx(expected, rel=1e-6)  # MLE: observed wins = expected wins


def test_ranking_orders_and_brackets():
    votes = [Vote("good", "bad", "a")] * 8 + [Vote("good", "bad", "b")] * 2 + [Vote("good", "bad", "both_bad")]
    ranked = rank(votes, rounds=200)
    assert [r.name for r in ranked] == ["good", "bad"]
    assert all(r.low <= r.score <= r.high for r in ranked) and ranked[0].games == 11


def test_selftest_catches_identical_columns():
    same = Probe("base", "你好", [0.1, 0.2])
    assert verdict([same, Probe("tuned", "你好", [0.1, 0.2 + 1e-7]), Probe("other", "别的", [0.3, 0.1])]) == (
        verdict([same, Probe("tuned", "你好", [0.1, 0.2])]))
    assert "'base' and 'tuned'" in verdict([same, Probe("tuned", "你好", [0.1, 0.2])])
    assert verdict([same, Probe("tuned", "你好", [0.1, 0.25])]) is None  # same text, moved distribution: fine


def test_votes_and_mapping_live_in_two_files(tmp_path):
    record_round(tmp_path, "r1", "问", "base", "tuned")
    record_vote(tmp_path, "r1", "b")
    record_round(tmp_path, "r2", "问", "tuned", "base")
    record_vote(tmp_path, "r2", "a")
    record_vote(tmp_path, "r2", "tie")  # changed mind: the last vote counts
    assert "tuned" not in (tmp_path / VOTES_FILE).read_text() and "tuned" in (tmp_path / MAP_FILE).read_text()
    assert read_votes(tmp_path) == [Vote("base", "tuned", "b"), Vote("tuned", "base", "tie")]
    with pytest.raises(ValueError, match="expected one of"):
        record_vote(tmp_path, "r1", "maybe")


def test_torn_last_line_is_skipped(tmp_path):
    record_round(tmp_path, "r1", "问", "a", "b")
    record_vote(tmp_path, "r1", "a")
    with (tmp_path / VOTES_FILE).open("a") as f:
        f.write('{"round": "r1", "outc')
    assert read_votes(tmp_path) == [Vote("a", "b", "a")]


@pytest.mark.parametrize("text", ["<think>\n先想\n</think>\n\n答案", "先想\n</think>\n\n答案"])
def test_thought_is_folded_above_the_answer_in_both_forms(text):
    msgs = messages(text)
    assert msgs[0]["metadata"]["title"] == "思考过程" and msgs[0]["content"] == "先想"
    assert msgs[1]["content"] == "答案"


def test_unfinished_thought_is_marked():
    assert messages("<think>\n还在想")[0]["metadata"]["title"].endswith("（未结束）")


def test_prompt_limits():
    assert check_prompt("  ") and check_prompt("x" * (MAX_PROMPT_CHARS + 1)) and check_prompt("你好") is None


def test_a_prompt_before_the_models_are_loaded_is_a_message_not_a_hang(tmp_path):
    from llamafactory_ext.serve.app import LOADING, AppState, run_compare
    from llamafactory_ext.serve.engine import Engine, Settings

    state = AppState(Engine({"model_name_or_path": "m", "template": "qwen3"}, {}), tmp_path)
    assert list(run_compare(state, "你好", Settings(), False)) == [([], [], [], LOADING, None)]


def test_the_chat_recipes_adapter_becomes_a_column():
    from llamafactory_ext.webapp import adapters_from

    assert adapters_from([], {"adapter_name_or_path": "saves/x/sft"}) == {"tuned": "saves/x/sft"}
    assert adapters_from(["a=p"], {"adapter_name_or_path": "saves/x/sft"}) == {"a": "p"}


def test_blind_votes_are_read_back_by_evaluate_report(tmp_path):
    import shutil
    from pathlib import Path

    from llamafactory_ext.evaluate import main as evaluate

    pred = tmp_path / "pred"
    pred.mkdir()
    fixture = Path(__file__).parent / "fixtures" / "eval" / "predictions_zh.jsonl"
    shutil.copy(fixture, pred / "generated_predictions.jsonl")
    assert evaluate(["metrics", str(pred)]) == 0
    for i, outcome in enumerate(["b", "b", "a", "tie"]):
        record_round(tmp_path / "votes", f"r{i}", "问", "base", "tuned")
        record_vote(tmp_path / "votes", f"r{i}", outcome)
    assert evaluate(["report", str(pred / "eval"), "--votes", str(tmp_path / "votes")]) == 0
    page = (pred / "eval" / "eval_report.html").read_text(encoding="utf-8")
    section = page[page.index("Blind pairwise votes"):]
    assert section.index("tuned") < section.index("base")  # 2.5 wins to 1.5: tuned ranks first
