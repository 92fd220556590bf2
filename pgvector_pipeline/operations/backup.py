"""Back up the tables of a table set (both LangChain tables by default) from one snapshot into a backup
set. Plain Python: the Dagster resource calls this, and so can any other tool.

    back_up_database        claim the set, write it, log what happened
      _write_set            in the snapshot: read every table, publish the manifest, truncate if asked
        _read_snapshot      describe and count every table, then export each
          _export_table     one table: COPY TO STDOUT into the set's table writer, counted and hashed
        _manifest           what the set holds, built from the snapshot's results
        _truncate_verified  re-read the files (a changed one marks the set damaged), count committed rows, truncate,
                            commit (known outcome)
"""

import logging
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from pgvector_pipeline.errors import CommitOutcomeUnknown, DataError, InvalidParams, PipelineError, StorageError, named
from pgvector_pipeline.names import COLLECTION_TABLE, EMBEDDING_COLUMN, EMBEDDING_TABLE, VECTOR_TYPE_PATTERN
from pgvector_pipeline.postgres.catalog import (
    Column,
    TableDescription,
    langchain_layout,
)
from pgvector_pipeline.postgres.connection import DEFAULT_LOCK_TIMEOUT_S, classified, connect, redact_dsn
from pgvector_pipeline.postgres.ddl import (
    UnsafeDDL,
    checked_create_index,
    checked_create_table,
)
from pgvector_pipeline.postgres.maintenance import TruncateStats, count_committed_rows
from pgvector_pipeline.postgres.progress import ProgressEvent, progress_sink
from pgvector_pipeline.postgres.ranges import DEFAULT_EXPORT_SESSIONS
from pgvector_pipeline.postgres.row_filter import ALL_ROWS, RowChoice
from pgvector_pipeline.postgres.snapshot import Snapshot, VectorDimensions
from pgvector_pipeline.postgres.table_sets import resolve_table_set
from pgvector_pipeline.run_requests import BackupRequest
from pgvector_pipeline.set_formats import CSV, DEFAULT_SET_FORMAT, SetFormat, set_format_of
from pgvector_pipeline.sizes import human_size
from pgvector_pipeline.store.codecs import DEFAULT_COMPRESSION, NONE, Compression, compression_of
from pgvector_pipeline.store.damage import read_back_published
from pgvector_pipeline.store.interface import BackupStore, InterruptedSet, SetWriter, TableWriter
from pgvector_pipeline.store.layout import (
    LOG_FILE_NAME,
    is_encrypted_name,
    manifest_name,
    validate_timestamp,
)
from pgvector_pipeline.store.log import manifest_line
from pgvector_pipeline.store.manifest import (
    KIND_BACKUP,
    MANIFEST_FORMAT,
    MANIFEST_FORMAT_ENCRYPTED,
    Manifest,
    ManifestCollections,
    ManifestColumn,
    ManifestEncryption,
    ManifestSource,
    ManifestTable,
)
from pgvector_pipeline.tables import DEFAULT_TABLES, TableSet, TableSpec


class Log(Protocol):
    """What the pipeline logs through: Dagster's context.log, a logging.Logger, or a test's recorder."""

    def info(self, msg: str) -> None: ...
    def warning(self, msg: str) -> None: ...


@dataclass(frozen=True)
class TableBackup:
    """One table of a written set: where it is, what the manifest records of it, and the table's description."""

    table: str
    location: str  # where the set is, as its store names it
    entry: ManifestTable  # its file, rows, the CSV's bytes and sha256, how it is stored, columns and DDL
    description: TableDescription

    @property
    def rows(self) -> int:
        return self.entry.rows

    @property
    def bytes(self) -> int:
        """Of the CSV."""
        return self.entry.bytes

    @property
    def sha256(self) -> str:
        """Of the CSV."""
        return self.entry.sha256

    @property
    def path(self) -> Path:
        """The file in a local store (for messages, metadata and tests)."""
        return Path(self.location) / self.entry.file

    @property
    def columns(self) -> tuple[Column, ...]:
        """The CSV's columns: generated ones are left out (the server computes them again on restore)."""
        return self.description.data_columns


@dataclass(frozen=True)
class BackupResult:
    """A published backup set: where it is, what it holds, and what was truncated after it."""

    task: str
    timestamp: str
    location: str  # where the set is, as its store names it
    source: str
    pgvector_version: str
    langchain_layout: str
    embedding_dimensions: dict[str, int]
    tables: list[TableBackup]
    duration_s: float
    truncated: list[TruncateStats] = field(default_factory=list)
    collections: ManifestCollections | None = None  # which collections the set holds, embeddings of each
    # What the snapshot counted of the vectors (see set_checks.check_written_set): the collections (or tables) whose
    # vectors have several dimensions, and whether every vector column's dimensions were counted or fixed by its type.
    mixed_dimensions: dict[str, list[int]] = field(default_factory=dict)
    dimensions_counted: bool = False
    # The fingerprints of the age recipients the set is encrypted to (store.keys; none: written in clear).
    encrypted_to: tuple[str, ...] = ()
    note: str = ""  # why the backup was taken (BackupOptions.note)

    def table(self, name: str) -> TableBackup:
        return next(t for t in self.tables if t.table == name)

    @property
    def rows(self) -> int:
        """Of every table of the set."""
        return sum(t.rows for t in self.tables)

    @property
    def stored_bytes(self) -> int:
        """Of the set's files, as stored."""
        return sum(t.entry.file_bytes for t in self.tables)

    @property
    def directory(self) -> Path:
        """The set's directory in a local store."""
        return Path(self.location)

    @property
    def manifest_path(self) -> Path:
        return self.directory / manifest_name(self.timestamp)

    @property
    def log_path(self) -> Path:
        return self.directory / LOG_FILE_NAME


@dataclass(frozen=True)
class _SnapshotContents:
    tables: list[TableBackup]
    pgvector_version: str
    server_version: str
    embedding_dimensions: dict[str, int]
    layout: str  # which LangChain package wrote the store (by the embedding table's column names)
    collections: ManifestCollections | None = None
    mixed_dimensions: dict[str, list[int]] = field(default_factory=dict)
    dimensions_counted: bool = False


@dataclass(frozen=True)
class BackupOptions:
    """How a backup runs: which tables, how their files are compressed, whether it truncates after the verified
    set, whether it may create the task's directory, how many sessions export a large table, and how long any
    lock may be waited for."""

    truncate_after_backup: bool = False
    create_task_dir: bool = False
    export_sessions: int = DEFAULT_EXPORT_SESSIONS
    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S
    compression: Compression = DEFAULT_COMPRESSION
    tables: TableSet = DEFAULT_TABLES
    # The collections a per-collection backup takes (by name); empty: every collection.
    collections: tuple[str, ...] = ()
    # How the files hold the rows (see set_formats): CSV, or PostgreSQL's binary COPY stream.
    set_format: SetFormat = DEFAULT_SET_FORMAT
    # Why the backup is taken, as its request says: logged, and recorded in its result and the location's log.
    note: str = ""

    def __post_init__(self) -> None:
        if self.collections and self.truncate_after_backup:
            raise InvalidParams(
                named("truncate_after_backup"),
                f" empties {', '.join(self.tables.truncated_by_default)} whole, and a backup of some collections "
                f"({', '.join(repr(c) for c in self.collections[:5])}) does not hold the others' rows: they would be "
                f"lost. Back up every collection (without ",
                named("collections"),
                ") to truncate after it.",
            )

    @property
    def truncated_tables(self) -> list[str]:
        return self.tables.truncated_by_default if self.truncate_after_backup else []


@dataclass(frozen=True)
class BackupChoices:
    """What a run chooses of a backup (its config); the resource adds how it connects and exports."""

    truncate_after_backup: bool = False
    create_task_dir: bool = False
    compression: Compression = DEFAULT_COMPRESSION
    collections: tuple[str, ...] = ()
    # The tables to back up (empty: LangChain's two), checked against the catalog by backup_options.
    tables: tuple[TableSpec, ...] = ()
    set_format: SetFormat = DEFAULT_SET_FORMAT
    note: str = ""

    @classmethod
    def of(cls, request: BackupRequest) -> "BackupChoices":
        """What `request` chooses, resolved where the backup runs: its compression and format, else the deployment's
        ($PGVECTOR_BACKUP_COMPRESSION, $PGVECTOR_BACKUP_FORMAT; InvalidParams for an unknown codec, level or format),
        and its tables; every other choice is the request's field of the same name, as it is."""
        resolved: dict[str, Any] = {
            "compression": compression_of(request.compression, request.compression_level),
            "set_format": set_format_of(request.format),
            "tables": tuple(TableSpec(t.name, t.where, t.db_schema) for t in request.tables),
        }
        same = {f.name: getattr(request, f.name) for f in fields(cls) if f.name not in resolved}
        return cls(**same, **resolved)


# Every collection, the default compression, nothing truncated, the task directory must exist.
DEFAULT_CHOICES = BackupChoices()


def backup_options(
    dsn: str, schema: str, choices: BackupChoices, export_sessions: int, lock_timeout_s: float, log: Log
) -> BackupOptions:
    """The options of a run that chose `choices`: the tables it names checked against the database's catalog and
    put in restore order (see postgres.table_sets); LangChain's two tables when it names none."""
    tables = DEFAULT_TABLES
    if choices.tables:
        with closing(connect(dsn, lock_timeout_s=lock_timeout_s)) as conn:
            with classified("reading the tables to back up from the catalog", conn), conn.cursor() as cur:
                tables = resolve_table_set(cur, schema, choices.tables, log.warning)
            conn.rollback()
        log.info(
            "Backing up "
            + ", ".join(f"{t.name}" + (f" (rows where {t.row_filter})" if t.row_filter else "") for t in tables.tables)
            + f" of schema {schema}, in this order (tables after those they reference)."
        )
    if choices.truncate_after_backup and not tables.truncated_by_default:
        raise InvalidParams(
            named("truncate_after_backup"),
            f" truncates {', '.join(DEFAULT_TABLES.truncated_by_default)}, which the tables named (",
            named("tables"),
            ") leave out. Name it too, or back up without truncating.",
        )
    fields = {name: value for name, value in vars(choices).items() if name != "tables"}
    return BackupOptions(**fields, tables=tables, export_sessions=export_sessions, lock_timeout_s=lock_timeout_s)


# Export only, into an existing location, with the default compression, sessions and lock bound.
PLAIN_BACKUP = BackupOptions()


@dataclass(frozen=True)
class _Start:
    """When and from where a backup started (the DSN redacted)."""

    at: datetime
    clock: float
    source: str


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
    """Write a set of `options.tables` and its manifest into `store` from one consistent snapshot.

    `timestamp` None claims a new set (the current second, or the next free one), atomically against
    every other start; `on_claim(timestamp)` is called once the set is claimed, before any export.

    With `options.truncate_after_backup`, the tables truncated by default (langchain_pg_embedding) are
    truncated in the same transaction as the export, only after every file and the manifest are stored and
    re-read with matching checksums, and a new session counts exactly the rows the set holds. A large table
    is exported by `options.export_sessions` sessions sharing the snapshot (1: by the snapshot's own
    session; see postgres.ranges). On any failure before the manifest is published no file of the set
    remains; every failure is logged (when the log can be written) and raised as a PipelineError.
    """
    log = log or logging.getLogger(__name__)
    if timestamp is not None:
        validate_timestamp(timestamp)
    if options.note:
        log.info(f"Backup note: {options.note}")
    start = _Start(datetime.now().astimezone(), time.monotonic(), redact_dsn(dsn))
    logbook = _Logbook(store, task, log)
    set_writer = store.new_set(
        task, timestamp, create_task_dir=options.create_task_dir, on_interrupted=logbook.interrupted
    )
    try:
        contents, truncated = _write_set(dsn, schema, set_writer, task, options, start, on_claim, log)
    except PipelineError as error:
        outcome = "published, then FAILED" if set_writer.published else "FAILED"
        logbook.note(
            f"backup {set_writer.timestamp or '(no set claimed)'} {outcome} (task {task}, source {start.source})",
            [error.message],
        )
        raise
    assert set_writer.timestamp is not None
    result = BackupResult(
        task=task,
        timestamp=set_writer.timestamp,
        location=set_writer.location,
        source=start.source,
        pgvector_version=contents.pgvector_version,
        langchain_layout=contents.layout,
        embedding_dimensions=contents.embedding_dimensions,
        tables=contents.tables,
        duration_s=time.monotonic() - start.clock,
        truncated=truncated,
        collections=contents.collections,
        mixed_dimensions=contents.mixed_dimensions,
        dimensions_counted=contents.dimensions_counted,
        encrypted_to=set_writer.encrypted_to,
        note=options.note,
    )
    # The set is published (and the truncate committed): a log that cannot be written only warns.
    logbook.note(_log_headline(result), _log_details(result))
    return result


def _write_set(
    dsn: str,
    schema: str,
    set_writer: SetWriter,
    task: str,
    options: BackupOptions,
    start: _Start,
    on_claim: Callable[[str], None] | None,
    log: Log,
) -> tuple[_SnapshotContents, list[TruncateStats]]:
    """Claim the set, export every table from one snapshot, publish the manifest, then truncate if asked."""
    lock = options.truncated_tables
    with (
        set_writer,
        closing(connect(dsn, lock_timeout_s=options.lock_timeout_s)) as conn,
        Snapshot(
            conn, schema, options.tables.names, lock_for_truncate=lock, dsn=dsn, export_sessions=options.export_sessions
        ) as snap,
    ):
        timestamp = set_writer.timestamp
        assert timestamp is not None
        if on_claim:
            on_claim(timestamp)
        if lock:
            log.info(f"Holding writers of {', '.join(lock)} off until the truncate (SHARE lock taken first).")
        contents = _read_snapshot(snap, set_writer, options, log)
        encryption = ManifestEncryption(recipients=list(set_writer.encrypted_to)) if set_writer.encrypted_to else None
        set_writer.publish(_manifest(task, timestamp, start, schema, contents, options.set_format, encryption))
        log.info(f"Backup set {timestamp} written to {set_writer.location}.")
        truncated = _truncate_verified(snap, set_writer, dsn, schema, contents.tables, lock, log) if lock else []
    return contents, truncated


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


def _read_snapshot(snap: Snapshot, set_writer: SetWriter, options: BackupOptions, log: Log) -> _SnapshotContents:
    names = options.tables.names
    pgvector_version = snap.pgvector_version()
    descriptions = {table: snap.describe(table) for table in names}
    choices = {table.name: RowChoice(options.collections, table.row_filter) for table in options.tables.tables}
    counts = {table: snap.count(table, choices[table]) for table in names}
    per_collection = _collections(snap, options, log)
    embedding_table = options.tables.embedding_table
    dimensions = (
        snap.embedding_dimensions(descriptions[embedding_table], counts[embedding_table], choices[embedding_table])
        if embedding_table
        else VectorDimensions({}, {})
    )
    layout = langchain_layout(descriptions[embedding_table].column_names) if embedding_table else "unknown"
    server_version = snap.server_version()
    for description in descriptions.values():
        _warn_if_not_recreatable(description, options.tables.references_of(description.name), log)
    tables: list[TableBackup] = []
    for table in names:
        export = _Export(
            descriptions[table],
            counts[table],
            options.compression,
            choices[table],
            options.tables.references_of(table),
            options.set_format,
        )
        tables.append(_export_table(snap, set_writer, export, tables, log))
    counted = all(
        _dimensions_known(column, table == embedding_table) for table in names for column in descriptions[table].columns
    )
    return _SnapshotContents(
        tables,
        pgvector_version,
        server_version,
        dimensions.rows_by_dimension,
        layout,
        per_collection,
        dimensions.mixed,
        counted,
    )


def _dimensions_known(column: Column, is_embedding_table: bool) -> bool:
    """Whether the snapshot vouches for the dimensions of a column's vectors: any column that holds none, one whose
    type fixes them (vector(1536)), or the embedding column the snapshot counted per collection."""
    match = VECTOR_TYPE_PATTERN.fullmatch(column.type)
    if match is None or match["dimensions"]:
        return True
    return is_embedding_table and column.name == EMBEDDING_COLUMN


def _collections(snap: Snapshot, options: BackupOptions, log: Log) -> ManifestCollections | None:
    """The collections the set holds and the embeddings of each (None for table sets without LangChain's)."""
    if not {COLLECTION_TABLE, EMBEDDING_TABLE} <= set(options.tables.names):
        return None
    embeddings = snap.embeddings_per_collection(options.collections)
    if options.collections:
        log.info(
            f"Backing up {len(embeddings)} collections: "
            + ", ".join(f"{name!r} ({count:,} embeddings)" for name, count in embeddings.items())
        )
    return ManifestCollections(selected=list(options.collections) or None, embeddings=embeddings)


@dataclass(frozen=True)
class _Export:
    """One table to export: its description, the rows the snapshot counted, how its file is compressed."""

    description: TableDescription
    expected_rows: int
    compression: Compression
    rows: RowChoice = ALL_ROWS  # the rows of the chosen collections, and those the table's row filter keeps
    references: tuple[str, ...] = ()  # the set's tables this table's foreign keys reference
    set_format: SetFormat = DEFAULT_SET_FORMAT


def _warn_if_not_recreatable(description: TableDescription, references: tuple[str, ...], log: Log) -> None:
    """Restore's create_missing executes only DDL its checker accepts: say now if this table's is not."""
    try:
        checked_create_table(description.create_table, description.name, references)
        for statement in description.indexes:
            checked_create_index(statement, description.name)
    except UnsafeDDL as error:
        log.warning(
            f"{description.name}: restore with create_missing will not recreate this table from the set "
            f"(restores into existing tables are not affected). {error.message}"
        )


def _export_table(
    snap: Snapshot, set_writer: SetWriter, export: _Export, done: list[TableBackup], log: Log
) -> TableBackup:
    table, expected_rows = export.description.name, export.expected_rows
    columns = [column.name for column in export.description.data_columns]
    log.info(f"Exporting {table}: {expected_rows:,} rows, columns {', '.join(columns)}.")

    sink = progress_sink(log)

    kind = "CSV" if export.set_format == CSV else "binary COPY"

    def progress(writes: int, written: int) -> None:
        # One write per row, and one more: the CSV's header, or the binary stream's trailer.
        rows = max(writes - 1, 0)
        share = f" ({rows / expected_rows:.0%})" if expected_rows else ""
        log.info(f"{table}: {rows:,} of {expected_rows:,} rows{share}, {human_size(written)} of {kind} written.")
        if sink is not None:
            sink(ProgressEvent(f"export {table}", rows, expected_rows or None, "rows", written))

    clock = time.monotonic()
    writer = set_writer.open_table(table, progress, export.compression, export.set_format)
    try:
        rows = snap.copy_to(table, columns, writer, log.info, export.rows, export.set_format)
        writer.finish()
    except OSError as exc:
        # Estimated from what was stored; the partial file goes first, so the free space shown is real.
        estimate = sum(t.entry.file_bytes for t in done) + writer.stored_bytes * expected_rows // max(
            writer.writes - 1, 1
        )
        raise writer.failed(exc, f"exporting {table}", estimate) from exc
    _check_counts(table, expected_rows, rows, writer)
    duration = time.monotonic() - clock
    stored = "" if writer.codec == NONE else f", stored as {writer.codec} in {human_size(writer.stored_bytes)}"
    if is_encrypted_name(writer.name):
        stored += f", age-encrypted ({human_size(writer.stored_bytes)})"
    log.info(f"Exported {table}: {rows:,} rows, {human_size(writer.bytes)} of {kind}{stored} in {duration:.1f} s.")
    return TableBackup(table, set_writer.location, _manifest_table(writer, rows, duration, export), export.description)


def _check_counts(table: str, expected_rows: int, copied_rows: int, writer: TableWriter) -> None:
    # One message per row and one more: the CSV's header line, or the binary stream's trailer (its header comes with
    # the first row).
    streamed_rows = writer.writes - 1
    if not expected_rows == copied_rows == streamed_rows:
        raise DataError(
            f"Row counts of {table} disagree: the snapshot counted {expected_rows}, COPY reported "
            f"{copied_rows}, the file received {streamed_rows}. The set was not written; retry the backup."
        )


def _manifest(
    task: str,
    timestamp: str,
    start: _Start,
    schema: str,
    contents: _SnapshotContents,
    set_format: SetFormat,
    encryption: ManifestEncryption | None = None,
) -> Manifest:
    """The set's manifest, built (and so validated) through its model: a manifest this tool could not read
    back would make its own set "damaged", so it is also read back from the document it is stored as. An encrypted
    set's (`encryption`: whom its files are encrypted to) is of format 5."""
    manifest = Manifest(
        format=MANIFEST_FORMAT if encryption is None else MANIFEST_FORMAT_ENCRYPTED,
        kind=KIND_BACKUP,
        task_id=task,
        timestamp=timestamp,
        started_at=start.at.isoformat(),
        finished_at=datetime.now().astimezone().isoformat(),
        duration_s=round(time.monotonic() - start.clock, 3),
        source=ManifestSource(
            dsn=start.source,
            schema=schema,
            server_version=contents.server_version,
            pgvector_version=contents.pgvector_version,
            langchain_layout=contents.layout,
        ),
        embedding_dimensions=contents.embedding_dimensions,
        collections=contents.collections,
        set_format=set_format,
        encryption=encryption,
        tables={t.table: t.entry for t in contents.tables},
    )
    return Manifest.model_validate_json(manifest.as_bytes())


def _manifest_table(writer: TableWriter, rows: int, duration: float, export: _Export) -> ManifestTable:
    """What the manifest records of one exported table."""
    description = export.description
    return ManifestTable(
        file=writer.name,
        rows=rows,
        bytes=writer.bytes,
        sha256=writer.sha256,
        codec=writer.codec,
        stored_bytes=writer.stored_bytes,
        stored_sha256=writer.stored_sha256,
        duration_s=round(duration, 3),
        columns=[ManifestColumn(name=c.name, type=c.type, not_null=c.not_null) for c in description.data_columns],
        create_table=description.create_table,
        indexes=list(description.indexes),
        references=list(export.references),
        row_filter=export.rows.row_filter,
    )


def _truncate_verified(
    snap: Snapshot,
    set_writer: SetWriter,
    dsn: str,
    schema: str,
    tables: list[TableBackup],
    truncated: list[str],
    log: Log,
) -> list[TruncateStats]:
    """Truncate `truncated` only if the set's files read back as written and hold exactly the rows committed."""
    names = ", ".join(truncated)
    _reread(set_writer, tables, names)
    try:
        # The SHARE lock was taken before the snapshot, so a new session must see exactly the exported rows.
        for table in tables:
            if table.table not in truncated:
                continue
            committed = count_committed_rows(dsn, schema, table.table)
            if committed != table.rows:
                raise DataError(
                    f"{table.table} holds {committed} committed rows, but the set holds {table.rows}: rows "
                    f"outside the backup would be lost."
                )
        return snap.truncate_and_commit(truncated, dsn, log.warning)
    except CommitOutcomeUnknown as error:
        raise CommitOutcomeUnknown(f"The backup set was written and verified. {error.message}") from error
    except PipelineError as error:
        raise type(error)(
            f"The backup set was written and verified, but {names} was NOT truncated: {error.message}",
            # A retry of the same partition would meet the finished set and refuse to overwrite it.
            can_retry=False,
        ) from error


def _reread(set_writer: SetWriter, tables: list[TableBackup], truncated: str) -> None:
    """Every file of the published set, read back from the store, has the sha256 it was written with; a file that
    does not marks the set damaged (store.damage). Otherwise the backup fails, truncating nothing."""
    published = f"Set {set_writer.timestamp} was published in {set_writer.location}, but"
    try:
        finding = read_back_published(set_writer, {t.table: t.entry for t in tables})
    except PipelineError as error:
        raise StorageError(
            f"{published} its files could not be read back to verify them ({error.message}), so {truncated} was NOT "
            f"truncated. Check the storage holding the backup root, then back up again.",
            can_retry=False,
        ) from error
    if finding is not None:
        raise DataError(
            f"{published} {finding} {truncated} was NOT truncated. Check that storage, then back up again.",
            can_retry=False,
        )


def _log_headline(result: BackupResult) -> str:
    return f"backup {result.timestamp} OK (task {result.task}, source {result.source}) in {result.duration_s:.1f} s"


def _log_details(result: BackupResult) -> list[str]:
    lines = [
        f"{t.table}: {t.rows} rows, {human_size(t.bytes)}, {t.entry.duration_s or 0:.2f} s -> {t.entry.file} "
        f"(sha256 {t.entry.file_sha256})"
        for t in result.tables
    ]
    encrypted = any(t.entry.encrypted for t in result.tables)
    if result.collections is not None and result.collections.selected is not None and not encrypted:
        # Collection names are the store's data: an encrypted set keeps them in its encrypted manifest only.
        lines.append("collections: " + ", ".join(repr(name) for name in result.collections.embeddings))
    lines += [
        f"truncated {s.table}: {s.rows_before} -> {s.rows_after} rows in {s.duration_s:.2f} s" for s in result.truncated
    ]
    if result.note:
        lines.append(f"note: {result.note!r}")  # as a quoted literal: one line whatever it holds
    return lines + [manifest_line(manifest_name(result.timestamp))]
