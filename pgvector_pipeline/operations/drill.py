"""The restore drill and `verify` (issue 24): proof that a set restores, by restoring it.

The set is restored, with every check a restore makes, into a scratch schema of the target database
(`pgvector_drill_<timestamp>`, created from the manifest's DDL), compared with the set by content (each table's rows
and digest, see postgres.compare) and, for `verify`, with the live tables, then dropped. The live tables are only
read. A drill reports how long the restore took and how old the set's data is: what a rollback would cost and lose.
"""

import time
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from typing import TypedDict

from pgvector_pipeline.contract import RestoreFlags
from pgvector_pipeline.errors import DataError, InvalidParams, ResourceNotFound
from pgvector_pipeline.operations.backup import Log
from pgvector_pipeline.operations.restore import open_encrypted, restore_backup_set
from pgvector_pipeline.postgres.catalog import table_oid
from pgvector_pipeline.postgres.compare import create_scratch, drop_scratch, scratch_schema, table_digest
from pgvector_pipeline.postgres.connection import classified, connect
from pgvector_pipeline.store.backup_set_info import BackupSetInfo
from pgvector_pipeline.store.interface import BackupStore

# Into an empty schema: the tables and their indexes from the manifest, every check, committed (then dropped).
_DRILL_FLAGS = RestoreFlags(create_missing=True)


@dataclass(frozen=True)
class TableComparison:
    """One table of a drilled set: rows and digest as restored (the set's content), and of the live table."""

    table: str
    set_rows: int
    restored_rows: int
    restored_digest: str
    live_rows: int | None = None  # None: not compared, or no such live table
    live_digest: str | None = None

    @property
    def restored_as_recorded(self) -> bool:
        return self.restored_rows == self.set_rows

    @property
    def live_equal(self) -> bool | None:
        if self.live_digest is None:
            return None
        return (self.live_rows, self.live_digest) == (self.restored_rows, self.restored_digest)


class TableReport(TypedDict):
    """One table in a drill's report (DrillResult.report)."""

    table: str
    set_rows: int
    restored_rows: int
    live_rows: int | None
    live_equal: bool | None
    digest: str


class DrillReport(TypedDict):
    """What a drill found, as plain data (DrillResult.report)."""

    restore_s: float
    data_age_hours: float
    live_equal: bool | None
    tables: list[TableReport]


@dataclass(frozen=True)
class DrillResult:
    backup_set: BackupSetInfo
    restore_s: float
    data_age_h: float
    tables: list[TableComparison]
    compared_live: bool = False

    @property
    def rows_restored(self) -> int:
        return sum(t.restored_rows for t in self.tables)

    @property
    def passed(self) -> bool:
        return all(t.restored_as_recorded for t in self.tables)

    @property
    def live_equal(self) -> bool | None:
        """Whether every live table holds what the set holds (a live table that is missing differs); None when the
        live tables were not compared."""
        return all(t.live_equal for t in self.tables) if self.compared_live else None

    def report(self) -> DrillReport:
        """What the drill found, as plain data: the one rendering `verify` prints on both paths (--direct prints it;
        a run records it as its output's RESULT_METADATA, which the client reads back)."""
        return {
            "restore_s": round(self.restore_s, 3),
            "data_age_hours": round(self.data_age_h, 2),
            "live_equal": self.live_equal,
            "tables": [
                {
                    "table": t.table,
                    "set_rows": t.set_rows,
                    "restored_rows": t.restored_rows,
                    "live_rows": t.live_rows,
                    "live_equal": t.live_equal,
                    "digest": t.restored_digest,
                }
                for t in self.tables
            ],
        }


def restore_drill(dsn: str, schema: str, backup_set: BackupSetInfo, compare_live: bool, log: Log) -> DrillResult:
    """Restore `backup_set` into a scratch schema, compare it (and, with `compare_live`, the live tables of
    `schema`) by content, drop it. An encrypted set is opened first (store.sealing): without an identity of its
    recipients the drill fails before anything."""
    open_encrypted(backup_set, log)
    manifest = backup_set.manifest
    if manifest is None:
        raise InvalidParams(
            f"Set {backup_set.timestamp} has no manifest (made by the old system): a drill needs the manifest's table "
            f"definitions. Adopt it first (backup_discovery_sensor), or restore it with allow_legacy."
        )
    scratch = scratch_schema(backup_set.timestamp)
    with closing(connect(dsn)) as conn, conn, conn.cursor() as cur, classified("creating the drill's schema", conn):
        leftovers = create_scratch(cur, scratch)
    if leftovers:
        log.info(f"Dropped {', '.join(leftovers)}, left by a drill that died.")
    try:
        started = time.monotonic()
        restore_backup_set(dsn, scratch, backup_set, _DRILL_FLAGS, log=log)
        restore_s = time.monotonic() - started
        tables = _compare(dsn, scratch, schema, backup_set, compare_live)
    finally:
        with closing(connect(dsn)) as conn, conn, conn.cursor() as cur:
            drop_scratch(cur, scratch)
    age_h = (datetime.now().astimezone() - backup_set.taken_at).total_seconds() / 3600
    result = DrillResult(backup_set, restore_s, age_h, tables, compare_live)
    if not result.passed:
        raise DataError(
            f"Set {backup_set.timestamp} restored other row counts than its manifest records: "
            + ", ".join(f"{t.table} {t.restored_rows:,} of {t.set_rows:,}" for t in tables)
        )
    return result


def set_to_drill(store: BackupStore, task: str, timestamp: str) -> BackupSetInfo:
    """The set `timestamp` of `task`, or (empty timestamp) the location's newest complete set."""
    if timestamp:
        return store.locate(task_id=task, timestamp=timestamp)
    newest = next((s for s in store.list_sets(task_id=task) if s.complete), None)
    if newest is None:
        raise ResourceNotFound(f"There is no complete set in {store.location(task)} to drill.")
    return newest


def _compare(
    dsn: str, scratch: str, schema: str, backup_set: BackupSetInfo, compare_live: bool
) -> list[TableComparison]:
    assert backup_set.manifest is not None
    compared = []
    with closing(connect(dsn)) as conn, conn, conn.cursor() as cur, classified("comparing the tables", conn):
        for table, entry in backup_set.manifest.tables.items():
            columns = [c.name for c in entry.columns]
            rows, digest = table_digest(cur, scratch, table, columns)
            live: tuple[int | None, str | None] = (None, None)
            if compare_live and table_oid(cur, schema, table) is not None:
                live = table_digest(cur, schema, table, columns)
            compared.append(TableComparison(table, entry.rows, rows, digest, *live))
    return compared
