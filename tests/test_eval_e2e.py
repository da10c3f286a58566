"""A real tiny-model job through the eval wing: LF train/predict/export → metrics (LF parity on LF's own
predict_results.json), base vs tuned, perplexity with the adapter unmerged, verified merge export, the report
opened in headless Chromium. Values are meaningless (random weights); every file is LF's own output.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from conftest import LF_ENV
from eval_support import run_job

from llamafactory_ext.evaluate import main

pytestmark = [pytest.mark.lf, pytest.mark.slow]


@pytest.fixture(scope="module")
def job(tmp_path_factory, tiny_qwen3, run_lf):
    return run_job(tmp_path_factory.mktemp("eval_job"), tiny_qwen3, run_lf)


@pytest.fixture(scope="module")
def evaluated(job, tmp_path_factory):
    """`metrics` on the tuned predictions, and `metrics --run` running the base predict recipe first."""
    with pytest.MonkeyPatch.context() as mp:
        for k, v in {**LF_ENV, "HF_DATASETS_CACHE": str(tmp_path_factory.mktemp("cache"))}.items():
            mp.setenv(k, v)
        mp.chdir(job["work"])  # the recipes' output_dir is relative to the launch folder
        assert main(["metrics", "--recipe", str(job["files"]["_predict"])]) == 0
        assert main(["metrics", "--recipe", str(job["base_recipe"]), "--run"]) == 0
    return {k: job[k] / "eval" for k in ("tuned", "base")}


def read(path):
    return json.loads(path.read_text(encoding="utf-8"))


def test_metrics_equal_lfs_own_predict_results(job, evaluated):
    for side in ("tuned", "base"):
        lf = read(job[side] / "predict_results.json")
        ours = read(evaluated[side] / "eval_totals.json")
        for key in ("bleu-4", "rouge-1", "rouge-2", "rouge-l"):
            assert ours["metrics"]["full"][key] == pytest.approx(lf[f"predict_{key}"], abs=1e-4), (side, key)
        assert set(ours["metrics"]["full"]) <= set(ours["definitions"])


def test_per_sample_records_with_truncation_checked_and_provenance_terms(job, evaluated):
    samples = [json.loads(x) for x in (evaluated["tuned"] / "eval_samples.jsonl").read_text().splitlines()]
    preds = (job["tuned"] / "generated_predictions.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(samples) == len(preds) == 4  # max_samples=4
    assert all(isinstance(s["thinking"]["not_truncated"], bool) for s in samples)  # tokenizer + limit from recipe
    totals = read(evaluated["tuned"] / "eval_totals.json")
    assert totals["terms"]["source"] == "provenance crypto.provenance.jsonl"
    assert totals["terms"]["terms"] and all(s["terms"]["ref_terms"] for s in samples)


def test_base_vs_tuned_table(evaluated, capsys):
    assert main(["compare", str(evaluated["base"]), str(evaluated["tuned"])]) == 0
    out = capsys.readouterr().out
    cmp = read(evaluated["tuned"] / "compare.json")
    base, tuned = read(evaluated["base"] / "eval_totals.json"), read(evaluated["tuned"] / "eval_totals.json")
    c = cmp["answer/char_f1"]
    assert c["base"] == pytest.approx(base["metrics"]["answer"]["char_f1"])
    assert c["delta"] == pytest.approx(tuned["metrics"]["answer"]["char_f1"] - c["base"])
    assert c["ci_low"] <= c["delta"] <= c["ci_high"] and c["better"] + c["worse"] + c["same"] == 4
    assert "full/bleu-4" in out and "95% CI" in out


@pytest.fixture(scope="module")
def ppl(job, evaluated):
    common = ["--model", str(job["model"]), "--dataset", "crypto_test", "--dataset-dir", str(job["data"]),
              "--template", job["template"], "--cutoff-len", str(job["cutoff_len"]), "--out", str(evaluated["tuned"])]
    assert main(["ppl", *common, "--adapter", str(job["adapter"]), "--label", "tuned"]) == 0
    assert main(["ppl", *common, "--label", "base"]) == 0
    return read(evaluated["tuned"] / "perplexity.json")


def test_perplexity_with_unmerged_adapter(job, ppl):
    from llamafactory_ext.eval.perplexity import load_model

    model, _ = load_model(str(job["model"]), str(job["adapter"]))
    assert type(model).__name__ == "PeftModelForCausalLM"  # the adapter stays a separate module
    tuned, base = ppl["tuned"], ppl["base"]
    assert tuned["tokens"] == base["tokens"] > 0 and tuned["samples"] == 7  # the whole test split
    assert tuned["perplexity"] != base["perplexity"]  # the adapter is really applied
    assert tuned["perplexity_geomean"] > 1 and set(tuned["definitions"]) == {"perplexity", "perplexity_geomean"}


def test_merge_export_is_verified_and_labelled(job, capsys):
    merged = job["merged"]
    assert main(["verify-export", "--model", str(job["model"]), "--adapter", str(job["adapter"]),
                 "--export-dir", str(merged), "--dataset", "crypto_test", "--dataset-dir", str(job["data"]),
                 "--template", job["template"], "--cutoff-len", str(job["cutoff_len"]), "--n", "3",
                 "--max-new-tokens", "12"]) == 0
    meta = read(merged / "export_metadata.json")
    assert meta["verdict"]["verified"] and "VERIFIED" in capsys.readouterr().out
    # A merge is exact up to float rounding: the same perplexity, the same greedy outputs.
    assert meta["export"]["perplexity"] == pytest.approx(meta["reference"]["perplexity"], rel=1e-4)
    assert meta["base_model"] == str(job["model"]) and meta["adapter"] == str(job["adapter"])
    readme = (merged / "README.md").read_text(encoding="utf-8")
    assert "llamafactory-cli chat" in readme and "vllm serve" in readme and "</think>" in readme


def reviewed(job, tmp_path):
    """Blind sheet of the real base and tuned predictions, filled by two reviewers, imported."""
    import csv

    review = tmp_path / "review"
    assert main(["review-export", str(job["base"]), str(job["tuned"]), "--out", str(review)]) == 0
    rows = list(csv.DictReader((review / "sheet.csv").open(encoding="utf-8")))
    sheets = []
    for name, shift in (("alice", 0), ("bob", 2)):
        for i, r in enumerate(rows):
            r.update({"准确性": str(1 + (i + shift) % 5), "流畅性": "3", "专业性": str(1 + i % 5)})
        path = tmp_path / f"{name}.csv"
        with path.open("w", encoding="utf-8", newline="") as f:
            csv.DictWriter(f, fieldnames=list(rows[0])).writeheader()
            csv.DictWriter(f, fieldnames=list(rows[0])).writerows(rows)
        sheets.append(str(path))
    assert main(["review-import", str(review), *sheets]) == 0
    return review


def test_report_renders_and_opens_in_chromium(job, evaluated, ppl, tmp_path):
    assert main(["compare", str(evaluated["base"]), str(evaluated["tuned"])]) == 0
    assert main(["report", str(evaluated["tuned"]), "--export", str(job["merged"]), "--review",
                 str(reviewed(job, tmp_path)), "--train-dir", str(job["adapter"])]) == 0
    page = evaluated["tuned"] / "eval_report.html"
    text = page.read_text(encoding="utf-8")
    for section in ("Metrics", "Base vs tuned", "Thinking compliance", "Domain terms", "Perplexity", "Expert review",
                    "Export", "Recommendations"):
        assert f"<h2>{section}" in text, section
    assert "<script" not in text and "http" not in text.split("</style>")[0]  # self-contained
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "headless Chromium is needed: apt-get install -y chromium"
    shot = tmp_path / "eval_report.png"
    run = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
                          "--window-size=1200,1600", page.as_uri()], capture_output=True, timeout=120, check=False)
    assert run.returncode == 0 and shot.stat().st_size > 10_000, run.stderr[-2000:]
    dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120, check=False).stdout
    assert "Base vs tuned" in dom and "VERIFIED" in dom
