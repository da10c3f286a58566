"""The writer: ASCII dataset_info.json, merge keeps other entries, atomic all-or-nothing writes."""

from __future__ import annotations

import json
import os

import pytest

from llamafactory_ext import io, transaction
from llamafactory_ext.errors import DataError, UsageError


def snapshot(folder):
    return {p.name: (p.read_bytes() if p.is_file() else "dir") for p in sorted(folder.iterdir())}


def test_info_is_ascii_and_merge_keeps_other_entries(tmp_path):
    other = {"belle_0.5m": {"hf_hub_url": "BelleGroup/train_0.5M_CN", "note": "用户自己的"}}
    (tmp_path / "dataset_info.json").write_text(json.dumps(other, ensure_ascii=False), encoding="utf-8")
    transaction.write_dataset(tmp_path, {"x_train.jsonl": '{"a": "密码"}\n'}, {"x_train": {"file_name": "x_train.jsonl"}},
                     overwrite=False)
    raw = (tmp_path / "dataset_info.json").read_bytes()
    assert raw.isascii()
    data = json.loads(raw)
    assert list(data) == ["belle_0.5m", "x_train"] and data["belle_0.5m"] == other["belle_0.5m"]
    assert (tmp_path / "x_train.jsonl").read_text(encoding="utf-8") == '{"a": "密码"}\n'


def test_conflicting_entry_needs_overwrite(tmp_path):
    transaction.write_dataset(tmp_path, {}, {"x": {"file_name": "a.jsonl"}}, overwrite=False)
    before = snapshot(tmp_path)
    with pytest.raises(UsageError, match="entry 'x' already exists.*--overwrite"):
        transaction.write_dataset(tmp_path, {"b.jsonl": "{}\n"}, {"x": {"file_name": "b.jsonl"}}, overwrite=False)
    assert snapshot(tmp_path) == before
    transaction.write_dataset(tmp_path, {"b.jsonl": "{}\n"}, {"x": {"file_name": "b.jsonl"}}, overwrite=True)
    assert json.loads((tmp_path / "dataset_info.json").read_text())["x"] == {"file_name": "b.jsonl"}


def test_changed_data_file_needs_overwrite(tmp_path):
    (tmp_path / "x_train.jsonl").write_text("mine\n")
    with pytest.raises(UsageError, match="x_train.jsonl: exists with different content"):
        transaction.write_dataset(tmp_path, {"x_train.jsonl": "new\n"}, {"x_train": {"file_name": "x_train.jsonl"}},
                         overwrite=False)
    assert (tmp_path / "x_train.jsonl").read_text() == "mine\n"


def test_malformed_existing_info_is_reported_and_kept(tmp_path):
    (tmp_path / "dataset_info.json").write_text('{"a": {"file_name": "a.json"},\n  oops}\n')
    before = snapshot(tmp_path)
    with pytest.raises(DataError) as err:
        transaction.write_dataset(tmp_path, {"x.jsonl": "{}\n"}, {"x": {"file_name": "x.jsonl"}}, overwrite=True)
    assert "dataset_info.json:2: malformed JSON" in str(err.value) and "left unchanged" in str(err.value)
    assert snapshot(tmp_path) == before


def test_a_folder_where_a_file_goes_is_refused_untouched(tmp_path):
    (tmp_path / "dataset_info.json").write_text('{"keep": {"file_name": "k.json"}}')
    (tmp_path / "x_val.jsonl").mkdir()
    before = snapshot(tmp_path)
    with pytest.raises(DataError, match="x_val.jsonl: is a folder where a data file must go"):
        transaction.write_dataset(tmp_path, {"x_val.jsonl": "v\n"}, {"x_val": {"file_name": "x_val.jsonl"}}, overwrite=True)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("fail_at", [1, 2, 3, 4, 5])
def test_failure_midway_leaves_folder_exactly_as_it_was(tmp_path, monkeypatch, fail_at):
    (tmp_path / "dataset_info.json").write_text('{"keep": {"file_name": "k.json"}}')
    (tmp_path / "x_train.jsonl").write_text("old train\n")
    before = snapshot(tmp_path)
    real, calls = os.replace, []

    def failing_replace(src, dst):  # the disk fails at the n-th rename (e.g. a full or vanished mount)
        calls.append(dst)
        if len(calls) == fail_at:
            raise OSError(5, "Input/output error", str(dst))
        real(src, dst)

    monkeypatch.setattr(io.os, "replace", failing_replace)
    files = {"x_train.jsonl": "new train\n", "x_val.jsonl": "new val\n", "x_test.jsonl": "new test\n"}
    with pytest.raises(OSError):
        transaction.write_dataset(tmp_path, files, {"x_train": {"file_name": "x_train.jsonl"}}, overwrite=True)
    monkeypatch.setattr(io.os, "replace", real)
    assert snapshot(tmp_path) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp or backup files left


def test_a_forged_journal_never_touches_files_outside_the_folder(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "dataset_info.json").write_text('{"keep": {"file_name": "k.json"}}')
    victim = tmp_path / "victim.txt"
    victim.write_text("mine")
    plan = {"index": str(folder / "dataset_info.json"), "index_tmp": str(victim), "old": None, "new": "x",
            "targets": [{"name": "../victim.txt", "tmp": None, "bak": ".lfx-bak-v", "existed": True}]}
    (folder / transaction.JOURNAL).write_text(json.dumps(plan))
    notes: list[str] = []
    with transaction.folder_lock(folder):
        transaction.recover(folder, notes.append)
    assert victim.read_text() == "mine" and sorted(p.name for p in folder.iterdir()) == ["dataset_info.json"]
    assert notes == [f"note: {folder}: cleaned up the files of an interrupted run (its journal was unreadable: "
                     "temporary files removed)"]


def test_side_file_the_tool_wrote_is_replaced_but_an_edited_one_is_not(tmp_path):
    def build(report: str) -> None:
        manifest = json.dumps({"written": {"x.report.md": io.sha256_text(report)}})
        transaction.write_dataset(tmp_path, {}, {}, overwrite=False, name="x",
                         side_files={"x.report.md": report, "x.manifest.json": manifest})

    build("first\n")
    build("second\n")  # the tool's own, unedited report: replaced without --overwrite
    assert (tmp_path / "x.report.md").read_text() == "second\n"
    (tmp_path / "x.report.md").write_text("my notes on the report\n")
    with pytest.raises(UsageError, match="x.report.md: exists with different content"):
        build("third\n")
