"""Fixtures come from the plugin pgvector_pipeline.testing.fixtures (see pyproject's pytest options)."""

import os

# Retry back-off of lost connections in tenths of a second, not seconds (read when a retry is due).
os.environ["PGVECTOR_RETRY_DELAY_S"] = "0.1"
