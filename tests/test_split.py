"""The split is a deterministic, order-independent, stratified partition that never cuts a sample."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llamafactory_ext.data.split import parse_ratios, small_data_warning, split
from llamafactory_ext.errors import UsageError
from llamafactory_ext.records import Sample, Turn


def make(i: int, kind: str = "qa", tags: tuple[str, ...] = ()) -> Sample:
    return Sample((Turn("user", f"问题{i}"), Turn("assistant", f"回答{i}")), kind=kind, tags=tags, source="f", line=i)


def ids(parts):
    return {k: sorted(s.uid for s in v) for k, v in parts.items()}


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 120), seed=st.integers(0, 5), shuffle_seed=st.integers(0, 1000))
def test_partition_deterministic_and_order_independent(n, seed, shuffle_seed):
    samples = [make(i, kind=["qa", "explain_topic", "write_code"][i % 3]) for i in range(n)]
    shuffled = samples[:]
    random.Random(shuffle_seed).shuffle(shuffled)
    a, b = split(samples, seed=seed), split(shuffled, seed=seed)
    assert ids(a) == ids(b)
    all_ids = [u for v in ids(a).values() for u in v]
    assert sorted(all_ids) == sorted(s.uid for s in samples)  # a partition: nothing lost or doubled
    assert len(a["val"]) == round(n * 0.15) and len(a["test"]) == round(n * 0.15)


def test_seed_changes_the_partition():
    samples = [make(i) for i in range(200)]
    assert ids(split(samples, seed=1)) != ids(split(samples, seed=2))


def test_every_kind_and_tag_reaches_every_split():
    samples = [make(i, kind=k, tags=(t,)) for i in range(40) for k, t in [("qa", "hash"), ("write_code", "symmetric")]]
    samples += [make(1000 + i, kind="explain_topic", tags=("attack",)) for i in range(20)]
    parts = split(samples, (0.7, 0.15, 0.15), seed=0)
    for name in ("train", "val", "test"):
        kinds = {(s.kind, s.tags[0]) for s in parts[name]}
        assert kinds == {("qa", "hash"), ("write_code", "symmetric"), ("explain_topic", "attack")}, name
    # proportional: the 20-sample stratum puts 3 (±1) in val
    assert 2 <= sum(s.kind == "explain_topic" for s in parts["val"]) <= 4


def test_multi_turn_conversation_stays_whole():
    convo = Sample((Turn("user", "a"), Turn("assistant", "b", "想"), Turn("user", "c"), Turn("assistant", "d")), kind="chat")
    parts = split([convo] + [make(i) for i in range(30)], seed=3)
    found = [s for v in parts.values() for s in v if s.kind == "chat"]
    assert found == [convo]


@pytest.mark.parametrize("text,expected", [("70/15/15", (0.7, 0.15, 0.15)), ("8,1,1", (0.8, 0.1, 0.1)),
                                           ("0.9/0.1/0", (0.9, 0.1, 0.0))])
def test_parse_ratios(text, expected):
    assert parse_ratios(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["70/30", "a/b/c", "0/50/50", "-1/1/1"])
def test_parse_ratios_rejects(text):
    with pytest.raises(UsageError, match="--split"):
        parse_ratios(text)


def test_small_data_warning_states_numbers():
    parts = split([make(i) for i in range(12)])
    msg = small_data_warning(parts)
    assert msg is not None and "only 12 samples" in msg and "train 8" in msg and "val 2" in msg
    assert small_data_warning(split([make(i) for i in range(400)])) is None


def grouped(n_groups: int, sizes=(1, 2, 3, 5)) -> list[Sample]:
    out = []
    for g in range(n_groups):
        for j in range(sizes[g % len(sizes)]):
            kind = ["qa", "explain_code", "write_code"][(g + j) % 3]
            out.append(make(g * 10 + j, kind=kind).with_(meta={"group": f"notes/a.md:{g}"}, source="notes/a.md"))
    return out


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 60), seed=st.integers(0, 5), shuffle_seed=st.integers(0, 1000))
def test_grouped_split_keeps_each_group_in_one_split_in_any_order(n, seed, shuffle_seed):
    samples = grouped(n)
    shuffled = samples[:]
    random.Random(shuffle_seed).shuffle(shuffled)
    a, b = split(samples, seed=seed), split(shuffled, seed=seed)
    assert ids(a) == ids(b)
    where = {}
    for part, members in a.items():
        for s in members:
            assert where.setdefault(s.meta["group"], part) == part  # never two splits for one group
    assert sorted(u for v in ids(a).values() for u in v) == sorted(s.uid for s in samples)


def test_grouped_split_is_still_near_the_ratios():
    parts = split(grouped(200), seed=0)
    total = sum(len(v) for v in parts.values())
    assert abs(len(parts["val"]) / total - 0.15) < 0.03 and abs(len(parts["test"]) / total - 0.15) < 0.03


def test_group_of_relative_and_absolute_paths_split_alike(tmp_path):
    rel = grouped(60)
    absolute = [s.with_(source=str(tmp_path / s.source), meta={"group": f"{tmp_path / s.source}:{s.line // 10}"})
                for s in rel]
    rel = [s.with_(meta={"group": f"{s.source}:{s.line // 10}"}) for s in rel]
    assert ids(split(rel, seed=3)) == ids(split(absolute, seed=3))
