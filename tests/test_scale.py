"""Builds over several processes write exactly what one process writes (issue 15).

Belle-style rows of general Chinese text with the cases that depend on order or on chunk edges: exact and lightly
edited copies (the first one is kept, the drop names it), bad rows, lone surrogates, empty answers, over-long
samples, reasoning, cryptography terms and a row of another source kind at a chunk start.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from llamafactory_ext import build_dataset
from llamafactory_ext.data import parallel

REPO = Path(__file__).resolve().parent.parent
CHARS = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多"
TERMS = ("对称加密", "哈希函数", "数字签名", "AES", "公钥", "RSA")


def _text(rng: random.Random, n: int) -> str:
    words = ["".join(rng.choice(CHARS) for _ in range(rng.randint(1, 3))) for _ in range(n)]
    if rng.random() < 0.2:
        words.insert(rng.randrange(len(words)), rng.choice(TERMS))
    return "，".join("".join(words[i : i + 5]) for i in range(0, len(words), 5)) + "。"


def _row(rng: random.Random, i: int, earlier: list[dict]) -> dict | str:
    roll = rng.random()
    if earlier and roll < 0.03:
        return rng.choice(earlier)  # exact copy
    if earlier and roll < 0.07:
        old = rng.choice(earlier)
        return {**old, "output": old["output"] + rng.choice(CHARS) + "。"}  # lightly edited copy
    if roll < 0.08:
        return '{"instruction": "坏行'  # invalid JSON
    if roll < 0.09:
        return {"instruction": "孤立代理\ud800", "output": "答"}
    if roll < 0.10:
        return {"instruction": _text(rng, 5), "output": ""}
    if roll < 0.11:
        return {"instruction": _text(rng, 5), "output": "长" * 13_000}
    output = _text(rng, rng.randint(8, 60))
    if roll < 0.15:
        output = f"<think>先想一想：{_text(rng, 20)}</think>{output}"
    return {"instruction": _text(rng, rng.randint(3, 12)), "input": "" if roll < 0.6 else _text(rng, 6),
            "output": output}


def write_rows(path: Path, n: int, seed: int) -> Path:
    rng = random.Random(seed)
    earlier: list[dict] = []
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            row = {"conversations": [{"from": "human", "value": "别的格式"}]} if i == 14 else _row(rng, i, earlier)
            if isinstance(row, dict) and "output" in row and rng.random() < 0.2:
                earlier.append(row)
            f.write(row if isinstance(row, str) else json.dumps(row))  # \ud800 stays an escape
            f.write("\n")
    return path


def _build(args: list[str], out: Path, workers: int) -> dict[str, bytes]:
    code = build_dataset.main([*args, "--out", str(out), "--workers", str(workers), "--on-error", "skip", "--quiet"])
    assert code == 0
    files = {p.name: p.read_bytes() for p in sorted(out.iterdir())}
    manifest = json.loads(files.pop(next(n for n in files if n.endswith(".manifest.json"))))
    manifest.pop("command"), manifest.pop("arguments")  # they name --workers and --out, as they should
    return files | {"manifest": json.dumps(manifest, sort_keys=True).encode()}


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 7 rows: every stage meets many chunk edges (the row of another kind sits at a chunk start)."""
    monkeypatch.setattr(parallel, "CHUNK", 7)


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_two_workers_write_the_same_bytes_as_one(tmp_path, seed):
    data = write_rows(tmp_path / "belle.json", 4000, seed)
    args = ["belle", str(data), "--name", "b", "--sample", "3000", "--seed", str(seed)]
    one, two = _build(args, tmp_path / "one", 1), _build(args, tmp_path / "two", 2)
    assert one == two
    drops = [json.loads(line) for line in one["b.drops.jsonl"].decode().splitlines()]
    reasons = {d["reason"] for d in drops}
    assert {"exact_duplicate", "near_duplicate", "empty_response", "too_long"} <= reasons
    rejects = one["b.rejects.jsonl"].decode()
    assert "lone surrogate" in rejects and "invalid JSON" in rejects


def test_chunk_edges_change_nothing(tmp_path, small_chunks):
    data = write_rows(tmp_path / "belle.json", 600, 3)
    args = ["belle", str(data), "--name", "b", "--sample", "600"]
    assert _build(args, tmp_path / "one", 1) == _build(args, tmp_path / "two", 2)
    rejects = (tmp_path / "two" / "b.rejects.jsonl").read_text(encoding="utf-8")
    assert '"line": 15' in rejects and "not a Belle row" in rejects  # the other-kind row mid-file stays a row error


def test_alpaca_and_markdown_sources_too(tmp_path, small_chunks):
    rows = [r for r in (_row(random.Random(5), i, []) for i in range(300)) if isinstance(r, dict)]
    data = tmp_path / "a.json"
    data.write_text(json.dumps(rows), encoding="utf-8")
    alpaca = ["alpaca", str(data), "--name", "a"]
    assert _build(alpaca, tmp_path / "a1", 1) == _build(alpaca, tmp_path / "a2", 2)
    notes = ["markdown", str(REPO / "examples" / "crypto_notes"), "--name", "m"]
    assert _build(notes, tmp_path / "m1", 1) == _build(notes, tmp_path / "m2", 2)


def test_workers_must_be_positive(tmp_path, capsys):
    data = write_rows(tmp_path / "belle.json", 10, 0)
    assert build_dataset.main(["belle", str(data), "--name", "b", "--out", str(tmp_path / "o"), "--workers", "0"]) == 2
    assert "--workers 0" in capsys.readouterr().err
