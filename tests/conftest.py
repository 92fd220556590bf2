"""Fixtures come from the plugin pgvector_pipeline.testing.fixtures (see pyproject's pytest options)."""

import os
import tempfile

# Retry back-off of lost connections in tenths of a second, not seconds (read when a retry is due).
os.environ["PGVECTOR_RETRY_DELAY_S"] = "0.1"

# A run that forgets the backup_root fixture writes into a throwaway directory, never ./vector_backups of the repo.
os.environ.setdefault("PGVECTOR_BACKUP_ROOT", tempfile.mkdtemp(prefix="pgvector_pipeline_unset_root_"))
