import logging
from pathlib import Path

import dagster as dg
from pydantic import Field

from pgvector_pipeline.backup import BackupResult, Log, back_up_store
from pgvector_pipeline.postgres.catalog import BACKUP_TABLES
from pgvector_pipeline.postgres.connection import connect, redact_dsn
from pgvector_pipeline.postgres.maintenance import TruncateStats, truncate_store
from pgvector_pipeline.restore import RestoreResult, restore_backup_set
from pgvector_pipeline.store.listing import BackupSetInfo


class PgVectorResource(dg.ConfigurableResource):
    """The PostgreSQL database holding the LangChain PGVector tables: COPY TO backups, COPY FROM restores."""

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

    def restore(
        self,
        backup_set: BackupSetInfo,
        *,
        tables: list[str] = BACKUP_TABLES,
        truncate_before_restore: bool = False,
        verify_only: bool = False,
        create_missing: bool = False,
        log: Log | logging.Logger | None = None,
    ) -> RestoreResult:
        return restore_backup_set(
            self.dsn,
            self.db_schema,
            backup_set,
            tables=tables,
            truncate_before_restore=truncate_before_restore,
            verify_only=verify_only,
            create_missing=create_missing,
            log=log,
        )

    def truncate(self, tables: list[str]) -> list[TruncateStats]:
        conn = connect(self.dsn)
        try:
            return truncate_store(conn, self.db_schema, tables)
        finally:
            conn.close()
