"""Back up both LangChain tables from one snapshot into a backup set. Plain Python: the Dagster
resource calls this, and so can any other tool."""

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

import psycopg2

from pgvector_pipeline.errors import DataError, PipelineError
from pgvector_pipeline.postgres.catalog import BACKUP_TABLES, EMBEDDING_TABLE, TableDescription, langchain_layout
from pgvector_pipeline.postgres.connection import classify_error, connect, redact_dsn
from pgvector_pipeline.postgres.maintenance import TruncateStats
from pgvector_pipeline.postgres.snapshot import Snapshot
from pgvector_pipeline.store.backup_set import BackupSetWriter, remove_stale_tmp_files
from pgvector_pipeline.store.files import StreamingFileWriter, human_size, sha256_file
from pgvector_pipeline.store.layout import LOG_FILE_NAME, prepare_backup_dir
from pgvector_pipeline.store.log import append_log_entry
from pgvector_pipeline.store.manifest import MANIFEST_FORMAT


class Log(Protocol):
    def info(self, msg: str) -> None: ...
    def warning(self, msg: str) -> None: ...


@dataclass(frozen=True)
class TableBackup:
    table: str
    path: Path
    rows: int
    bytes: int
    sha256: str
    duration_s: float
    columns: list[dict]


@dataclass(frozen=True)
class BackupResult:
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


def back_up_store(
    dsn: str,
    schema: str,
    root: Path,
    task: str,
    timestamp: str,
    *,
    truncate_after_backup: bool = False,
    create_task_dir: bool = False,
    log: Log | None = None,
) -> BackupResult:
    """Write `{root}/.../vector_bak/*_{timestamp}.csv` and its manifest from one consistent snapshot.

    With `truncate_after_backup`, langchain_pg_embedding is truncated in the same transaction as the
    export, only after both files and the manifest are on disk and re-read with matching checksums.
    On any failure before that point no file of the set remains; the failure is logged and raised.
    """
    log = log or logging.getLogger(__name__)
    started = datetime.now().astimezone()
    clock = time.monotonic()
    directory = prepare_backup_dir(root, task, create_task_dir)
    for leftover in remove_stale_tmp_files(directory):
        log.warning(f"Removed {leftover.name}, left behind by a backup that did not finish.")
    set_writer = BackupSetWriter(directory, timestamp)
    source = redact_dsn(dsn)
    published = False
    try:
        conn = connect(dsn)
        try:
            lock = [EMBEDDING_TABLE] if truncate_after_backup else []
            with Snapshot(conn, schema, lock_for_truncate=lock) as snap:
                pgvector_version = snap.pgvector_version()
                descriptions = {table: snap.describe(table) for table in BACKUP_TABLES}
                counts = {table: snap.count(table) for table in BACKUP_TABLES}
                dimensions = snap.embedding_dimensions(descriptions[EMBEDDING_TABLE], counts[EMBEDDING_TABLE])
                server_version = snap.server_version()
                tables = [
                    _export_table(snap, set_writer, descriptions[table], counts[table], log)
                    for table in BACKUP_TABLES
                ]
                layout = langchain_layout(descriptions[EMBEDDING_TABLE])
                manifest = {
                    "format": MANIFEST_FORMAT,
                    "task_id": task,
                    "timestamp": timestamp,
                    "started_at": started.isoformat(),
                    "finished_at": datetime.now().astimezone().isoformat(),
                    "duration_s": round(time.monotonic() - clock, 3),
                    "source": {
                        "dsn": source,
                        "schema": schema,
                        "server_version": server_version,
                        "pgvector_version": pgvector_version,
                        "langchain_layout": layout,
                    },
                    "embedding_dimensions": dimensions,
                    "tables": {
                        t.table: _manifest_entry(t, descriptions[t.table]) for t in tables
                    },
                }
                manifest_path = set_writer.commit(manifest)
                published = True
                log.info(f"Backup set {timestamp} written to {directory}.")
                truncated = []
                if truncate_after_backup:
                    _verify_on_disk(tables)
                    truncated = snap.truncate_and_commit([EMBEDDING_TABLE])
        finally:
            conn.close()
    except (PipelineError, psycopg2.Error, OSError) as exc:
        error = _as_pipeline_error(exc, published)
        if not published:
            set_writer.abort()
        append_log_entry(directory, f"backup {timestamp} FAILED (task {task}, source {source})", [error.message])
        raise error from exc

    result = BackupResult(
        task=task,
        timestamp=timestamp,
        directory=directory,
        manifest_path=manifest_path,
        log_path=directory / LOG_FILE_NAME,
        source=source,
        pgvector_version=pgvector_version,
        langchain_layout=layout,
        embedding_dimensions=dimensions,
        tables=tables,
        duration_s=time.monotonic() - clock,
        truncated=truncated,
    )
    append_log_entry(directory, _log_headline(result), _log_details(result))
    return result


def _export_table(
    snap: Snapshot, set_writer: BackupSetWriter, description: TableDescription, expected_rows: int, log: Log
) -> TableBackup:
    table = description.name
    log.info(f"Exporting {table}: {expected_rows:,} rows, columns {', '.join(description.column_names)}.")

    def progress(writes: int, written: int) -> None:
        rows = max(writes - 1, 0)
        share = f" ({rows / expected_rows:.0%})" if expected_rows else ""
        log.info(f"{table}: {rows:,} of {expected_rows:,} rows{share}, {human_size(written)} written.")

    clock = time.monotonic()
    writer = set_writer.open_table(table, progress)
    rows = snap.copy_to(table, description.column_names, writer)
    writer.flush_to_disk()
    _check_counts(table, expected_rows, rows, writer)
    duration = time.monotonic() - clock
    log.info(f"Exported {table}: {rows:,} rows, {human_size(writer.bytes)} in {duration:.1f} s.")
    return TableBackup(
        table=table,
        path=writer.path,
        rows=rows,
        bytes=writer.bytes,
        sha256=writer.sha256,
        duration_s=duration,
        columns=[{"name": c.name, "type": c.type, "not_null": c.not_null} for c in description.columns],
    )


def _check_counts(table: str, expected_rows: int, copied_rows: int, writer: StreamingFileWriter) -> None:
    streamed_rows = writer.writes - 1  # the first line is the header
    if not expected_rows == copied_rows == streamed_rows:
        raise DataError(
            f"Row counts of {table} disagree: the snapshot counted {expected_rows}, COPY reported "
            f"{copied_rows}, the file received {streamed_rows}. The set was not written; retry the backup."
        )


def _verify_on_disk(tables: list[TableBackup]) -> None:
    for table in tables:
        if sha256_file(table.path) != table.sha256:
            raise DataError(
                f"{table.path} does not read back with the checksum that was written. The embedding table "
                f"was NOT truncated. Check the disk holding the backup root."
            )


def _manifest_entry(table: TableBackup, description: TableDescription) -> dict:
    return {
        "file": table.path.name,
        "rows": table.rows,
        "bytes": table.bytes,
        "sha256": table.sha256,
        "duration_s": round(table.duration_s, 3),
        "columns": table.columns,
        "create_table": description.create_table,
        "indexes": list(description.indexes),
    }


def _as_pipeline_error(exc: Exception, published: bool) -> PipelineError:
    if isinstance(exc, PipelineError):
        error = exc
    elif isinstance(exc, psycopg2.Error):
        error = classify_error(exc, "backing up")
    else:
        error = DataError(f"Writing the backup files failed: {exc}. Check free space and permissions of the backup root.")
    if published:
        return type(error)(
            f"The backup set was written and verified, but truncating {EMBEDDING_TABLE} failed, so it "
            f"was left unchanged: {error.message}",
            # A retry of the same partition would meet the finished set and refuse to overwrite it.
            can_retry=False,
        )
    return error


def _log_headline(result: BackupResult) -> str:
    return (
        f"backup {result.timestamp} OK (task {result.task}, source {result.source}) "
        f"in {result.duration_s:.1f} s"
    )


def _log_details(result: BackupResult) -> list[str]:
    lines = [
        f"{t.table}: {t.rows} rows, {human_size(t.bytes)}, {t.duration_s:.2f} s -> {t.path.name} (sha256 {t.sha256})"
        for t in result.tables
    ]
    lines += [
        f"truncated {s.table}: {s.rows_before} -> {s.rows_after} rows in {s.duration_s:.2f} s"
        for s in result.truncated
    ]
    return lines + [f"manifest: {result.manifest_path.name}"]
