"""Every drop is visible (NAME.drops.jsonl + the console), every sample traceable (NAME.provenance.jsonl), and
the grouped split shares no source unit, code block or long answer between train, val and test."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import pytest

from llamafactory_ext.build_dataset import main

CORPUS = Path(__file__).parents[1] / "examples" / "crypto_notes"
SPLITS = ("train", "val", "test")
FENCE = re.compile(r"^(`{3,}|~{3,})[^\n]*\n(.*?)^\1[ \t]*$", re.M | re.S)


def call(*args) -> tuple[int, str]:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        code = main([str(a) for a in args])
    return code, buf.getvalue()


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def crypto(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("crypto") / "dataset_info"
    code, text = call("markdown", CORPUS, "--name", "crypto", "--out", out)
    assert code == 0, text
    return out


def test_provenance_traces_every_row_to_its_source(crypto):
    prov = lines(crypto / "crypto.provenance.jsonl")
    for split in SPLITS:
        data = lines(crypto / f"crypto_{split}.jsonl")
        mine = [p for p in prov if p["split"] == split]
        assert [p["row"] for p in mine] == list(range(len(data)))  # row i of the data file ↔ its provenance
    assert len({p["id"] for p in prov}) == len(prov)
    for p in prov:
        source = Path(p["file"])
        assert source.parent.resolve() == CORPUS.resolve() and 1 <= p["line"] <= len(source.read_text().splitlines())
        assert p["kind"] and isinstance(p["terms"], list) and isinstance(p["tags"], list)
    assert sum(bool(p["terms"]) for p in prov) > len(prov) / 2  # the term tags later stages evaluate by


def test_grouped_split_shares_no_group_and_no_code_block(crypto):
    prov = lines(crypto / "crypto.provenance.jsonl")
    splits_of_group: dict[str, set[str]] = {}
    for p in prov:
        splits_of_group.setdefault(p["group"], set()).add(p["split"])
    assert all(len(s) == 1 for s in splits_of_group.values())
    assert all(g.startswith("g:") for g in splits_of_group)  # the converter names each sample's source unit
    blocks: dict[str, set[str]] = {}
    for split in SPLITS:
        for row in lines(crypto / f"crypto_{split}.jsonl"):
            for m in row["messages"]:
                for b in FENCE.finditer(m["content"]):
                    if len(b.group(2).strip()) >= 200:
                        blocks.setdefault(b.group(2).strip(), set()).add(split)
    assert blocks and all(len(s) == 1 for s in blocks.values())
    report = (crypto / "crypto.report.md").read_text(encoding="utf-8")
    assert "code blocks ≥200 chars in more than one split: 0" in report
    assert "answers ≥100 chars in more than one split: 0" in report


def test_drops_are_located_with_reason_and_excerpt(crypto):
    manifest = json.loads((crypto / "crypto.manifest.json").read_text(encoding="utf-8"))
    drops = lines(crypto / "crypto.drops.jsonl")
    assert len(drops) == sum(manifest["drops"].values()) + sum(manifest["skipped"].values())
    for d in drops:
        assert Path(d["file"]).name.endswith(".md") and d["line"] >= 1 and d["reason"] and d["excerpt"]
    assert set(manifest["written"]) >= {"crypto.drops.jsonl", "crypto.provenance.jsonl", "crypto.report.md"}


def test_console_shows_twenty_drops_then_where_the_rest_are(tmp_path):
    rows = [{"instruction": "什么是 AES？", "input": "", "output": "一种分组密码。"}] * 26
    rows += [{"instruction": f"第{i}题：什么是密钥{i}？", "input": "", "output": f"密钥{i}是秘密参数。"} for i in range(5)]
    src = tmp_path / "a.jsonl"
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "out"
    code, text = call("alpaca", src, "--name", "d", "--out", out, "--split", "100/0/0")
    assert code == 0, text
    shown = [x for x in text.splitlines() if x.startswith("dropped ")]
    assert len(shown) == 20 and shown[0].startswith(f"dropped {src}:2 (instruction): exact_duplicate")
    assert f"… 5 more in {out / 'd.drops.jsonl'}" in text
    drops = lines(out / "d.drops.jsonl")
    assert [d["line"] for d in drops] == list(range(2, 27))
    assert {d["stage"] for d in drops} == {"dedup"} and drops[0]["detail"] == f"same text as {src}:1"


def test_markdown_drops_and_notes_are_visible(tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.md").write_text("# 甲\n\n问：什么是 AES？\n答：一种分组长度 128 位的分组密码。\n\n问：什么是 DES？\n\n"
                                "## 待补充\n\n待补充\n", encoding="utf-8")
    out = tmp_path / "out"
    code, text = call("markdown", notes, "--name", "m", "--out", out, "--split", "100/0/0")
    assert code == 0, text
    drops = lines(out / "m.drops.jsonl")
    assert any(d["line"] == 6 and d["reason"] == "no_answer" and "DES" in d["excerpt"] for d in drops), drops
    assert f"dropped {notes / 'a.md'}:6 (question): no_answer" in text
    report = (out / "m.report.md").read_text(encoding="utf-8")
    assert "question: no_answer: 1" in report and "m.drops.jsonl" in report


def test_unused_row_keys_are_noted_once_with_count_and_first_place(tmp_path):
    rows = [{"instruction": f"第{i}题：什么是密钥{i}？", "input": "", "output": f"密钥{i}是秘密参数。", "meta": {"id": i}}
            for i in range(7)]
    src = tmp_path / "a.jsonl"
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    code, text = call("alpaca", src, "--name", "n", "--out", tmp_path / "out", "--split", "100/0/0")
    assert code == 0, text
    notes = [x for x in text.splitlines() if x.startswith("note: unused_key:meta")]
    assert notes == [f"note: unused_key:meta ×7 (first at {src}:1): row key 'meta' is not used and is not in the output"]
    assert "unused_key:meta ×7" in (tmp_path / "out" / "n.report.md").read_text(encoding="utf-8")


def test_long_input_lists_are_summarised(tmp_path):
    files = []
    for i in range(12):
        f = tmp_path / f"empty{i}.jsonl"
        f.write_text(json.dumps({"instruction": "", "input": "", "output": ""}) + "\n", encoding="utf-8")
        files.append(f)
    code, text = call("alpaca", *files, "--name", "e", "--out", tmp_path / "out")
    (error,) = [x for x in text.splitlines() if x.startswith("error: ")]
    assert code == 1 and "and 9 more: no sample left to write" in error and str(files[5]) not in error


REAL_NOTES = Path(__file__).parent / "fixtures" / "real" / "notes"


def test_real_notes_share_no_code_block_across_splits_while_an_ungrouped_split_would():
    from llamafactory_ext.data import pipeline
    from llamafactory_ext.data.report import leakage
    from llamafactory_ext.data.split import split
    from llamafactory_ext.records import Sample

    opts = pipeline.BuildOptions(source="markdown", inputs=(REAL_NOTES,), name="real", terms=False)
    samples = [s for s in pipeline.read_and_convert(opts, [], []) if isinstance(s, Sample)]
    ungrouped: list[Sample] = [s.with_(meta={k: v for k, v in s.meta.items() if k != "group"}) for s in samples]
    for seed in (0, 1):
        assert leakage(split(samples, seed=seed)) == {"shared_code_blocks": 0, "shared_answers": 0}
    assert leakage(split(ungrouped, seed=0))["shared_code_blocks"] > 0  # what grouping prevents on this corpus
