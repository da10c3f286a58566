"""Pure parts of the report and the export verdict: escaping, thresholds, recommendations tied to evidence."""

from __future__ import annotations

from llamafactory_ext.eval.export import MAX_COMPLIANCE_DROP, MAX_PPL_RISE, verdict
from llamafactory_ext.eval.metrics import score_rows
from llamafactory_ext.eval.recommend import recommend
from llamafactory_ext.eval.report_html import render
from llamafactory_ext.eval.thinking import compliance, compliance_totals

EVIL = "<script>alert('x')</script>&<b>"


def test_report_escapes_every_user_text():
    rows = [{"prompt": EVIL, "predict": f"<think>想</think>{EVIL}", "label": EVIL}]
    per, totals = score_rows(rows)
    th = compliance_totals([compliance(rows[0]["predict"])])
    page = render({"title": EVIL, "totals": totals, "rows": rows, "per": per, "thinking": th,
                   "recommendations": [{"finding": EVIL, "evidence": EVIL, "action": EVIL}]})
    assert "<script" not in page and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;&amp;&lt;b&gt;" in page
    assert page.count("<h2>") == 4  # metrics, examples, thinking, recommendations: only sections with data


def test_verdict_passes_at_the_thresholds_and_fails_past_them():
    ref = {"perplexity": 10.0, "compliance": 96.0}
    at = verdict(ref, {"perplexity": 10.0 * (1 + MAX_PPL_RISE) - 1e-9, "compliance": 96.0 - MAX_COMPLIANCE_DROP})
    assert at["verified"] and at["advice"] == []
    worse = verdict(ref, {"perplexity": 10.6, "compliance": 96.0})
    assert not worse["verified"] and not worse["checks"]["ppl_rise"]["ok"] and worse["checks"]["compliance_drop"]["ok"]
    assert any("8-bit" in a for a in worse["advice"])
    assert not verdict(ref, {"perplexity": 10.0, "compliance": 93.0})["verified"]


def test_recommendations_name_the_evidence():
    terms = {"terms": {"椭圆曲线": {"ref": 3, "recall": 33.3}, "密钥": {"ref": 1, "recall": 0.0},
                       "哈希函数": {"ref": 4, "recall": 100.0}}}
    th = compliance_totals([compliance("<think>想", 64, 64), compliance("<think>想</think>答", 5, 64)])
    recs = recommend(terms, th, {"train_loss": 0.5, "eval_loss": 1.2})
    text = " ".join(f"{r['finding']} {r['evidence']} {r['action']}" for r in recs)
    assert "椭圆曲线 33%" in text and "密钥" not in text  # one reference mention is too few to judge
    assert "thinking compliance 50.0%" in text and "max_new_tokens" in text
    assert "eval_loss / train_loss = 2.40" in text and "fewer epochs" in text
    assert recommend(terms={"terms": {}}, thinking=compliance_totals([compliance("<think>a</think>b")])) == []
