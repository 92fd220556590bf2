"""Back up both LangChain tables from one snapshot into a backup set. Plain Python: the Dagster
resource calls this, and so can any other tool.

    back_up_database        claim the set, read the snapshot, publish the manifest, truncate if asked
      _export_table         one table: COPY TO STDOUT into the set's .tmp file, counted and hashed
      _manifest             what the set holds, built from the snapshot's results
      _truncate_verified    re-read the files, count committed rows, truncate, commit (known outcome)
"""

import logging
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from pgvector_pipeline.errors import CommitOutcomeUnknown, DataError, PipelineError
from pgvector_pipeline.names import BACKUP_TABLES, EMBEDDING_TABLE
from pgvector_pipeline.postgres.catalog import (
    Column,
    TableDescription,
    langchain_layout,
)
from pgvector_pipeline.postgres.connection import DEFAULT_LOCK_TIMEOUT_S, connect, redact_dsn
from pgvector_pipeline.postgres.ddl import (
    UnsafeDDL,
    checked_create_index,
    checked_create_table,
)
from pgvector_pipeline.postgres.maintenance import TruncateStats, count_committed_rows
from pgvector_pipeline.postgres.ranges import DEFAULT_EXPORT_SESSIONS
from pgvector_pipeline.postgres.snapshot import Snapshot
from pgvector_pipeline.sizes import human_size
from pgvector_pipeline.store.interface import BackupStore, InterruptedSet, SetWriter, TableWriter
from pgvector_pipeline.store.layout import (
    LOG_FILE_NAME,
    validate_timestamp,
)
from pgvector_pipeline.store.log import manifest_line
from pgvector_pipeline.store.manifest import (
    KIND_BACKUP,
    MANIFEST_FORMAT,
    Manifest,
    ManifestColumn,
    ManifestSource,
    ManifestTable,
)


class Log(Protocol):
    """What the pipeline logs through: Dagster's context.log, a logging.Logger, or a test's recorder."""

    def info(self, msg: str) -> None: ...
    def warning(self, msg: str) -> None: ...


@dataclass(frozen=True)
class TableBackup:
    """One table of a written set: its CSV, rows, bytes, sha256 and the table's description."""

    table: str
    path: Path
    rows: int
    bytes: int
    sha256: str
    duration_s: float
    description: TableDescription

    @property
    def columns(self) -> tuple[Column, ...]:
        """The CSV's columns: generated ones are left out (the server computes them again on restore)."""
        return self.description.data_columns


@dataclass(frozen=True)
class BackupResult:
    """A published backup set: where it is, what it holds, and what was truncated after it."""

    task: str
    timestamp: str
    directory: Path
    manifest_path: Path
    log_path: Path
    source: str
    pgvector_version: str
    langchain_layout: str
    embedding_dimensions: dict[str, int]
    tables: list[TableBackup]
    duration_s: float
    truncated: list[TruncateStats] = field(default_factory=list)

    def table(self, name: str) -> TableBackup:
        return next(t for t in self.tables if t.table == name)


@dataclass(frozen=True)
class _SnapshotContents:
    tables: list[TableBackup]
    pgvector_version: str
    server_version: str
    embedding_dimensions: dict[str, int]

    @property
    def layout(self) -> str:
        """Which LangChain package wrote the store (by the embedding table's column names)."""
        return langchain_layout(next(t for t in self.tables if t.table == EMBEDDING_TABLE).description)


@dataclass(frozen=True)
class BackupOptions:
    """How a backup runs: whether it truncates after the verified set, whether it may create the task's
    directory, how many sessions export a large table, and how long any lock may be waited for."""

    truncate_after_backup: bool = False
    create_task_dir: bool = False
    export_sessions: int = DEFAULT_EXPORT_SESSIONS
    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S


# Export only, into an existing location, with the default sessions and lock bound.
PLAIN_BACKUP = BackupOptions()


def back_up_database(
    dsn: str,
    schema: str,
    store: BackupStore,
    task: str,
    timestamp: str | None,
    options: BackupOptions = PLAIN_BACKUP,
    *,
    on_claim: Callable[[str], None] | None = None,
    log: Log | None = None,
) -> BackupResult:
    """Write a set of both tables and its manifest into `store` from one consistent snapshot.

    `timestamp` None claims a new set (the current second, or the next free one), atomically against
    every other start; `on_claim(timestamp)` is called once the set is claimed, before any export.

    With `options.truncate_after_backup`, langchain_pg_embedding is truncated in the same transaction as the
    export, only after both files and the manifest are stored and re-read with matching checksums,
    and a new session counts exactly the rows the set holds. A large table is exported by
    `options.export_sessions` sessions sharing the snapshot (1: by the snapshot's own session; see
    postgres.ranges). On any failure before the manifest is published no file of the set remains;
    every failure is logged (when the log can be written) and raised as a PipelineError.
    """
    log = log or logging.getLogger(__name__)
    if timestamp is not None:
        validate_timestamp(timestamp)
    lock = [EMBEDDING_TABLE] if options.truncate_after_backup else []
    started = datetime.now().astimezone()
    clock = time.monotonic()
    source = redact_dsn(dsn)
    logbook = _Logbook(store, task, log)
    set_writer = store.new_set(
        task, timestamp, create_task_dir=options.create_task_dir, on_interrupted=logbook.interrupted
    )
    try:
        with (
            set_writer,
            closing(connect(dsn, lock_timeout_s=options.lock_timeout_s)) as conn,
            Snapshot(
                conn, schema, BACKUP_TABLES, lock_for_truncate=lock, dsn=dsn, export_sessions=options.export_sessions
            ) as snap,
        ):
            timestamp = set_writer.timestamp
            assert timestamp is not None
            if on_claim:
                on_claim(timestamp)
            if lock:
                log.info(f"Holding writers of {EMBEDDING_TABLE} off until the truncate (SHARE lock taken first).")
            contents = _read_snapshot(snap, set_writer, log)
            manifest = _manifest(task, timestamp, started, clock, source, schema, contents)
            manifest_path = set_writer.publish(manifest)
            log.info(f"Backup set {timestamp} written to {set_writer.location}.")
            truncated = (
                _truncate_verified(snap, set_writer, dsn, schema, contents.tables, log)
                if options.truncate_after_backup
                else []
            )
    except PipelineError as error:
        outcome = "published, then FAILED" if set_writer.published else "FAILED"
        logbook.note(
            f"backup {set_writer.timestamp or '(no set claimed)'} {outcome} (task {task}, source {source})",
            [error.message],
        )
        raise
    result = BackupResult(
        task=task,
        timestamp=timestamp,
        directory=Path(set_writer.location),
        manifest_path=Path(manifest_path),
        log_path=Path(set_writer.location) / LOG_FILE_NAME,
        source=source,
        pgvector_version=contents.pgvector_version,
        langchain_layout=contents.layout,
        embedding_dimensions=contents.embedding_dimensions,
        tables=contents.tables,
        duration_s=time.monotonic() - clock,
        truncated=truncated,
    )
    # The set is published (and the truncate committed): a log that cannot be written only warns.
    logbook.note(_log_headline(result), _log_details(result))
    return result


class _Logbook:
    """The location's log as this backup writes to it: a log that cannot be written warns."""

    def __init__(self, store: BackupStore, task: str, log: Log):
        self._store = store
        self._task = task
        self._log = log

    def note(self, headline: str, details: list[str]) -> None:
        self._store.append_log(self._task, headline, details, self._log.warning)

    def interrupted(self, leftover: InterruptedSet) -> None:
        self._log.warning(
            f"Removed the leftovers of set {leftover.timestamp}, whose backup run ended without finishing it: "
            f"{', '.join(leftover.files)} ({human_size(leftover.bytes)})."
        )
        self.note(
            f"backup {leftover.timestamp} INTERRUPTED (found by a later backup into {self._store.location(self._task)})",
            [f"its run ended without finishing; removed {', '.join(leftover.files)} ({human_size(leftover.bytes)})"],
        )


def _read_snapshot(snap: Snapshot, set_writer: SetWriter, log: Log) -> _SnapshotContents:
    pgvector_version = snap.pgvector_version()
    descriptions = {table: snap.describe(table) for table in BACKUP_TABLES}
    counts = {table: snap.count(table) for table in BACKUP_TABLES}
    dimensions = snap.embedding_dimensions(descriptions[EMBEDDING_TABLE], counts[EMBEDDING_TABLE])
    server_version = snap.server_version()
    for description in descriptions.values():
        _warn_if_not_recreatable(description, log)
    tables: list[TableBackup] = []
    for table in BACKUP_TABLES:
        tables.append(_export_table(snap, set_writer, descriptions[table], counts[table], tables, log))
    return _SnapshotContents(tables, pgvector_version, server_version, dimensions)


def _warn_if_not_recreatable(description: TableDescription, log: Log) -> None:
    """Restore's create_missing executes only DDL its checker accepts: say now if this table's is not."""
    try:
        checked_create_table(description.create_table, description.name)
        for statement in description.indexes:
            checked_create_index(statement, description.name)
    except UnsafeDDL as error:
        log.warning(
            f"{description.name}: restore with create_missing will not recreate this table from the set "
            f"(restores into existing tables are not affected). {error.message}"
        )


def _export_table(
    snap: Snapshot,
    set_writer: SetWriter,
    description: TableDescription,
    expected_rows: int,
    done: list[TableBackup],
    log: Log,
) -> TableBackup:
    table = description.name
    columns = [column.name for column in description.data_columns]
    log.info(f"Exporting {table}: {expected_rows:,} rows, columns {', '.join(columns)}.")

    def progress(writes: int, written: int) -> None:
        rows = max(writes - 1, 0)
        share = f" ({rows / expected_rows:.0%})" if expected_rows else ""
        log.info(f"{table}: {rows:,} of {expected_rows:,} rows{share}, {human_size(written)} written.")

    clock = time.monotonic()
    writer = set_writer.open_table(table, progress)
    try:
        rows = snap.copy_to(table, columns, writer, log.info)
        writer.flush_to_disk()
    except OSError as exc:
        # Estimated from what was written; the partial file goes first, so the free space shown is real.
        estimate = sum(t.bytes for t in done) + writer.bytes * expected_rows // max(writer.writes - 1, 1)
        raise writer.failed(exc, f"exporting {table}", estimate) from exc
    _check_counts(table, expected_rows, rows, writer)
    duration = time.monotonic() - clock
    log.info(f"Exported {table}: {rows:,} rows, {human_size(writer.bytes)} in {duration:.1f} s.")
    return TableBackup(
        table, Path(set_writer.location) / writer.name, rows, writer.bytes, writer.sha256, duration, description
    )


def _check_counts(table: str, expected_rows: int, copied_rows: int, writer: TableWriter) -> None:
    streamed_rows = writer.writes - 1  # the first line is the header
    if not expected_rows == copied_rows == streamed_rows:
        raise DataError(
            f"Row counts of {table} disagree: the snapshot counted {expected_rows}, COPY reported "
            f"{copied_rows}, the file received {streamed_rows}. The set was not written; retry the backup."
        )


def _manifest(
    task: str, timestamp: str, started: datetime, clock: float, source: str, schema: str, contents: _SnapshotContents
) -> Manifest:
    """The set's manifest, built (and so validated) through its model: a manifest this tool could not read
    back would make its own set "damaged"."""
    return Manifest(
        format=MANIFEST_FORMAT,
        kind=KIND_BACKUP,
        task_id=task,
        timestamp=timestamp,
        started_at=started.isoformat(),
        finished_at=datetime.now().astimezone().isoformat(),
        duration_s=round(time.monotonic() - clock, 3),
        source=ManifestSource(
            dsn=source,
            schema=schema,
            server_version=contents.server_version,
            pgvector_version=contents.pgvector_version,
            langchain_layout=contents.layout,
        ),
        embedding_dimensions=contents.embedding_dimensions,
        tables={
            t.table: ManifestTable(
                file=t.path.name,
                rows=t.rows,
                bytes=t.bytes,
                sha256=t.sha256,
                duration_s=round(t.duration_s, 3),
                columns=[ManifestColumn(name=c.name, type=c.type, not_null=c.not_null) for c in t.columns],
                create_table=t.description.create_table,
                indexes=list(t.description.indexes),
            )
            for t in contents.tables
        },
    )


def _truncate_verified(
    snap: Snapshot, set_writer: SetWriter, dsn: str, schema: str, tables: list[TableBackup], log: Log
) -> list[TruncateStats]:
    """Truncate the embedding table only if the set on disk holds exactly the rows committed in it."""
    embedding = next(t for t in tables if t.table == EMBEDDING_TABLE)
    try:
        for table in tables:
            if set_writer.reread_sha256(table.table) != table.sha256:
                raise DataError(
                    f"{table.path} does not read back with the checksum that was written. Check the disk "
                    f"holding the backup root."
                )
        # The SHARE lock was taken before the snapshot, so a new session must see exactly the exported rows.
        committed = count_committed_rows(dsn, schema, EMBEDDING_TABLE)
        if committed != embedding.rows:
            raise DataError(
                f"{EMBEDDING_TABLE} holds {committed} committed rows, but the set holds {embedding.rows}: rows "
                f"outside the backup would be lost."
            )
        return snap.truncate_and_commit([EMBEDDING_TABLE], dsn, log.warning)
    except CommitOutcomeUnknown as error:
        raise CommitOutcomeUnknown(f"The backup set was written and verified. {error.message}") from error
    except PipelineError as error:
        raise type(error)(
            f"The backup set was written and verified, but {EMBEDDING_TABLE} was NOT truncated: {error.message}",
            # A retry of the same partition would meet the finished set and refuse to overwrite it.
            can_retry=False,
        ) from error


def _log_headline(result: BackupResult) -> str:
    return f"backup {result.timestamp} OK (task {result.task}, source {result.source}) in {result.duration_s:.1f} s"


def _log_details(result: BackupResult) -> list[str]:
    lines = [
        f"{t.table}: {t.rows} rows, {human_size(t.bytes)}, {t.duration_s:.2f} s -> {t.path.name} (sha256 {t.sha256})"
        for t in result.tables
    ]
    lines += [
        f"truncated {s.table}: {s.rows_before} -> {s.rows_after} rows in {s.duration_s:.2f} s" for s in result.truncated
    ]
    return lines + [manifest_line(result.manifest_path.name)]
