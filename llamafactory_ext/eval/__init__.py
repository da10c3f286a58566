"""Evaluation wing: predictions + expert scores → metrics (pure) → statistics → review → report; export → verify.

Pure modules (metrics, thinking, terms, stats, review, report_html) take plain rows; perplexity and export load
models lazily. The CLI on top is ``python -m llamafactory_ext.evaluate``.
"""
