"""The writer: ASCII dataset_info.json, merge keeps other entries, atomic all-or-nothing writes."""

from __future__ import annotations

import json

import pytest

from llamafactory_ext import io
from llamafactory_ext.errors import DataError, UsageError


def snapshot(folder):
    return {p.name: (p.read_bytes() if p.is_file() else "dir") for p in sorted(folder.iterdir())}


def test_info_is_ascii_and_merge_keeps_other_entries(tmp_path):
    other = {"belle_0.5m": {"hf_hub_url": "BelleGroup/train_0.5M_CN", "note": "用户自己的"}}
    (tmp_path / "dataset_info.json").write_text(json.dumps(other, ensure_ascii=False), encoding="utf-8")
    io.write_dataset(tmp_path, {"x_train.jsonl": '{"a": "密码"}\n'}, {"x_train": {"file_name": "x_train.jsonl"}},
                     overwrite=False)
    raw = (tmp_path / "dataset_info.json").read_bytes()
    assert raw.isascii()
    data = json.loads(raw)
    assert list(data) == ["belle_0.5m", "x_train"] and data["belle_0.5m"] == other["belle_0.5m"]
    assert (tmp_path / "x_train.jsonl").read_text(encoding="utf-8") == '{"a": "密码"}\n'


def test_conflicting_entry_needs_overwrite(tmp_path):
    io.write_dataset(tmp_path, {}, {"x": {"file_name": "a.jsonl"}}, overwrite=False)
    before = snapshot(tmp_path)
    with pytest.raises(UsageError, match="entry 'x' already exists.*--overwrite"):
        io.write_dataset(tmp_path, {"b.jsonl": "{}\n"}, {"x": {"file_name": "b.jsonl"}}, overwrite=False)
    assert snapshot(tmp_path) == before
    io.write_dataset(tmp_path, {"b.jsonl": "{}\n"}, {"x": {"file_name": "b.jsonl"}}, overwrite=True)
    assert json.loads((tmp_path / "dataset_info.json").read_text())["x"] == {"file_name": "b.jsonl"}


def test_changed_data_file_needs_overwrite(tmp_path):
    (tmp_path / "x_train.jsonl").write_text("mine\n")
    with pytest.raises(UsageError, match="x_train.jsonl: exists with different content"):
        io.write_dataset(tmp_path, {"x_train.jsonl": "new\n"}, {"x_train": {"file_name": "x_train.jsonl"}},
                         overwrite=False)
    assert (tmp_path / "x_train.jsonl").read_text() == "mine\n"


def test_malformed_existing_info_is_reported_and_kept(tmp_path):
    (tmp_path / "dataset_info.json").write_text('{"a": {"file_name": "a.json"},\n  oops}\n')
    before = snapshot(tmp_path)
    with pytest.raises(DataError) as err:
        io.write_dataset(tmp_path, {"x.jsonl": "{}\n"}, {"x": {"file_name": "x.jsonl"}}, overwrite=True)
    assert "dataset_info.json:2: malformed JSON" in str(err.value) and "left unchanged" in str(err.value)
    assert snapshot(tmp_path) == before


def test_failure_midway_leaves_folder_exactly_as_it_was(tmp_path):
    (tmp_path / "dataset_info.json").write_text('{"keep": {"file_name": "k.json"}}')
    (tmp_path / "x_train.jsonl").write_text("old train\n")
    (tmp_path / "x_val.jsonl").mkdir()  # a directory where a file must go: the second rename fails
    before = snapshot(tmp_path)
    files = {"x_train.jsonl": "new train\n", "x_val.jsonl": "new val\n", "x_test.jsonl": "new test\n"}
    with pytest.raises(OSError):
        io.write_dataset(tmp_path, files, {"x_train": {"file_name": "x_train.jsonl"}}, overwrite=True)
    assert snapshot(tmp_path) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp or backup files left
