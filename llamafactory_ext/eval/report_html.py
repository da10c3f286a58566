"""eval_report.html: one self-contained page (inline CSS, no scripts, every text escaped) of all eval results."""

from __future__ import annotations

import html

from . import export, metrics, perplexity, stats, terms, thinking

CSS = ("body{font-family:sans-serif;margin:2em;max-width:80em}table{border-collapse:collapse;margin:1em 0}"
       "td,th{border:1px solid #bbb;padding:.3em .6em;vertical-align:top}pre{white-space:pre-wrap;margin:0;max-height:16em;overflow:auto}"
       ".ok{color:#060}.bad{color:#a00}small{color:#555}")
SHOWN = 3  # best / worst examples per side


def _e(x) -> str:
    return html.escape(str(x))


def _num(x) -> str:
    return "—" if x is None else f"{x:.4f}" if isinstance(x, float) else _e(x)


def _table(head: list[str], rows: list[list]) -> str:
    h = "".join(f"<th>{_e(c)}</th>" for c in head)
    body = "".join("<tr>" + "".join(f"<td>{_num(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{h}</tr>{body}</table>"


def _defs(defs: dict) -> str:
    return "<dl>" + "".join(f"<dt><b>{_e(k)}</b></dt><dd><small>{_e(v)}</small></dd>" for k, v in defs.items()) + "</dl>"


def metric_section(totals: dict) -> str:
    keys = list(next(iter(totals.values())))
    rows = [[k, *(totals[v].get(k) for v in totals)] for k in keys]
    defs = {**metrics.DEFINITIONS, **{f"view {k}": v for k, v in metrics.VIEWS.items()}}
    return "<h2>Metrics</h2>" + _table(["metric", *totals], rows) + _defs(defs)


def examples_section(rows: list[dict], per: list[dict]) -> str:
    order = sorted(range(len(rows)), key=lambda i: per[i]["answer"]["char_f1"])
    picks = [("worst", i) for i in order[:SHOWN]] + [("best", i) for i in order[::-1][:SHOWN]]
    body = [[k, i, per[i]["answer"]["char_f1"], _Pre(rows[i]["label"]), _Pre(rows[i]["predict"])] for k, i in picks]
    return "<h2>Best and worst examples (answer char F1)</h2>" + _raw_table(
        ["", "sample", "char_f1", "reference", "prediction"], body)


class _Pre(str):
    """A cell shown as escaped preformatted text."""


def _raw_table(head: list[str], rows: list[list]) -> str:
    cell = lambda c: f"<pre>{_e(c)}</pre>" if isinstance(c, _Pre) else _num(c)  # noqa: E731
    h = "".join(f"<th>{_e(c)}</th>" for c in head)
    return f"<table><tr>{h}</tr>" + "".join(
        "<tr>" + "".join(f"<td>{cell(c)}</td>" for c in r) + "</tr>" for r in rows) + "</table>"


def compare_section(cmp: dict) -> str:
    rows = [[k, c["base"], c["tuned"], c["delta"], f"[{c['ci_low']:.4f}, {c['ci_high']:.4f}]", c["better"],
             c["worse"]] for k, c in cmp.items()]
    return ("<h2>Base vs tuned</h2>" + _table(["metric", "base", "tuned", "delta", "95% CI", "better", "worse"], rows)
            + f"<p><small>{_e(stats.DEFINITION)}</small></p>")


def thinking_section(th: dict) -> str:
    rows = [[k, th["checks"][k], th["failures"][k], thinking.CHECKS[k]] for k in thinking.CHECKS]
    forms = _table(["form", "count", "meaning"], [[f, n, thinking.FORMS[f]] for f, n in th["forms"].items()])
    return (f"<h2>Thinking compliance: {th['compliance']:.1f}%</h2>"
            + _table(["check", "pass %", "failures", "definition"], rows) + forms)


def terms_section(t: dict) -> str:
    rows = [[k, r["ref"], r["pred"], r["hit"], r["recall"], r["precision"]] for k, r in t["terms"].items()]
    cats = [[k, r["ref"], r["pred"], r["hit"], r["recall"], r["precision"]] for k, r in t["categories"].items()]
    head = ["", "in refs", "in preds", "both", "recall %", "precision %"]
    return (f"<h2>Domain terms: recall {_num(t['recall'])}, precision {_num(t['precision'])}</h2>"
            + _table(["category", *head[1:]], cats) + _table(["term", *head[1:]], rows) + _defs(terms.DEFINITIONS))


def ppl_section(p: dict) -> str:
    rows = [[k, v.get("perplexity"), v.get("perplexity_geomean"), v.get("tokens")] for k, v in p.items()]
    return "<h2>Perplexity</h2>" + _table(["model", "corpus", "geometric mean", "tokens"], rows) + _defs(
        perplexity.DEFINITIONS)


def review_section(r: dict) -> str:
    rows = [[d, v["alpha"], ", ".join(f"{s} {m:.2f}" for s, m in v["mean"].items())] for d, v in r["dimensions"].items()]
    q = [[a["item_id"], a["system"], a["dimension"], ", ".join(f"{k}={v}" for k, v in a["scores"].items())]
         for a in r["adjudicate"]]
    return ("<h2>Expert review</h2>" + _table(["dimension", "Krippendorff alpha (ordinal)", "mean score"], rows)
            + "<h3>To adjudicate</h3>" + _table(["item", "system", "dimension", "scores"], q))


def votes_section(ranked: list) -> str:
    """Blind A/B votes from the web app (serve/votes.py), ranked by Bradley–Terry with bootstrap 95% CIs."""
    rows = [[i, r.name, f"{r.score:+.2f}", f"[{r.low:+.2f}, {r.high:+.2f}]", r.games] for i, r in enumerate(ranked, 1)]
    return ("<h2>Blind pairwise votes</h2>" + _table(["rank", "system", "Bradley–Terry log-strength",
                                                     "95% CI (bootstrap)", "games"], rows)
            + "<p><small>Ties count half a win each, both-bad counts nothing; half a pseudo-win per compared pair keeps "
              "an unbeaten system finite.</small></p>")


def export_section(m: dict) -> str:
    v = m["verdict"]
    cls, word = ("ok", "VERIFIED") if v["verified"] else ("bad", "NOT VERIFIED")
    rows = [[k, c["value"], c["max"], "pass" if c["ok"] else "fail"] for k, c in v["checks"].items()]
    advice = "".join(f"<li>{_e(a)}</li>" for a in v["advice"])
    return (f"<h2>Export <span class='{cls}'>{word}</span></h2><p>{_e(m['export_dir'])}</p>"
            + _table(["check", "value", "threshold", ""], rows) + (f"<ul>{advice}</ul>" if advice else "")
            + f"<p><small>thresholds: {_e(export.THRESHOLDS)}</small></p>")


def recs_section(recs: list[dict]) -> str:
    return "<h2>Recommendations</h2>" + _table(["finding", "evidence", "action"],
                                                [[r["finding"], r["evidence"], r["action"]] for r in recs])


def render(data: dict) -> str:
    """Sections for whatever ``data`` holds: totals, rows+per, compare, thinking, terms, ppl, review, export."""
    parts = [metric_section(data["totals"])] if data.get("totals") else []
    if data.get("rows"):
        parts.append(examples_section(data["rows"], data["per"]))
    for key, fn in (("compare", compare_section), ("thinking", thinking_section), ("terms", terms_section),
                    ("ppl", ppl_section), ("review", review_section), ("votes", votes_section),
                    ("export", export_section),
                    ("recommendations", recs_section)):
        if data.get(key):
            parts.append(fn(data[key]))
    title = _e(data.get("title", "Evaluation report"))
    return (f"<!doctype html><html lang='zh'><head><meta charset='utf-8'><title>{title}</title>"
            f"<style>{CSS}</style></head><body><h1>{title}</h1>{''.join(parts)}</body></html>\n")
