"""Expert review loop: blind sheets out, filled sheets in (located errors, nothing stored on error), agreement."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from eval_support import FIXTURES

from llamafactory_ext.eval.review import DIMENSIONS, adjudication, alpha
from llamafactory_ext.evaluate import main


@pytest.fixture
def review(tmp_path) -> Path:
    rows = FIXTURES.joinpath("predictions_zh.jsonl").read_text(encoding="utf-8").splitlines()
    base, tuned = tmp_path / "base", tmp_path / "tuned"
    for d, tag in ((base, "（基础）"), (tuned, "（微调）")):
        d.mkdir()
        out = [{**json.loads(x), "predict": json.loads(x)["predict"] + tag} for x in rows]
        (d / "generated_predictions.jsonl").write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in out), encoding="utf-8")
    assert main(["review-export", str(base), str(tuned), "--out", str(tmp_path / "review")]) == 0
    return tmp_path / "review"


def sheet(review: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO((review / "sheet.csv").read_text(encoding="utf-8"))))


def fill(review: Path, path: Path, score, header=None, rows=None, encoding="utf-8") -> Path:
    """A filled copy of the sheet; ``score(i, dim)`` gives each cell."""
    rows = rows if rows is not None else sheet(review)
    for i, r in enumerate(rows):
        r.update({d: str(score(i, d)) for d in DIMENSIONS})
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=header or list(rows[0]), extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    path.write_bytes(buf.getvalue().encode(encoding))
    return path


def test_two_systems_are_blind_shuffled_and_mapped_apart(review):
    items = sheet(review)
    assert len(items) == 18 and len({r["item_id"] for r in items}) == 18
    text = (review / "sheet.csv").read_text(encoding="utf-8") + (review / "sheet.html").read_text(encoding="utf-8")
    assert "base" not in text and "tuned" not in text
    mapping = json.loads((review / "private" / "mapping.json").read_text(encoding="utf-8"))
    assert {m["system"] for m in mapping.values()} == {"base", "tuned"}
    order = [mapping[r["item_id"]]["system"] for r in items]
    assert order != sorted(order) and order != sorted(order, reverse=True)  # interleaved, not grouped
    assert items[0]["prompt"] == "问题"  # the user turn, not the ChatML scaffolding


def test_import_gives_alpha_per_dimension_and_an_adjudication_queue(review, tmp_path, capsys):
    a = fill(review, tmp_path / "alice.csv", lambda i, d: 1 + i % 5)
    b = fill(review, tmp_path / "bob.csv", lambda i, d: 1 + i % 5 if d != "准确性" or i else 5)
    assert main(["review-import", str(review), str(a), str(b)]) == 0
    summary = json.loads((review / "summary.json").read_text(encoding="utf-8"))
    assert summary["dimensions"]["流畅性"]["alpha"] == 1.0
    assert summary["dimensions"]["准确性"]["alpha"] < 1.0
    (queued,) = summary["adjudicate"]
    assert queued["dimension"] == "准确性" and queued["scores"] == {"alice": 1, "bob": 5}
    assert "准确性: alpha" in capsys.readouterr().out


def test_english_headers_are_accepted(review, tmp_path):
    rows = sheet(review)
    for r in rows:
        r.update({"accuracy": "4", "fluency": "4", "professionalism": "3"})
    header = ["run_id", "item_id", "accuracy", "fluency", "professionalism", "comment"]
    path = tmp_path / "carol.csv"
    buf = io.StringIO()
    csv.DictWriter(buf, fieldnames=header, extrasaction="ignore").writeheader()
    csv.DictWriter(buf, fieldnames=header, extrasaction="ignore").writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8")
    assert main(["review-import", str(review), str(path)]) == 0


def _bad(review: Path, tmp: Path, kind: str) -> tuple[list[Path], str]:
    ok = lambda i, d: 3  # noqa: E731
    p = tmp / kind / "dave.csv"
    p.parent.mkdir()
    rows = sheet(review)
    if kind == "missing_column":
        return [fill(review, p, ok, header=[c for c in rows[0] if c != "专业性"])], r"dave\.csv:1: missing column\(s\) 专业性"
    if kind == "out_of_range":  # the line named is where that row starts in the file (cells span lines)
        fill(review, p, lambda i, d: 6 if i == 2 and d == "流畅性" else 3)
        line = next(n for n, t in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if rows[2]["item_id"] in t)
        return [p], rf"dave\.csv:{line}: column 流畅性: '6'"
    if kind == "not_a_number":
        return [fill(review, p, lambda i, d: "好" if i == 0 else 3)], r"dave\.csv:\d+: column 准确性: '好'"
    if kind == "fraction":
        return [fill(review, p, lambda i, d: "3.5" if i == 1 else 3)], r"dave\.csv:\d+: column 准确性: '3\.5'"
    if kind == "unknown_id":
        rows[3]["item_id"] = "zzz-123"
        return [fill(review, p, ok, rows=rows)], r"dave\.csv:\d+: unknown item_id 'zzz-123'"
    if kind == "duplicate_id":
        return [fill(review, p, ok, rows=rows + [dict(rows[0])])], r"dave\.csv:\d+: item_id .* appears twice"
    if kind == "other_run":
        for r in rows:
            r["run_id"] = "deadbeef"
        return [fill(review, p, ok, rows=rows)], r"dave\.csv:2: run_id 'deadbeef' is not this run's"
    if kind == "empty":
        p.write_text(",".join(rows[0]) + "\n", encoding="utf-8")
        return [p], r"dave\.csv: no rows"
    if kind == "not_utf8":
        return [fill(review, p, ok, encoding="gbk")], r"dave\.csv: not UTF-8"
    if kind == "same_reviewer_twice":
        q = tmp / "again" / "dave.csv"
        q.parent.mkdir()
        return [fill(review, p, ok), fill(review, q, ok)], r"dave\.csv: reviewer 'dave' imported twice"
    raise AssertionError(kind)


BAD = ["missing_column", "out_of_range", "not_a_number", "fraction", "unknown_id", "duplicate_id", "other_run",
       "empty", "not_utf8", "same_reviewer_twice"]


@pytest.mark.parametrize("kind", BAD)
def test_malformed_sheet_is_a_located_error_and_changes_nothing(review, tmp_path, capsys, kind):
    good = fill(review, tmp_path / "alice.csv", lambda i, d: 1 + i % 5)
    assert main(["review-import", str(review), str(good)]) == 0
    before = {p.name: p.read_bytes() for p in review.glob("*.json")}
    sheets, where = _bad(review, tmp_path, kind)
    capsys.readouterr()
    assert main(["review-import", str(review), *map(str, sheets)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert __import__("re").search(where, err), err
    assert {p.name: p.read_bytes() for p in review.glob("*.json")} == before


def _reviews(matrix: list[list[float]]) -> tuple[dict, list[str]]:
    ids = [f"i{j}" for j in range(len(matrix[0]))]
    reviews = {f"r{k}": {i: {d: (None if np.isnan(v) else int(v)) for d in DIMENSIONS} for i, v in zip(ids, row, strict=True)}
               for k, row in enumerate(matrix)}
    return reviews, ids


def test_alpha_ordinal_matches_hand_computation():
    # Units (1,1) (2,2) (3,4): n1=n2=2, n3=n4=1, n=6. Ordinal δ²(c,k) = (Σ_{g=c..k} n_g − (n_c+n_k)/2)².
    # Observed: o34 = o43 = 1, δ²(3,4) = 1 → 2. Expected Σ n_c n_k δ² (ordered) = 2·(4·4 + 2·12.25 + 2·20.25 +
    # 2·2.25 + 2·6.25 + 1·1) = 198. α = 1 − (n−1)·2/198 = 1 − 10/198.
    reviews, ids = _reviews([[1, 2, 3], [1, 2, 4]])
    assert alpha(reviews, ids, "准确性") == pytest.approx(1 - 10 / 198)
    # A unit rated once is not pairable and drops out: units (1,2) (5,5), n1=n2=1, n5=2, n=4.
    # Observed 2·δ²(1,2) = 2·1; expected 2·(1·1 + 2·6.25 + 2·2.25) = 36; α = 1 − 3·2/36 = 5/6.
    reviews, ids = _reviews([[1, 5, np.nan], [2, 5, 3]])
    assert alpha(reviews, ids, "流畅性") == pytest.approx(5 / 6)


def test_alpha_needs_two_reviewers_and_identical_scores_agree_fully():
    reviews, ids = _reviews([[1, 2, 3]])
    assert alpha(reviews, ids, "准确性") is None
    reviews, ids = _reviews([[4, 4], [4, 4]])
    assert alpha(reviews, ids, "准确性") == 1.0


def test_adjudication_queue_takes_spreads_of_two_or_more():
    reviews, ids = _reviews([[1, 3, 5], [2, 5, 5]])
    mapping = {i: {"system": "tuned", "sample": n} for n, i in enumerate(ids)}
    queue = adjudication(reviews, mapping)
    assert {(q["item_id"], q["dimension"]) for q in queue} == {("i1", d) for d in DIMENSIONS}
