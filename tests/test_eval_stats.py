"""Paired bootstrap: both means, delta, 95% CI and better/worse counts."""

from __future__ import annotations

import pytest

from llamafactory_ext.eval.stats import compare, paired_bootstrap


def test_constant_improvement_has_a_ci_collapsed_on_it():
    r = paired_bootstrap([10, 20, 30, 40], [12, 22, 32, 42])
    assert (r["base"], r["tuned"], r["delta"]) == (25, 27, 2)
    assert r["ci_low"] == pytest.approx(2) and r["ci_high"] == pytest.approx(2)
    assert (r["better"], r["worse"], r["same"]) == (4, 0, 0)


def test_mixed_changes_give_a_ci_around_the_delta_that_crosses_zero():
    base = [50.0] * 20
    tuned = [60.0] * 10 + [41.0] * 10  # mean delta +0.5, large spread
    r = paired_bootstrap(base, tuned)
    assert r["delta"] == pytest.approx(0.5)
    assert r["ci_low"] < 0 < r["ci_high"]
    assert r["ci_low"] >= -9.5 and r["ci_high"] <= 10
    assert (r["better"], r["worse"]) == (10, 10)


def test_clear_improvement_excludes_zero():
    base = [float(i % 7) for i in range(60)]
    tuned = [b + 1 + (i % 3) * 0.5 for i, b in enumerate(base)]
    r = paired_bootstrap(base, tuned)
    assert 0 < r["ci_low"] < r["delta"] < r["ci_high"]


def test_same_seed_same_interval():
    a, b = [1, 5, 2, 8, 3], [2, 4, 4, 9, 1]
    assert paired_bootstrap(a, b) == paired_bootstrap(a, b)


def test_unpaired_inputs_are_refused_with_the_counts():
    with pytest.raises(ValueError, match="3 base vs 2 tuned"):
        paired_bootstrap([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="same test split"):
        compare([{"x": 1}], [{"x": 1}, {"x": 2}], ["x"])
