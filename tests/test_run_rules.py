"""The supervisor's pure parts: alert rules, the OOM ladder, the honest ETA, pre-flight checks on probed facts."""

from __future__ import annotations

import math

import pytest

from llamafactory_ext.run import alerts, checks, ladder, progress
from llamafactory_ext.run.preflight import Dataset, Facts
from llamafactory_ext.train import parse_value


def feed(rows: list[dict], lang: str = "en") -> list[alerts.Alert]:
    monitor = alerts.Monitor(lang=lang)
    return [a for i, row in enumerate(rows) for a in monitor.feed({"step": i + 1, "time": float(i), **row})]


def test_filtered_nan_signature_is_caught_and_a_clean_run_is_quiet():
    clean = [{"loss": 2.0 - 0.01 * i, "grad_norm": 0.8 + 0.05 * (i % 3), "memory_current": 2**30}
             for i in range(40)]
    assert feed(clean) == []
    (alert,) = feed(clean[:5] + [{"loss": 0.0, "grad_norm": math.nan}])
    assert alert.kind == "nonfinite" and alert.step == 6 and "logging_nan_inf_filter" in alert.message
    assert "learning_rate" in alert.message and "bf16" in alert.lf_key


def test_inf_loss_spike_and_grad_bound_each_alert_with_their_key():
    base = [{"loss": 1.0, "grad_norm": 1.0}] * 6
    assert [a.kind for a in feed(base + [{"loss": math.inf, "grad_norm": 3.0}])] == ["nonfinite"]
    assert [a.kind for a in feed(base + [{"loss": 3.5, "grad_norm": 1.0}])] == ["spike"]
    assert [a.kind for a in feed(base + [{"loss": 2.9, "grad_norm": 1.0}])] == []  # under 3x the average
    (grad,) = feed(base + [{"loss": 1.0, "grad_norm": 5.0e3}])
    assert grad.kind == "grad_norm" and "max_grad_norm" in grad.lf_key


def test_overfitting_names_the_best_checkpoint_in_chinese():
    train = [{"loss": 2.0 - 0.1 * i} for i in range(8)]
    evals = [{"eval_loss": v} for v in (1.5, 1.6, 1.7, 1.8)]
    monitor = alerts.Monitor(lang="zh")
    found = [a for i, row in enumerate(train + evals) for a in monitor.feed({"step": i + 1, "time": float(i), **row})]
    (alert,) = found
    assert alert.kind == "overfit" and "checkpoint-9" in alert.message and "过拟合" in alert.message


def test_memory_creep_and_stall_use_current_values():
    mem = [{"loss": 1.0, "memory_current": 2**30 * (1 + 0.1 * i)} for i in range(6)]
    assert [a.kind for a in feed(mem)] == ["memory"]
    monitor = alerts.Monitor()
    times = [0, 1, 2, 3, 4, 5, 20]
    kinds = [a.kind for i, t in enumerate(times) for a in monitor.feed({"step": i, "time": t, "loss": 1.0})]
    assert kinds == ["stall"]
    monitor = alerts.Monitor()  # the same gap right after an evaluation is not a stall
    rows = [{"step": i, "time": t, "loss": 1.0, **({"after_pause": True} if t == 20 else {})}
            for i, t in enumerate(times)]
    assert [a for r in rows for a in monitor.feed(r)] == []


def test_stop_on_parsing():
    assert alerts.parse_stop_on("nonfinite, overfit") == {"nonfinite", "overfit"}
    assert alerts.parse_stop_on("any") == set(alerts.KINDS)
    with pytest.raises(ValueError, match="nan"):
        alerts.parse_stop_on("nan")


@pytest.mark.parametrize("batch,accum", [(8, 1), (6, 2), (3, 4), (7, 1)])
def test_ladder_keeps_the_global_batch(batch, accum):
    args = {"per_device_train_batch_size": batch, "gradient_accumulation_steps": accum, "finetuning_type": "lora"}
    before = ladder.global_batch(args)
    rung = ladder.next_rung(args, ladder.Machine(gpu=False, liger=False, bitsandbytes=False))
    assert rung.name == "batch" and rung.changes["per_device_train_batch_size"] < batch
    assert ladder.global_batch({**args, **rung.changes}) == before


def test_ladder_order_after_batch_one():
    args = {"per_device_train_batch_size": 1, "gradient_accumulation_steps": 8, "finetuning_type": "lora",
            "disable_gradient_checkpointing": True}
    gpu = ladder.Machine(gpu=True, liger=True, bitsandbytes=True, allow_4bit=True)
    names = []
    while (rung := ladder.next_rung(args, gpu)) is not None:
        names.append(rung.name)
        args.update(rung.changes)
    assert names == ["liger", "checkpointing", "offload", "4bit"]
    cpu = ladder.Machine(gpu=False, liger=False, bitsandbytes=False)
    assert ladder.next_rung({"per_device_train_batch_size": 1}, cpu) is None  # exhausted: bounded


def test_eta_counts_only_steps_since_the_restart():
    # resumed at step 100 of 200; 10 steps in 20 s since the restart → 90 steps left at 2 s/step
    points = [{"step": 100 + i, "time": 1000.0 + 2 * i, "tokens": 5000 + 100 * i} for i in range(11)]
    assert progress.eta_seconds(points, 200) == pytest.approx(180.0)
    assert progress.window_rate(points, "tokens") == pytest.approx(50.0)
    assert progress.eta_seconds(points[:1], 200) is None


def test_parse_value_keeps_numbers_numbers():
    assert parse_value("1e-4") == pytest.approx(1e-4) and parse_value("8") == 8
    assert parse_value("false") is False and parse_value("qwen3") == "qwen3"


def facts(**kw) -> Facts:
    base = {"versions": {n: "1" for n in checks.CORE} | {"llamafactory": "0.9.5"}, "gpus": [], "model_dir": True,
            "model_config": True, "model_bytes": 10 * 2**20, "info_path": "d/dataset_info.json", "info_exists": True,
            "datasets": [Dataset("tiny", True, "d/tiny.json", True, 100)], "templates": frozenset({"qwen3"}),
            "output_exists": False, "output_entries": [], "checkpoints": [], "writable": None,
            "free_bytes": 100 * 2**30}
    return Facts(**(base | kw))


ARGS = {"model_name_or_path": "/m", "dataset": "tiny", "template": "qwen3", "output_dir": "out", "stage": "sft",
        "finetuning_type": "lora", "per_device_train_batch_size": 2, "num_train_epochs": 1.0, "save_steps": 10}


@pytest.mark.parametrize("args,kw,key,fix", [
    ({}, {"templates": frozenset({"qwen3", "qwen"}), "model_dir": True}, None, None),
    ({"template": "qwen4"}, {}, "template", "qwen3"),
    ({"bf16": True}, {}, "bf16", "bf16=false"),
    ({}, {"model_dir": False}, "model_name_or_path", "fix the path"),
    ({}, {"datasets": [Dataset("tiny", True, "d/tiny.json", False)]}, "dataset", "rebuild"),
    ({}, {"writable": "cannot create files in /proc"}, "output_dir", "writable"),
    ({}, {"checkpoints": [4], "previous": {"model_name_or_path": "/other"}}, "output_dir", "another output_dir"),
    ({"eval_strategy": "steps"}, {}, "eval_strategy", "eval_dataset"),
    ({"early_stopping_steps": 3}, {}, "early_stopping_steps", "metric_for_best_model"),
    ({"save_steps": 1, "max_steps": 10**6}, {}, "save_steps", "save_total_limit"),
    ({"model_name_or_path": "Qwen/Qwen3-4B-Thinking-2507", "template": "qwen"}, {"model_dir": False,
                                                                                "templates": frozenset({"qwen", "qwen3"})},
     "template", "template=qwen3"),
])
def test_preflight_checks_name_the_key_and_the_fix(args, kw, key, fix, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    found = checks.check(ARGS | args, facts(**kw))
    if key is None:
        assert found == []
        return
    assert found and found[0].key == key and fix in found[0].render(), found


def test_planned_steps_and_checkpoints():
    f = facts()
    assert checks.planned_steps(ARGS, f) == 50  # 100 rows / global batch 2, one epoch
    assert checks.planned_checkpoints(ARGS | {"save_total_limit": 2}, 50) == 3
