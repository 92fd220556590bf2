import logging
from pathlib import Path

import dagster as dg
from pydantic import Field

from pgvector_pipeline.backup import BackupResult, Log, back_up_store
from pgvector_pipeline.postgres.connection import redact_dsn


class PgVectorResource(dg.ConfigurableResource):
    """The PostgreSQL database holding the LangChain PGVector tables: streams backups out with COPY TO."""

    dsn: str = Field(
        description=(
            "libpq connection string or URI of the database, normally from the PGVECTOR_DSN environment "
            "variable. To target another database in one run, set {env: OTHER_VAR}; keep passwords in "
            "environment variables or ~/.pgpass, never in run config."
        )
    )
    db_schema: str = Field(default="public", description="Schema holding langchain_pg_collection and langchain_pg_embedding.")

    @property
    def redacted_dsn(self) -> str:
        return redact_dsn(self.dsn)

    def back_up(
        self,
        root: Path,
        task: str,
        timestamp: str,
        *,
        truncate_after_backup: bool = False,
        create_task_dir: bool = False,
        log: Log | logging.Logger | None = None,
    ) -> BackupResult:
        return back_up_store(
            self.dsn,
            self.db_schema,
            root,
            task,
            timestamp,
            truncate_after_backup=truncate_after_backup,
            create_task_dir=create_task_dir,
            log=log,
        )
