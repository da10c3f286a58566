"""OpenAI-compatible endpoints: one client (retries, cache, concurrency), one reasoning parser, and the two jobs
that use them — reasoning synthesis for data without it, and predictions from a served model for evaluation."""
