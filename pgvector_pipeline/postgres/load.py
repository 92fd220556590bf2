"""Loading one backup file into its table: COPY (by several sessions at once into a swapped restore's new table,
through a staging table for chosen collections or a migration, repairing an old-system file's empty fields), the
rows checked against the manifest, and the table's sequences moved past the ids restored."""

import time
from collections.abc import Callable

import psycopg2
import psycopg2.errors
import psycopg2.extensions
from psycopg2 import sql

from pgvector_pipeline.errors import DataError, PipelineError
from pgvector_pipeline.names import DOCUMENT_COLUMN, EMBEDDING_TABLE
from pgvector_pipeline.postgres import catalog
from pgvector_pipeline.postgres.catalog import qualified
from pgvector_pipeline.postgres.collections import ChosenCollections, create_stage, insert_staged, keys_taken_is_clear
from pgvector_pipeline.postgres.connection import COPY_MESSAGE_BYTES, SessionUnavailable
from pgvector_pipeline.postgres.maintenance import count_rows
from pgvector_pipeline.postgres.migrate import duplicated_custom_ids, new_ids
from pgvector_pipeline.postgres.parallel_load import parallel_copy
from pgvector_pipeline.postgres.progress import ProgressEvent, ProgressMonitor
from pgvector_pipeline.postgres.restore_types import CsvSource, RestoreOptions, TableLoad, TableRestoreStats

# Files smaller than this load in one session even when several could: starting sessions costs more than it saves.
PARALLEL_LOAD_MIN_BYTES = 16 << 20


def legacy_not_null_columns(target: catalog.TableDescription, file_columns: list[str]) -> list[str]:
    """Columns whose empty fields load as '' (not NULL) from an old-system CSV.

    That writer made '' and NULL both an empty field. LangChain never writes a NULL document, and a
    NOT NULL text column cannot have held NULL, so for those an empty field was ''; every other column
    reads an empty field as NULL.
    """
    return [
        column.name
        for column in target.columns
        if column.name in file_columns and column.is_text and (column.name == DOCUMENT_COLUMN or column.not_null)
    ]


def load_file(
    dsn: str,
    cur: psycopg2.extensions.cursor,
    schema: str,
    load: TableLoad,
    target: tuple[catalog.TableDescription, tuple[str, ...]],
    before: dict[str, int],
    options: RestoreOptions,
    log: Callable[[str], None],
    monitor: ProgressMonitor,
    *,
    into: str,
    parallel: bool = False,
) -> TableRestoreStats:
    """One file loaded into `into` (its table, or its new table when swapping), `target` describing the table and the
    columns the set lacks (preflight.target_columns), `before` the tables' rows before: by further sessions at once
    when `parallel` (the new tables are committed, see postgres.parallel_load) and they can connect."""
    if parallel and loads_in_parallel([load], options) and binary_loads_straight(cur, load, qualified(schema, into)):
        try:
            return _load_in_parallel(dsn, cur, schema, load, into, before, options, log, monitor)
        except SessionUnavailable as unavailable:
            log(f"{load.table}: loaded by this session alone: no further session could connect ({unavailable}).")
    return _load_table(cur, schema, load, target, before, options, log, into)


def binary_loads_straight(cur: psycopg2.extensions.cursor, load: TableLoad, relation: sql.Composable) -> bool:
    """Whether the rows of `load` COPY straight into `relation`: a CSV always does (the server parses its text into
    any type); a binary file only into columns of the very types the set records (its fields are those types' binary
    forms), else through a stage of those types (see _copy_binary_cast). DataError for a type the database lacks."""
    if load.binary_types is None:
        return True
    return _binary_plan(cur, load, relation)[0] is None


def _binary_plan(
    cur: psycopg2.extensions.cursor, load: TableLoad, relation: sql.Composable
) -> tuple[list[catalog.ColumnType] | None, dict[str, catalog.ColumnType]]:
    """The set's types for a stage (None when they are the relation's), and the relation's columns."""
    assert load.binary_types is not None
    resolved = catalog.set_column_types(cur, load.binary_types)
    for column, set_type, found in zip(load.columns, load.binary_types, resolved, strict=True):
        if found is None:
            raise DataError(
                f"{load.table}.{column}: the set records type {set_type!r}, which this database does not have (or "
                f"this tool does not read as a type). Install what defines it (e.g. the vector extension), or restore "
                f"a CSV set of this table."
            )
    checked = [t for t in resolved if t is not None]
    target = catalog.relation_column_types(cur, relation)
    if all(target[c].oid == t.oid for c, t in zip(load.columns, checked, strict=True)):
        return None, target
    return checked, target


def loads_in_parallel(loads: list[TableLoad], options: RestoreOptions) -> bool:
    """Whether several sessions load one of `loads` (into a swapped restore's new tables): a large file of a set
    with a manifest (an old-system file is repaired while it is read, which one session does)."""
    return (
        options.swap
        and options.load_sessions > 1
        and any(not load.legacy_empty_fields and (load.file_bytes or 0) >= PARALLEL_LOAD_MIN_BYTES for load in loads)
    )


def _load_in_parallel(
    dsn: str,
    cur: psycopg2.extensions.cursor,
    schema: str,
    load: TableLoad,
    into: str,
    before: dict[str, int],
    options: RestoreOptions,
    log: Callable[[str], None],
    monitor: ProgressMonitor,
) -> TableRestoreStats:
    """Load one file into its new table by options.load_sessions sessions (committed together), then check the
    rows this transaction sees in it."""
    started = time.monotonic()
    log(f"Loading {load.table} ({', '.join(load.columns)}) by {options.load_sessions} sessions at once.")
    restored = parallel_copy(
        dsn,
        schema,
        into,
        load.columns,
        load.open_csv,
        options.load_sessions,
        on_sessions=lambda pids: monitor.watch(pids, {into: load.table}),
        binary=load.binary,
    )
    after = count_rows(cur, schema, into)
    check_restored_rows(load, restored, after)
    duration = time.monotonic() - started
    log(f"Loaded {restored:,} rows into {load.table} in {duration:.1f} s.")
    copy_finished(options, load, restored)
    return TableRestoreStats(load.table, before[load.table], restored, after, duration)


def _load_table(
    cur: psycopg2.extensions.cursor,
    schema: str,
    load: TableLoad,
    target: tuple[catalog.TableDescription, tuple[str, ...]],
    before: dict[str, int],
    options: RestoreOptions,
    log: Callable[[str], None],
    into: str | None = None,
) -> TableRestoreStats:
    """Load one file into its table (or into `into`, its new table when swapping) and check the rows."""
    description, filled = target
    chosen = options.chosen
    started = time.monotonic()
    log(f"Loading {load.table} ({', '.join(load.columns)}).")
    if filled:
        log(f"{load.table}: the set has no {', '.join(filled)}; they get NULL or their default.")
    migrating = options.migrate_ids and load.table == EMBEDDING_TABLE
    if chosen is not None and chosen.whole_set and not migrating:
        log(f"{load.table}: the set holds just the collections restored: loading straight into the table.")
        with keys_taken_is_clear(load.table):
            restored = copy_in(cur, schema, load, description)
    elif chosen is not None or migrating:
        restored = _copy_staged(cur, schema, load, description, chosen, migrating, log)
    else:
        restored = copy_in(cur, schema, load, description, into=qualified(schema, into) if into else None)
    after = count_rows(cur, schema, into or load.table)
    check_restored_rows(load, restored, after if options.truncate else None, chosen=chosen is not None)
    duration = time.monotonic() - started
    log(f"Loaded {restored:,} rows into {load.table} in {duration:.1f} s.")
    copy_finished(options, load, restored)
    return TableRestoreStats(load.table, before[load.table], restored, after, duration, filled)


def copy_finished(options: RestoreOptions, load: TableLoad, restored: int) -> None:
    """The last progress event of a file's COPY: all of it. The server's progress is read once a second, so the last
    reading came before the end (a bar stood at 43,452 of 48,000 rows after 'Loaded 48,000 rows')."""
    if options.progress is not None:
        size = load.file_bytes
        options.progress(ProgressEvent(f"COPY {load.table}", restored, restored, "rows", size, size))


def _copy_staged(
    cur: psycopg2.extensions.cursor,
    schema: str,
    load: TableLoad,
    target: catalog.TableDescription,
    chosen: ChosenCollections | None,
    migrating: bool,
    log: Callable[[str], None],
) -> int:
    """Load the file into a staging table (its row count checked against the manifest), then insert its rows into
    the target: only the chosen collections' (see postgres.collections.insert_staged), with new ids when migrating
    (see postgres.migrate); the rows inserted."""
    stage = create_stage(cur, load.table, load.columns, {c.name: c.sql_type or c.type for c in target.data_columns})
    check_restored_rows(load, copy_in(cur, schema, load, target, into=stage), None)  # the whole file's rows
    derived = new_ids(cur) if migrating else None
    if migrating:
        twice = duplicated_custom_ids(cur)
        log(
            f"{load.table}: each row's id is its custom_id where that is unique in the set, else its old uuid"
            + (f" ({twice:,} custom ids appear more than once: their rows keep their uuid)." if twice else ".")
        )
    return insert_staged(cur, schema, target, load.columns, chosen, derived)


def copy_in(
    cur: psycopg2.extensions.cursor,
    schema: str,
    load: TableLoad,
    target: catalog.TableDescription | None,
    into: sql.Composable | None = None,
) -> int:
    """COPY the file into its table (or into `into`, a staging table of the file's columns); the rows loaded.
    `target` describes the table the rows end in, when it exists (see legacy_not_null_columns)."""
    if load.binary_types is not None:
        return _copy_binary(cur, load, into if into is not None else qualified(schema, load.table))
    options: list[sql.Composable] = [sql.SQL("FORMAT csv"), sql.SQL("HEADER")]
    if target is None:  # loading into a staging table only: LangChain's document is the one never-NULL text
        keep_empty = [c for c in load.columns if c == DOCUMENT_COLUMN]
    else:
        keep_empty = legacy_not_null_columns(target, load.columns)
    if load.legacy_empty_fields and keep_empty:
        options.append(sql.SQL("FORCE_NOT_NULL ({})").format(sql.SQL(", ").join(map(sql.Identifier, keep_empty))))
    statement = sql.SQL("COPY {table} ({cols}) FROM STDIN WITH ({options})").format(
        table=into if into is not None else qualified(schema, load.table),
        cols=sql.SQL(", ").join(sql.Identifier(c) for c in load.columns),
        options=sql.SQL(", ").join(options),
    )
    return _copy_stream(cur, statement, load)


# A binary file whose types are not the target's loads through this stage (see _copy_binary).
_BINARY_STAGE = sql.Identifier("pgvector_restore_binary_stage")


def _copy_binary(cur: psycopg2.extensions.cursor, load: TableLoad, relation: sql.Composable) -> int:
    """COPY a binary file into `relation`: straight when its columns are of the set's types; otherwise into a stage
    of the set's types, then INSERT … SELECT with each column cast to the relation's type (json to jsonb, uuid to
    text, vector to vector(n)): DataError naming the column when no cast exists."""
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in load.columns)
    stage_types, target = _binary_plan(cur, load, relation)
    if stage_types is None:
        statement = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT binary)").format(relation, columns)
        return _copy_stream(cur, statement, load)
    cur.execute(
        sql.SQL("CREATE TEMPORARY TABLE {} ({}) ON COMMIT DROP").format(
            _BINARY_STAGE,
            # Types the server printed (format_type of the oids it resolved), never the manifest's text.
            sql.SQL(", ").join(
                sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t.sql_type))
                for c, t in zip(load.columns, stage_types, strict=True)
            ),
        )
    )
    staged = _copy_stream(cur, sql.SQL("COPY {} FROM STDIN WITH (FORMAT binary)").format(_BINARY_STAGE), load)
    casts = sql.SQL(", ").join(
        sql.SQL("CAST({} AS {})").format(sql.Identifier(c), sql.SQL(target[c].sql_type)) for c in load.columns
    )
    try:
        cur.execute("SAVEPOINT pgvector_binary_cast")
        cur.execute(sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {}").format(relation, columns, casts, _BINARY_STAGE))
        inserted = cur.rowcount
        cur.execute("RELEASE SAVEPOINT pgvector_binary_cast")
    except psycopg2.errors.CannotCoerce as exc:
        cur.execute("ROLLBACK TO SAVEPOINT pgvector_binary_cast")
        pairs = ", ".join(
            f"{c} {s.sql_type} -> {target[c].sql_type}"
            for c, s in zip(load.columns, stage_types, strict=True)
            if s.oid != target[c].oid
        )
        raise DataError(
            f"{load.table}: the binary set's column types cannot all be cast to the target's ({pairs}): "
            f"{str(exc).strip().splitlines()[0]}. Restore into a table of the set's types, or restore a CSV set. "
            f"Nothing was committed."
        ) from None
    cur.execute(sql.SQL("DROP TABLE {}").format(_BINARY_STAGE))
    if inserted != staged:
        raise DataError(f"{load.table}: {staged} rows were staged but {inserted} inserted. Nothing was committed.")
    return inserted


def _copy_stream(cur: psycopg2.extensions.cursor, statement: sql.Composable, load: TableLoad) -> int:
    """COPY the load's file with `statement`; the rows loaded. A read error of the file is raised as itself."""
    with load.open_csv() as stream:
        source = _ReadErrors(stream)
        try:
            cur.copy_expert(statement, source, size=COPY_MESSAGE_BYTES)
        except psycopg2.Error:
            # psycopg2 turns an exception raised by read() into "error in .read() call: ...", a driver error.
            if isinstance(source.error, PipelineError):
                raise source.error from None
            raise
    return cur.rowcount


class _ReadErrors:
    """A CSV source that keeps the exception its read() raised, which psycopg2 would report as its own."""

    def __init__(self, source: CsvSource):
        self._source = source
        self.error: Exception | None = None

    def read(self, size: int = -1, /) -> bytes:
        try:
            return self._source.read(size)
        except Exception as exc:
            self.error = exc
            raise

    def readline(
        self, size: int = -1, /
    ) -> bytes:  # part of the file protocol copy_expert is typed with; COPY FROM reads
        return self.read(size)


def check_restored_rows(load: TableLoad, restored: int, after_emptied: int | None, chosen: bool = False) -> None:
    """The rows COPY loaded (or, for chosen collections, inserted) against the manifest; and, for a table emptied
    and locked by this transaction (no other writer), the rows it holds now. An appended table's count includes
    other sessions' new rows."""
    if chosen:
        if load.expected_chosen_rows is not None and restored != load.expected_chosen_rows:
            raise DataError(
                f"{load.table}: {load.expected_chosen_rows} rows of the chosen collections were expected (the "
                f"set's manifest), but {restored} were restored: the set does not hold every collection named, or "
                f"holds them differently. Nothing was committed."
            )
    elif load.expected_rows is not None and restored != load.expected_rows:
        raise DataError(f"{load.table}: the manifest lists {load.expected_rows} rows but COPY loaded {restored}.")
    if after_emptied is not None and after_emptied != restored:
        raise DataError(
            f"{load.table}: COPY loaded {restored} rows into the emptied table, but it holds {after_emptied} "
            f"(a trigger or rule on it changed the load). Nothing was committed."
        )


def advance_sequences(
    cur: psycopg2.extensions.cursor, schema: str, table: str, log: Callable[[str], None], warn: Callable[[str], None]
) -> None:
    """Move each sequence a column of the table owns (serial, identity) past the largest value restored, as pg_dump
    restores a sequence with its table: otherwise the app's next insert takes an id a restored row has."""
    for column, sequence in catalog.owned_sequences(cur, schema, table):
        cur.execute("SELECT pg_catalog.has_sequence_privilege(%s, 'UPDATE')", (sequence,))
        if not catalog.single_value(cur):
            warn(
                f"{table}.{column}: cannot move sequence {sequence} past the restored ids (no UPDATE privilege on it)."
            )
            continue
        cur.execute(
            sql.SQL(
                "SELECT pg_catalog.setval(%s, m) FROM (SELECT pg_catalog.max({column}) AS m FROM {table}) x "
                "WHERE m IS NOT NULL AND m OPERATOR(pg_catalog.>=) (SELECT CASE WHEN is_called THEN last_value "
                "ELSE last_value OPERATOR(pg_catalog.-) 1 END FROM {sequence})"
            ).format(
                column=sql.Identifier(column),
                table=qualified(schema, table),
                # pg_get_serial_sequence's own quoted, qualified name.
                sequence=sql.SQL(sequence),
            ),
            (sequence,),
        )
        moved = cur.fetchone()
        if moved:
            log(f"{table}.{column}: moved sequence {sequence} to {moved[0]:,}, the largest id restored.")
