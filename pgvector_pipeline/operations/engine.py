"""The engine: one plain-Python object for what the pipeline does to a database and a backup store (back up,
restore, drill, truncate, check). The Dagster resources build it (PgVectorResource.get_engine, as dagster-aws's
S3Resource.get_client returns a plain client) and `--direct` builds it from its own environment: both then make the
same calls, each taking its request, with the deployment's settings held here rather than passed along."""

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pgvector_pipeline.errors import InvalidParams
from pgvector_pipeline.operations.backup import (
    DEFAULT_CHOICES,
    BackupChoices,
    BackupResult,
    Log,
    back_up_database,
    backup_options,
)
from pgvector_pipeline.operations.check import CheckReport, ExtraCheck, run_checks
from pgvector_pipeline.operations.drill import DrillResult, restore_drill
from pgvector_pipeline.operations.restore import RestoreResult, restore_backup_set
from pgvector_pipeline.postgres.maintenance import TruncateStats, truncate_tables_now
from pgvector_pipeline.run_requests import DrillRequest, RestoreRequest, TruncateRequest
from pgvector_pipeline.settings import DatabaseSettings
from pgvector_pipeline.store.backup_set_info import BackupSetInfo
from pgvector_pipeline.store.interface import BackupStore
from pgvector_pipeline.tables import schema_of


@dataclass(frozen=True)
class Engine:
    """A database (its DSN and schema), the deployment's settings for it (lock and session bounds, index memory) and,
    where one is configured, the backup store."""

    dsn: str
    schema: str
    settings: DatabaseSettings
    store: BackupStore | None = None

    def backup_store(self) -> BackupStore:
        """The backup store this engine was built with."""
        if self.store is None:  # a fault of the caller that built the engine, not of the request
            raise InvalidParams("This engine was built without a backup store: pass the store to build it with.")
        return self.store

    def back_up(
        self,
        task: str,
        timestamp: str | None,
        choices: BackupChoices = DEFAULT_CHOICES,
        *,
        on_claim: Callable[[str], None] | None = None,
        log: Log | logging.Logger | None = None,
    ) -> BackupResult:
        """Back up into the set `timestamp` of `task` in the backup store as `choices` say; None claims a new set (see
        back_up_database)."""
        log = log or logging.getLogger(__name__)
        schema = schema_of(choices.tables, self.schema)  # named tables may name their schema
        settings = self.settings
        options = backup_options(self.dsn, schema, choices, settings.export_sessions, settings.lock_timeout_s, log)
        return back_up_database(
            self.dsn, schema, self.backup_store(), task, timestamp, options, on_claim=on_claim, log=log
        )

    def restore(
        self, backup_set: BackupSetInfo, request: RestoreRequest, log: Log | logging.Logger | None = None
    ) -> RestoreResult:
        """Restore `backup_set` (located by the caller: a partition, the request's task and timestamp, a path) as
        `request` says (see restore_backup_set)."""
        log = log or logging.getLogger(__name__)
        if request.note:
            log.info(f"Restore note: {request.note}")
        settings = self.settings
        return restore_backup_set(
            self.dsn,
            self.schema,
            backup_set,
            request.flags,
            tables=request.tables or None,
            collections=request.collections,
            rename=request.rename,
            migration=request.migration,
            maintenance_work_mem=settings.maintenance_work_mem,
            lock_timeout_s=settings.lock_timeout_s,
            load_sessions=settings.load_sessions,
            log=log,
        )

    def drill(self, backup_set: BackupSetInfo, request: DrillRequest, log: Log | logging.Logger) -> DrillResult:
        """Restore `backup_set` (located by the caller, as `request` names it) into a scratch schema, compare (the
        live tables too where `request` asks), drop (see pgvector_pipeline.operations.drill)."""
        return restore_drill(self.dsn, self.schema, backup_set, request.compare_live, log)

    def truncate(self, request: TruncateRequest, log: Log | logging.Logger) -> list[TruncateStats]:
        """Truncate the tables `request` names in one statement (see truncate_tables_now)."""
        return truncate_tables_now(
            self.dsn, self.schema, list(request.tables), warn=log.warning, lock_timeout_s=self.settings.lock_timeout_s
        )

    def check(self, other_store: BackupStore | None = None, extra: Sequence[ExtraCheck] = ()) -> CheckReport:
        """Whether this deployment works: the database, the backup store (and `other_store`, a copy's other end), the
        newest global backup's age, then `extra` (see pgvector_pipeline.operations.check). Changes nothing."""
        return run_checks(self.dsn, self.schema, self.backup_store(), other_store, extra=extra)
