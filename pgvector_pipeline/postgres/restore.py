"""Loading backup CSVs into the LangChain tables in one transaction: all rows or none.

restore_tables          one transaction: prepare, COPY each table and count, build indexes
  RestoreTransaction    commits on success (or rolls back to verify only), rolls back on error
  _prepare              create what is missing, check headers and privileges, truncate, drop the
                        indexes an emptied table can rebuild
  _target_columns       the header against the target table: what loads, what is filled, what refuses
  _copy_in              COPY table (header columns) FROM STDIN, with the empty-field rule of the set
"""

import os
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field
from typing import Protocol

import psycopg2
import psycopg2.errors
import psycopg2.extensions
from psycopg2 import sql

from pgvector_pipeline.errors import DatabaseError, DataError, PipelineError, ResourceNotFound, with_outcome
from pgvector_pipeline.names import DOCUMENT_COLUMN, EMBEDDING_TABLE
from pgvector_pipeline.postgres import catalog, ddl
from pgvector_pipeline.postgres.catalog import qualified
from pgvector_pipeline.postgres.collections import (
    ChosenCollections,
    create_stage,
    insert_staged,
    keys_taken_is_clear,
    prepare_chosen,
)
from pgvector_pipeline.postgres.commit import commit_confirmed
from pgvector_pipeline.postgres.connection import (
    COPY_MESSAGE_BYTES,
    SessionUnavailable,
    classify_error,
    rollback_quietly,
)
from pgvector_pipeline.postgres.disk_space import Need, room_for
from pgvector_pipeline.postgres.locks import hold_restore_lock, lock_tables
from pgvector_pipeline.postgres.maintenance import count_rows, truncate_tables
from pgvector_pipeline.postgres.migrate import check_layouts, duplicated_custom_ids, loaded_columns, new_ids
from pgvector_pipeline.postgres.parallel_load import parallel_copy
from pgvector_pipeline.postgres.progress import PROGRESS_INTERVAL_S, ProgressMonitor, ProgressSink
from pgvector_pipeline.postgres.shadow import (
    Shadow,
    committed_shadows,
    create_shadows,
    drop_leftovers,
    drop_old_tables_after,
    drop_shadows_quietly,
    finish_shadows,
    swap_in,
)
from pgvector_pipeline.postgres.swap import swap_blockers
from pgvector_pipeline.postgres.table_sets import refuse_tables_no_backup_takes

# What a failed restore transaction leaves: said with every database error it ends on.
_ROLLED_BACK = "The restore was rolled back: the target tables, their rows and indexes are as they were."
# Files smaller than this load in one session even when several could: starting sessions costs more than it saves.
PARALLEL_LOAD_MIN_BYTES = 16 << 20


class CsvSource(Protocol):
    """A CSV file opened for COPY FROM: read() gives bytes."""

    def read(self, size: int = -1, /) -> bytes: ...


@dataclass(frozen=True)
class TableLoad:
    """One CSV to load: its table, header columns, how to open it, and the rows to expect."""

    table: str
    columns: list[str]  # the CSV header, in file order
    open_csv: Callable[[], AbstractContextManager[CsvSource]]  # closed when the load ends
    expected_rows: int | None  # from the manifest; None for sets without one
    # Sets of the old system wrote '' and NULL alike as an empty field (see `legacy_not_null_columns`).
    legacy_empty_fields: bool = False
    file_bytes: int | None = None  # for progress lines
    # With RestoreOptions.collections: the rows of those collections the set holds (manifest format 3), if known.
    expected_chosen_rows: int | None = None


@dataclass(frozen=True)
class TableDDL:
    """Checked statements (see postgres.ddl) that recreate one table and its indexes."""

    create_table: str
    indexes: list[str]


@dataclass(frozen=True)
class RestoreOptions:
    """How restore_tables loads: truncate first, create what is missing, fill extra columns, commit or roll back."""

    truncate: bool = False
    # Table -> DDL, in restore order: create a missing extension and tables (indexes built after the load).
    table_ddl: dict[str, TableDDL] | None = None
    # Load into a target with columns the set lacks, when each is nullable or has a default.
    fill_extra_columns: bool = False
    # False: everything is checked and loaded, then rolled back.
    commit: bool = True
    # Memory of the index builds after the load (SET LOCAL); "": sized to this machine.
    maintenance_work_mem: str = ""
    # Load only these collections' rows (renamed, replacing the target's, as it says); None: every row.
    chosen: ChosenCollections | None = None
    # A langchain_community set into langchain_postgres tables: embeddings get new ids (see postgres.migrate).
    migrate_ids: bool = False
    # With truncate: load into new tables beside the live ones and swap them in (see postgres.shadow).
    swap: bool = False
    # Swapping: sessions that load a large file into its new table at once (see postgres.parallel_load); 1: the
    # restore's own session, in its transaction.
    load_sessions: int = 1
    # Where progress goes besides the log lines, and how often it is measured (see postgres.progress).
    progress: ProgressSink | None = None
    progress_interval_s: float = PROGRESS_INTERVAL_S


def default_maintenance_work_mem() -> str:
    """An eighth of this machine's memory, between 64 MB and 1 GB (an HNSW build is fast while its graph fits)."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return f"{max(64, min(1024, memory // 8 // 2**20))}MB"


def default_maintenance_workers() -> int:
    """Parallel workers for index builds besides the leader: one per further core, at most 4."""
    return max(0, min((os.cpu_count() or 1) - 1, 4))


@dataclass(frozen=True)
class TableRestoreStats:
    """Rows of one table before and after a restore, and the rows COPY loaded."""

    table: str
    rows_before: int
    rows_restored: int
    rows_after: int
    duration_s: float
    filled_columns: tuple[str, ...] = ()  # target columns the set lacks, left to NULL or their default


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


def restore_tables(
    conn: psycopg2.extensions.connection,
    dsn: str,
    schema: str,
    loads: list[TableLoad],
    options: RestoreOptions,
    *,
    log: Callable[[str], None],
    warn: Callable[[str], None],
) -> "TablesRestored":
    """COPY each load (in the order given: collections first) in one transaction and return per-table counts,
    the objects created and what became of a swap.

    Every statement is executed alone (one statement per execute). On any error the transaction is
    rolled back and the target is unchanged; a COMMIT whose connection drops is looked up (`dsn`).
    """
    with (
        ExitStack() as cleanup,
        RestoreTransaction(conn, dsn, loads, options, warn) as transaction,
        conn.cursor() as cur,
    ):
        prepared = _prepare(cur, dsn, schema, loads, options, log)
        if prepared.parallel:
            cleanup.callback(drop_shadows_quietly, conn, dsn, schema, prepared.shadows, warn)  # no-op once swapped in
        stats = []
        expected = {load.table: (load.expected_rows, load.file_bytes) for load in loads}
        with ProgressMonitor(
            dsn, conn.get_backend_pid(), log, expected, options.progress_interval_s, options.progress
        ) as monitor:
            for load in loads:
                transaction.doing = f"restoring {load.table}"
                stats.append(_load(dsn, cur, schema, load, prepared, options, log, monitor))
            if prepared.shadows:
                transaction.doing = "building the new tables' indexes"
                _raise_maintenance_settings(cur, options)
                dressed_as = finish_shadows(cur, schema, prepared.shadows, log)
                transaction.doing = "swapping the new tables in"
                swap_in(cur, schema, prepared.shadows, log, dressed_as)
            transaction.doing = "moving sequences past the restored ids"
            for load in loads:
                advance_sequences(cur, schema, load.table, log, warn)
            transaction.doing = "building the indexes"
            build_indexes(cur, prepared.index_builds(cur, schema, options), options, log)
    if prepared.shadows and options.commit:
        drop_old_tables_after(conn, dsn, schema, prepared.shadows, warn)
    return TablesRestored(stats, prepared.created, prepared.swap_outcome(options))


@dataclass(frozen=True)
class TablesRestored:
    """What restore_tables did: per-table counts, the objects it created, and what became of a swap ("" an append,
    "swapped in", or "in place: why")."""

    stats: list[TableRestoreStats]
    created: list[str]
    swap: str = ""


# What to do when a restore that appends meets rows the target holds already: one home for the check before the load
# (pgvector_pipeline.restore) and the unique violation during it.
APPEND_CLASH_HINT = (
    "A restore without truncate_before_restore (--truncate) adds the set's rows to the live ones. To roll the tables "
    "back to the set, restore with truncate_before_restore (--truncate); to replace only some collections, name them "
    "with replace_collections (--collections NAME --replace-collections); to keep both, restore them under new "
    "names with rename (--rename OLD=NEW)."
)


class RestoreTransaction:
    """The restore's one transaction, as a context manager: leaving it without an error commits (with a known
    outcome, see postgres.commit), or rolls back when `options.commit` is off; leaving it on an error rolls back
    and raises the error classified, saying what was being done (`doing`) and that nothing changed. The rollback
    never replaces the error that caused it."""

    def __init__(
        self,
        conn: psycopg2.extensions.connection,
        dsn: str,
        loads: list[TableLoad],
        options: RestoreOptions,
        warn: Callable[[str], None],
    ):
        self.conn, self.dsn, self.options, self.warn = conn, dsn, options, warn
        self.tables = ", ".join(load.table for load in loads)
        self.doing = "preparing the target tables"

    def __enter__(self) -> "RestoreTransaction":
        # The transaction begins with the first statement run in it (psycopg2 opens it implicitly).
        self.conn.set_session(
            isolation_level=psycopg2.extensions.ISOLATION_LEVEL_READ_COMMITTED, readonly=False, autocommit=False
        )
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is not None:
            rollback_quietly(self.conn)
            if isinstance(exc, psycopg2.Error):
                error = with_outcome(classify_error(exc, self.doing, self.conn), _ROLLED_BACK)
                if isinstance(exc, psycopg2.errors.UniqueViolation) and not self.options.truncate:
                    error = with_outcome(error, APPEND_CLASH_HINT)
                raise error from exc
            return
        if not self.options.commit:
            rollback_quietly(self.conn)
            return
        commit_confirmed(
            self.conn,
            self.dsn,
            f"the restore of {self.tables}",
            if_unknown=f"Compare the row counts of {self.tables} with the set's manifest: equal counts mean the "
            f"restore was committed.",
            warn=self.warn,
        )


@dataclass(frozen=True)
class _Prepared:
    """The target tables made ready for loading: what was created, each load's columns, the rows before, and
    the indexes dropped to build again after the load."""

    created: list[str]
    targets: dict[str, tuple[catalog.TableDescription, tuple[str, ...]]]
    rows_before: dict[str, int]
    dropped: list[catalog.RebuildableIndex]
    # The new tables loaded in place of the live ones, when the restore swaps (empty: it loads in place).
    shadows: list[Shadow] = field(default_factory=list)
    # Why a truncating restore loads in place ("": it swaps, or it appends).
    in_place_because: str = ""
    # Large files are loaded into committed new tables by further sessions (see postgres.parallel_load).
    parallel: bool = False

    def swap_outcome(self, options: RestoreOptions) -> str:
        """What became of a swap: "" (an append, or in place as asked), "swapped in", or "in place: why"."""
        if not options.swap:
            return ""
        return "swapped in" if self.shadows else f"in place: {self.in_place_because}"

    def loaded_table(self, table: str) -> str:
        """The table the rows of `table` are loaded into: its new table when swapping, else itself."""
        return next((shadow.name for shadow in self.shadows if shadow.live == table), table)

    def index_builds(self, cur, schema: str, options: RestoreOptions) -> list[str]:
        """The dropped indexes, then those of the tables created here (built once, after the loads)."""
        placement = placement_of(cur, schema)
        created = [
            ddl.placed(statement, placement)
            for table, table_ddl in (options.table_ddl or {}).items()
            if table in self.created
            for statement in table_ddl.indexes
        ]
        return [index.definition for index in self.dropped] + created


def _prepare(
    cur, dsn: str, schema: str, loads: list[TableLoad], options: RestoreOptions, log: Callable[[str], None]
) -> _Prepared:
    """Take the restore lock, create what is missing, check headers and privileges, then lock, truncate and drop
    indexes as the options say: everything that can refuse comes before anything that changes rows."""
    hold_restore_lock(cur, schema)
    created = _ensure_schema_objects(cur, schema, loads, options.table_ddl)
    refuse_tables_no_backup_takes(cur, schema, [load.table for load in loads])
    targets = {load.table: _target_columns(cur, schema, load, options) for load in loads}
    check_privileges(cur, schema, [load.table for load in loads], options.truncate)
    check_room(cur, schema, loads, log)
    tables = [load.table for load in loads]
    why_not = swap_refusal(cur, schema, tables, options, created) if options.swap else None
    if options.swap and why_not is None:
        before = _hold_writers_off(cur, schema, tables)
        dropped_leftovers, shadows, parallel = _shadows(cur, dsn, schema, loads, options, log)
        if dropped_leftovers:
            log(f"Dropped {', '.join(dropped_leftovers)}, left by a swapped restore that died.")
        log(
            f"Loading into new tables beside {', '.join(tables)}: readers go on until the swap; writers wait (SHARE "
            f"lock) and then write into the restored tables."
        )
        return _Prepared(created, targets, before, [], shadows, parallel=parallel)
    if why_not:
        log(f"Loading in place (the tables cannot be swapped): {why_not}.")
    before, dropped = _prepare_tables(cur, schema, loads, options, created, log)
    return _Prepared(created, targets, before, dropped, in_place_because=why_not or "")


def check_room(cur, schema: str, loads: list[TableLoad], log: Callable[[str], None]) -> None:
    """Refuse before anything changes when the server's disk cannot hold the set's rows beside the live ones (see
    postgres.disk_space); when this process cannot see the server's disk, log the estimate instead."""
    needs = {load.table: Need(load.expected_rows, load.file_bytes or 0) for load in loads}
    rooms = room_for(cur, schema, needs)
    short = [room for room in rooms if not room.enough]
    if short:
        raise DatabaseError(
            f"Not enough disk space on the database server for this restore: {'; '.join(r.described() for r in short)}. "
            f"Nothing was changed. Until it commits, a restore keeps the live rows beside the new ones (a TRUNCATE "
            f"keeps the old files so that a rollback can bring them back; a swapped restore keeps the live tables "
            f"until the swap). Free space on the server, or restore fewer tables or collections."
        )
    log(f"Disk space: {'; '.join(room.described() for room in rooms)}.")


def swap_refusal(cur, schema: str, tables: list[str], options: RestoreOptions, created: list[str]) -> str | None:
    """Why this restore loads in place instead of swapping; None when it can swap."""
    if options.chosen is not None or options.migrate_ids:
        return "restores of some collections and migrations load into the live tables"
    if created:
        return f"{', '.join(created)} were created by this restore, so nobody reads them yet"
    reasons = swap_blockers(cur, schema, tables)
    for table in tables:
        refusal = catalog.index_rebuild_refusal(cur, schema, table)
        if refusal:
            reasons.append(refusal)
    return "; ".join(reasons) or None


def _shadows(
    cur, dsn: str, schema: str, loads: list[TableLoad], options: RestoreOptions, log: Callable[[str], None]
) -> tuple[list[str], list[Shadow], bool]:
    """The leftovers dropped first, the new tables beside the live ones, and whether further sessions load them: then
    the tables are committed by a further session (they must exist outside this transaction; dropped again on any
    failure, and a killed restore's are dropped by the next one); else they are made in this transaction."""
    tables = [load.table for load in loads]
    if _loads_in_parallel(loads, options):
        try:
            return (*committed_shadows(dsn, schema, tables), True)
        except SessionUnavailable as unavailable:
            log(f"Loading {', '.join(tables)} in this session alone: no further session could connect ({unavailable}).")
    return drop_leftovers(cur, schema), create_shadows(cur, schema, tables), False


def _load(
    dsn: str,
    cur,
    schema: str,
    load: TableLoad,
    prepared: "_Prepared",
    options: RestoreOptions,
    log: Callable[[str], None],
    monitor: ProgressMonitor,
) -> TableRestoreStats:
    """One file loaded into its table (or new table): by further sessions at once where they can connect."""
    target, into = prepared.targets[load.table], prepared.loaded_table(load.table)
    if prepared.parallel and _loads_in_parallel([load], options):
        try:
            return _load_in_parallel(dsn, cur, schema, load, into, prepared.rows_before, options, log, monitor)
        except SessionUnavailable as unavailable:
            log(f"{load.table}: loaded by this session alone: no further session could connect ({unavailable}).")
    return _load_table(cur, schema, load, target, prepared.rows_before, options, log, into)


def _loads_in_parallel(loads: list[TableLoad], options: RestoreOptions) -> bool:
    """Whether several sessions load one of `loads` (into a swapped restore's new tables): a large file of a set
    with a manifest (an old-system file is repaired while it is read, which one session does)."""
    return (
        options.swap
        and options.load_sessions > 1
        and any(not load.legacy_empty_fields and (load.file_bytes or 0) >= PARALLEL_LOAD_MIN_BYTES for load in loads)
    )


def _load_in_parallel(
    dsn: str,
    cur,
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
    )
    after = count_rows(cur, schema, into)
    check_restored_rows(load, restored, after)
    duration = time.monotonic() - started
    log(f"Loaded {restored:,} rows into {load.table} in {duration:.1f} s.")
    return TableRestoreStats(load.table, before[load.table], restored, after, duration)


def _hold_writers_off(cur, schema: str, tables: list[str]) -> dict[str, int]:
    """SHARE-lock the live tables until the swap (bounded wait): readers go on, writers wait, so no write is made
    to a table about to be replaced. The rows they hold now."""
    lock_tables(cur.connection, cur, schema, tables, "SHARE", "the restore (holding writers off until the swap)")
    return {table: count_rows(cur, schema, table) for table in tables}


def check_privileges(cur, schema: str, tables: list[str], truncate: bool) -> None:
    """Refuse before anything changes when the role cannot do what the restore needs."""
    missing = catalog.missing_privileges(cur, schema, tables, truncate)
    if missing:
        raise DatabaseError(
            f"The database role cannot restore into {', '.join(tables)}: it lacks {', '.join(missing)}. Nothing "
            f"was changed. Grant them (GRANT SELECT, INSERT{', TRUNCATE' if truncate else ''} ON ... TO role), or "
            f"restore as the tables' owner."
        )


def _prepare_tables(
    cur, schema: str, loads: list[TableLoad], options: RestoreOptions, created: list[str], log: Callable[[str], None]
) -> tuple[dict[str, int], list[catalog.RebuildableIndex]]:
    """Lock the tables (bounded wait), truncate them if asked and drop the indexes an emptied table rebuilds
    faster; the row counts before, and the dropped indexes."""
    tables = [load.table for load in loads]
    if not options.truncate:
        # Appending: writers may go on (ROW EXCLUSIVE); only a wait for the lock is bounded here.
        lock_tables(cur.connection, cur, schema, tables, "ROW EXCLUSIVE", "the restore")
        before = {table: count_rows(cur, schema, table) for table in tables}
        if options.chosen is not None:
            prepare_chosen(cur, schema, options.chosen, log)
        return before, []
    return empty_tables(cur, schema, tables, created, log)


def empty_tables(
    cur, schema: str, tables: list[str], created: list[str], log: Callable[[str], None]
) -> tuple[dict[str, int], list[catalog.RebuildableIndex]]:
    """Truncate `tables` and drop the indexes an emptied table rebuilds faster after the load (those of tables
    `created` here have none yet); the row counts before, and the dropped indexes."""
    before = {s.table: s.rows_before for s in truncate_tables(cur, schema, tables)}
    # The tables are empty now: one index build after the load is many times faster than updating an HNSW
    # or GIN index row by row (pgvector's advice: load first, index after). That needs the table's owner.
    rebuildable = []
    for table in tables:
        refusal = None if table in created else catalog.index_rebuild_refusal(cur, schema, table)
        if refusal:
            log(
                f"{table}: loading with its indexes in place, which is slower (a large HNSW index can make it "
                f"several times slower): {refusal}, so its indexes cannot be dropped and built again."
            )
        else:
            rebuildable.append(table)
    return before, drop_rebuildable_indexes(cur, schema, rebuildable, log)


def _load_table(
    cur,
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
    return TableRestoreStats(load.table, before[load.table], restored, after, duration, filled)


def advance_sequences(cur, schema: str, table: str, log: Callable[[str], None], warn: Callable[[str], None]) -> None:
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


def drop_rebuildable_indexes(
    cur, schema: str, tables: list[str], log: Callable[[str], None]
) -> list[catalog.RebuildableIndex]:
    """Drop the emptied tables' rebuildable indexes; their definitions, to build them after the load."""
    dropped = []
    for table in tables:
        for index in catalog.rebuildable_indexes(cur, schema, table):
            cur.execute(sql.SQL("DROP INDEX {}").format(qualified(schema, index.name)))
            dropped.append(index)
    if dropped:
        log(
            f"Dropped {len(dropped)} indexes of the emptied tables ({', '.join(i.name for i in dropped)}); they are "
            f"built again after the load, in this transaction (an error anywhere brings them back unchanged)."
        )
    return dropped


def _raise_maintenance_settings(cur, options: RestoreOptions) -> tuple[str, int]:
    """This transaction's memory and parallel workers for index builds; what they were set to."""
    memory = options.maintenance_work_mem or default_maintenance_work_mem()
    workers = default_maintenance_workers()
    # set_config takes the values as parameters; the server checks them (a bad value is a DATABASE_ERROR).
    cur.execute("SELECT pg_catalog.set_config('maintenance_work_mem', %s, true)", (memory,))
    cur.execute("SELECT pg_catalog.set_config('max_parallel_maintenance_workers', %s, true)", (str(workers),))
    return memory, workers


def build_indexes(cur, statements: list[str], options: RestoreOptions, log: Callable[[str], None]) -> None:
    """Build indexes after the load, with the memory and workers of this transaction raised for it."""
    if not statements:
        return
    memory, workers = _raise_maintenance_settings(cur, options)
    for statement in statements:
        started = time.monotonic()
        log(f"Building index (maintenance_work_mem {memory}, {workers} parallel workers): {statement}")
        # A checked DDL statement of the manifest (postgres.ddl) or the server's own pg_get_indexdef.
        cur.execute(statement)
        log(f"Built the index in {time.monotonic() - started:.1f} s.")


def ensure_vector_extension(cur, schema: str, may_create: bool) -> list[str]:
    """The vector extension, created when missing if `may_create`, else ResourceNotFound. What it created."""
    ext_schema = catalog.extension_schema(cur)
    created = []
    if ext_schema is None:
        if not may_create:
            raise ResourceNotFound(
                "The target database has no pgvector extension. Run CREATE EXTENSION vector there, or set "
                "create_missing: true to create it with the tables (needs a set with a manifest)."
            )
        # In public, as CREATE EXTENSION does by default (sessions run with an empty search_path).
        cur.execute("CREATE EXTENSION vector SCHEMA public")
        created.append("extension vector")
    return created


def placement_of(cur, schema: str) -> ddl.Placement:
    """Where a manifest's DDL creates its tables and finds pgvector's names, in this database."""
    return ddl.Placement(schema, catalog.extension_schema(cur) or "public", catalog.pgvector_operator_classes(cur))


def _ensure_schema_objects(
    cur, schema: str, loads: list[TableLoad], table_ddl: dict[str, TableDDL] | None
) -> list[str]:
    # The manifest's DDL names tables without a schema: they are created in the target schema.
    created = ensure_vector_extension(cur, schema, may_create=table_ddl is not None)
    # The DDL's tables come in restore order (a table after those it references), then any other loaded table.
    tables = list(table_ddl or {}) + [load.table for load in loads if load.table not in (table_ddl or {})]
    for table in tables:
        if catalog.table_oid(cur, schema, table) is not None:
            continue
        if table_ddl is None:
            if table in {load.table for load in loads}:
                raise ResourceNotFound(
                    f"Table {schema}.{table} does not exist in the target database. Set create_missing: true "
                    f"to create it from the set's manifest, or create it first (LangChain does on first use)."
                )
            continue
        cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        cur.execute(ddl.placed(table_ddl[table].create_table, placement_of(cur, schema)))
        created.append(table)
    return created


def _target_columns(
    cur, schema: str, load: TableLoad, options: RestoreOptions
) -> tuple[catalog.TableDescription, tuple[str, ...]]:
    """The target's description and the columns left to NULL/defaults; DataError if the header does not fit."""
    target = catalog.describe_table(cur, schema, load.table)
    assert target is not None  # _ensure_schema_objects made sure it exists
    check_layouts(target, load.columns, options.migrate_ids)
    # A migrated embedding file fills id from columns the target lacks (postgres.migrate).
    columns = loaded_columns(load.columns) if options.migrate_ids and load.table == EMBEDDING_TABLE else load.columns
    unknown = [c for c in columns if target.column(c) is None]
    generated = [c.name for c in target.columns if c.generated and c.name in columns]
    if generated:
        raise DataError(
            f"The CSV of {load.table} holds {', '.join(generated)}, a generated column in the target table: "
            f"PostgreSQL computes it and COPY cannot load it. This set was written by a version that exported "
            f"generated columns; restore it into a table where {', '.join(generated)} is an ordinary column, or "
            f"restore a newer set. Nothing was changed."
        )
    # Generated columns fill themselves: they are never "extra".
    extra = [column for column in target.data_columns if column.name not in columns]
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    if unknown or duplicated:
        raise DataError(
            f"The CSV header of {load.table} does not match the target table: columns only in the file "
            f"{unknown or 'none'}{f', named twice {duplicated}' if duplicated else ''}. File columns: "
            f"{load.columns}; table columns: {target.column_names}. Add the missing columns to the target table, "
            f"or restore into a table of the set's layout."
        )
    if not extra:
        return target, ()
    described = [
        f"{c.name} ({'has a default' if c.has_default else 'NOT NULL, no default' if c.not_null else 'nullable'})"
        for c in extra
    ]
    unfillable = [c.name for c in extra if c.not_null and not c.has_default]
    if not options.fill_extra_columns or unfillable:
        advice = (
            f"{', '.join(unfillable)} cannot be filled: give it a default (ALTER TABLE ... ALTER COLUMN ... SET "
            f"DEFAULT ...) or allow NULL in it, then restore again with fill_extra_columns: true."
            if unfillable
            else "To load anyway, set fill_extra_columns: true: each of them gets NULL or its default."
        )
        raise DataError(
            f"The CSV header of {load.table} does not match the target table: columns only in the table "
            f"{[c.name for c in extra]} ({'; '.join(described)}). {advice} Nothing was changed."
        )
    return target, tuple(c.name for c in extra)


def _copy_staged(
    cur,
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
    cur, schema: str, load: TableLoad, target: catalog.TableDescription | None, into: sql.Composable | None = None
) -> int:
    """COPY the file into its table (or into `into`, a staging table of the file's columns); the rows loaded.
    `target` describes the table the rows end in, when it exists (see legacy_not_null_columns)."""
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
