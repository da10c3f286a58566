"""RUN wing: pre-flight, the supervised worker, alerts, the OOM ladder, the run record and the report."""
