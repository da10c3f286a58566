"""The streamed build (issue 15): the pieces that replace in-memory ones must give the very same bytes and decisions.

Rows are now made in the workers and spliced per split (data/rows.py), kept samples live in a spill file
(data/store.py), dedup state in sorted arrays (dedup.HashIndex), and big Belle samples are streamed
(sources/belle.stream_raw). Each is checked here against the plain definition it replaces, on real material.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from llamafactory_ext import io
from llamafactory_ext.data import pipeline
from llamafactory_ext.data.dedup import HashIndex
from llamafactory_ext.data.formats import format_split
from llamafactory_ext.data.report import provenance_rows, split_stats
from llamafactory_ext.data.rows import RowSpec, prepare, provenance_line, row_line
from llamafactory_ext.data.sources.belle import sample_raw, stream_raw
from llamafactory_ext.data.store import Store, write
from llamafactory_ext.records import Sample

REAL = Path(__file__).parent / "fixtures" / "real" / "llamafactory"


def _samples(source: str, path: Path) -> list[Sample]:
    opts = pipeline.BuildOptions(source=source, inputs=(path,), name="x")
    return [s for s in pipeline.read_and_convert(opts, [], []) if isinstance(s, Sample)]


CASES = [("sharegpt", "glaive_toolcall_zh_demo.json", "sharegpt"),  # tools column + function_call turns
         ("openai", "mllm_demo.json", "sharegpt"),  # images, written relative to the output folder
         ("alpaca", "alpaca_zh_demo.json", "alpaca"),
         ("alpaca", "alpaca_zh_demo.json", "sharegpt")]


@pytest.mark.parametrize(("source", "name", "fmt"), CASES, ids=[f"{c[1]}-{c[2]}" for c in CASES])
def test_rows_made_in_workers_are_the_bytes_format_split_writes(tmp_path, source, name, fmt):
    samples = _samples(source, REAL / name)[:120]
    assert samples
    spec = RowSpec(fmt=fmt, mode="think", out_dir=str(tmp_path / "out"))
    plain = _samples("alpaca", REAL / "alpaca_zh_demo.json")[:20]
    mixed = samples[:20] + plain if fmt == "sharegpt" else []  # rows without tools/images get "" / []
    parts = [samples, samples[::3], mixed]
    for part in filter(None, parts):
        rows, entry = format_split(part, "x_train.jsonl", fmt, "think", out_dir=tmp_path / "out")
        store = Store(tmp_path)
        for s in part:
            store.add(*prepare(s, spec))
        out = write(store, {"train": list(range(len(part)))}, "x", fmt, "estimate")
        store.close()
        assert out.files["x_train.jsonl"].path.read_bytes() == io.encode(io.jsonl_text(rows))
        assert out.entries["x_train"] == entry
        assert out.stats["train"] == split_stats({"train": part})["train"]
        assert out.provenance.path.read_text(encoding="utf-8") == io.jsonl_text(provenance_rows({"train": part}))


def test_provenance_line_is_the_json_of_the_provenance_row():
    import pickle

    s = _samples("sharegpt", REAL / "glaive_toolcall_zh_demo.json")[0]
    unit, _, blob = prepare(s, RowSpec())
    line = provenance_line(unit.order[2], "val", 7, pickle.loads(blob))
    assert line == json.dumps({**provenance_rows({"val": [s]})[0], "row": 7}, ensure_ascii=False) + "\n"


def test_spliced_row_keeps_every_column_in_order_with_empty_defaults():
    import pickle

    plain = _samples("sharegpt", REAL / "glaive_toolcall_zh_demo.json")[1]
    plain = plain.with_(tools="", turns=tuple(t for t in plain.turns if t.role in ("user", "assistant"))[:2])
    w = pickle.loads(prepare(plain, RowSpec())[2])
    row = json.loads(row_line(w, ["tools", "images"]))
    assert list(row) == ["messages", "tools", "images"] and row["tools"] == "" and row["images"] == []
    assert json.loads(row_line(w, [])) == {"messages": row["messages"]}


def test_hash_index_answers_like_a_dict_across_merges(monkeypatch):
    monkeypatch.setattr(HashIndex, "MERGE", 97)  # many merges into the sorted arrays
    index, ref = HashIndex(), {}
    rng = random.Random(1)
    pool = [rng.getrandbits(64) for _ in range(4000)] + [0, 1, 2**64 - 1]
    for step in range(15000):
        hashes = list(dict.fromkeys(rng.choice(pool) for _ in range(rng.randint(1, 6))))
        assert index.get(hashes) == [ref.get(h) for h in hashes]
        new = [h for h in hashes if h not in ref]
        if new and rng.random() < 0.5:
            index.put(new, step)
            ref.update(dict.fromkeys(new, step))
    assert len(index.keys) > 1000  # the arrays, not only the recent dict, answered


def test_hash_index_spills_to_files_and_still_answers(monkeypatch, tmp_path):
    monkeypatch.setattr(HashIndex, "MERGE", 50)
    monkeypatch.setattr(HashIndex, "SPILL_AT", 200)
    index, rng = HashIndex(spill=tmp_path), random.Random(2)
    hashes = list(dict.fromkeys(rng.getrandbits(64) for _ in range(3000)))
    for i, h in enumerate(hashes):
        index.put([h], i)
    assert index.spills > 2 and isinstance(index.keys, __import__("numpy").memmap)
    assert sorted(p.name for p in tmp_path.iterdir())[-2:] == [f"dedup-{index.spills - 1}.npy", f"dedup-{index.spills}.npy"]
    assert len(list(tmp_path.iterdir())) == 2  # earlier spills are removed
    assert index.get(hashes[::7]) == list(range(len(hashes)))[::7] and index.get([12345]) == [None]


@pytest.mark.parametrize("ending", ["\n", ""], ids=["newline-at-end", "no-newline-at-end"])
def test_streamed_belle_sample_is_the_sampled_rows(tmp_path, ending):
    rng = random.Random(0)
    lines = ["   " if rng.random() < 0.02 else json.dumps({"instruction": f"问题{i}", "input": "", "output": f"回答{i}"},
                                                       ensure_ascii=False) for i in range(2500)]
    path = tmp_path / "belle.json"
    path.write_text("\n".join(lines) + ending, encoding="utf-8")
    for n in (1, 100, 2400, 2500, 9000):
        for seed in (0, 3):
            count, rows = stream_raw(path, n, seed, above=0)  # above=0: always the two-pass streaming path
            expected = sample_raw(path, n, seed)
            assert list(rows) == expected and count == len(expected)


def test_a_full_temp_disk_names_the_spill_file_and_the_way_out(tmp_path):
    from llamafactory_ext.data.split import Unit

    (tmp_path / "kept.bin").symlink_to("/dev/full")  # every write: ENOSPC, as on a full TMPDIR
    store = Store(tmp_path)
    with pytest.raises(OSError) as caught:
        for i in range(2000):  # more than the file buffer
            store.add(Unit("u:x", "instruction", (), ("a.json", i, "x")), 0, b"y" * 1000)
        store.read(0)
    assert caught.value.filename == str(tmp_path / "kept.bin")
    assert "No space left" in caught.value.strerror and "TMPDIR" in caught.value.strerror
