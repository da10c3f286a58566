"""The Belle sampler: seeded, uniform, line-exact, decodes only what it keeps, stays light to import."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from llamafactory_ext.data.sources.belle import reservoir, sample_lines
from llamafactory_ext.errors import DataError, UsageError


def belle_file(path: Path, rows: int, blank_every: int = 0) -> Path:
    """Row i says q{i} in its instruction and sits on line i (+ blank lines if asked)."""
    lines = []
    for i in range(rows):
        if blank_every and i % blank_every == 0:
            lines.append("")
        lines.append(json.dumps({"instruction": f"q{len(lines) + 1}", "input": "", "output": "答"}, ensure_ascii=False))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_same_seed_same_sample_and_seeds_differ(tmp_path):
    path = belle_file(tmp_path / "b.json", 500)
    first = sample_lines(path, n=50, seed=7)
    assert first == sample_lines(path, n=50, seed=7)
    assert first != sample_lines(path, n=50, seed=8)
    assert len(first) == 50 and len({line for line, _ in first}) == 50


def test_line_numbers_are_the_file_lines_and_blank_lines_are_skipped(tmp_path):
    path = belle_file(tmp_path / "b.json", 300, blank_every=7)
    sample = sample_lines(path, n=40, seed=1)
    assert [line for line, _ in sample] == sorted(line for line, _ in sample)
    assert all(row["instruction"] == f"q{line}" for line, row in sample)


def test_n_at_least_rows_returns_every_row_in_order(tmp_path):
    path = belle_file(tmp_path / "b.json", 12, blank_every=5)
    sample = sample_lines(path, n=100, seed=3)
    assert len(sample) == 12  # fewer than n: the caller warns that the file is smaller than asked
    assert [row["instruction"] for _, row in sample] == [f"q{line}" for line, _ in sample]
    assert sample_lines(path, n=12, seed=99) == sample


def test_reservoir_is_uniform_over_many_seeds():
    population, n, trials = 40, 8, 3000
    counts = Counter(x for s in range(trials) for _, x in reservoir(iter(range(population)), n, random.Random(s)))
    expected = trials * n / population
    chi2 = sum((counts[x] - expected) ** 2 / expected for x in range(population))
    assert chi2 < 80  # 39 degrees of freedom: p(chi2 > 80) < 1e-4 for a uniform sampler


def test_file_sampling_picks_every_line_plausibly_often(tmp_path):
    path = belle_file(tmp_path / "b.json", 20)
    counts = Counter(line for seed in range(400) for line, _ in sample_lines(path, n=5, seed=seed))
    assert set(counts) == set(range(1, 21))
    assert all(60 <= c <= 140 for c in counts.values()), counts  # expected 100, sd ~8.7


def test_blank_lines_never_come_back_and_rows_stay_uniform(tmp_path):
    path = belle_file(tmp_path / "b.json", 10, blank_every=2)  # 5 blank lines among 15
    counts = Counter(line for seed in range(600) for line, _ in sample_lines(path, n=3, seed=seed))
    rows = {i + 1 for i, text in enumerate(path.read_text(encoding="utf-8").split("\n")) if text}
    assert set(counts) == rows
    assert all(130 <= c <= 230 for c in counts.values()), counts  # expected 180, sd ~11


def test_reservoir_positions_are_one_based_stream_positions():
    sample = reservoir(iter("abcdefghijklmnopqrstuvwxyz"), 5, random.Random(4))
    assert all("abcdefghijklmnopqrstuvwxyz"[pos - 1] == item for pos, item in sample)


def test_bad_kept_line_raises_with_its_line(tmp_path):
    path = tmp_path / "b.json"
    path.write_text('{"instruction": "a", "input": "", "output": "b"}\n{"instruction": "a", "output": \n',
                    encoding="utf-8")
    with pytest.raises(DataError) as e:
        sample_lines(path, n=5)
    assert (e.value.path, e.value.line) == (str(path), 2) and "invalid JSON" in e.value.reason


def test_lines_not_kept_are_never_decoded(tmp_path):
    path = belle_file(tmp_path / "b.json", 200)
    lines = path.read_text(encoding="utf-8").split("\n")
    lines[99] = "{broken"
    path.write_text("\n".join(lines), encoding="utf-8")
    outcomes = []
    for seed in range(20):  # each seed either skips line 100 and succeeds, or keeps it and names it
        try:
            outcomes.append(len(sample_lines(path, n=10, seed=seed)))
        except DataError as e:
            outcomes.append(e.line)
    assert set(outcomes) == {10, 100}


def test_row_that_is_not_belle_names_the_expected_keys(tmp_path):
    path = tmp_path / "b.json"
    path.write_text('{"instruction": "a", "input": "", "output": "b"}\n{"prompt": "x"}\n', encoding="utf-8")
    with pytest.raises(DataError, match="not a Belle row") as e:
        sample_lines(path, n=2)
    assert e.value.line == 2 and '"output": str' in e.value.fix


@pytest.mark.parametrize(("content", "match"), [(b"", "no rows"), (b"\n\n", "no rows"), (b"PK\x03\x04zip", "binary")])
def test_empty_or_binary_file(tmp_path, content, match):
    path = tmp_path / "b.json"
    path.write_bytes(content)
    with pytest.raises(DataError, match=match):
        sample_lines(path)


def test_missing_file_and_bad_n(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        sample_lines(tmp_path / "Belle_open_source_0.5M.json")
    with pytest.raises(UsageError, match="at least 1"):
        sample_lines(belle_file(tmp_path / "b.json", 3), n=0)


def test_importing_the_sampler_stays_light():
    code = ("import sys, llamafactory_ext.data.sources.belle; "
            "print(sorted(m for m in ('torch', 'datasets', 'pyarrow', 'pandas') if m in sys.modules))")
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
