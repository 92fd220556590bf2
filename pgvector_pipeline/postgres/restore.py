"""A restore of a set's tables in one transaction: all rows or none. The orchestrator of the steps the modules
beside it hold, which other transactions (postgres.pgvector_store) reuse:

restore_tables            one transaction (postgres.transaction): prepare, load each file, swap, build indexes
  _prepare                take the restore lock, run the pre-flight checks (postgres.preflight), then lock, truncate
                          and drop indexes (postgres.indexes), or make the new tables a swap loads (postgres.shadow)
  load_file               one file into its table (postgres.load)
  build_indexes           after the load (postgres.indexes)
The types they share are in postgres.restore_types.
"""

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field

import psycopg2.extensions

from pgvector_pipeline.postgres import catalog, ddl
from pgvector_pipeline.postgres.collections import prepare_chosen
from pgvector_pipeline.postgres.connection import SessionUnavailable
from pgvector_pipeline.postgres.indexes import build_indexes, empty_tables, raise_maintenance_settings
from pgvector_pipeline.postgres.load import advance_sequences, load_file, loads_in_parallel
from pgvector_pipeline.postgres.locks import hold_restore_lock, lock_tables
from pgvector_pipeline.postgres.maintenance import count_rows
from pgvector_pipeline.postgres.preflight import (
    check_privileges,
    check_room,
    ensure_schema_objects,
    placement_of,
    swap_refusal,
    target_columns,
)
from pgvector_pipeline.postgres.progress import ProgressMonitor
from pgvector_pipeline.postgres.restore_types import RestoreOptions, TableLoad, TableRestoreStats, TablesRestored
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
from pgvector_pipeline.postgres.table_sets import refuse_tables_no_backup_takes
from pgvector_pipeline.postgres.transaction import RestoreTransaction


def restore_tables(
    conn: psycopg2.extensions.connection,
    dsn: str,
    schema: str,
    loads: list[TableLoad],
    options: RestoreOptions,
    *,
    log: Callable[[str], None],
    warn: Callable[[str], None],
) -> TablesRestored:
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
                stats.append(prepared.load(dsn, cur, schema, load, options, log, monitor))
            if prepared.shadows:
                transaction.doing = "building the new tables' indexes"
                raise_maintenance_settings(cur, options)
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

    def load(
        self,
        dsn: str,
        cur: psycopg2.extensions.cursor,
        schema: str,
        load: TableLoad,
        options: RestoreOptions,
        log: Callable[[str], None],
        monitor: ProgressMonitor,
    ) -> TableRestoreStats:
        """One file loaded into its table, or its new table when swapping (see postgres.load)."""
        target, into = self.targets[load.table], self.loaded_table(load.table)
        return load_file(
            dsn, cur, schema, load, target, self.rows_before, options, log, monitor, into=into, parallel=self.parallel
        )

    def index_builds(self, cur: psycopg2.extensions.cursor, schema: str, options: RestoreOptions) -> list[str]:
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
    cur: psycopg2.extensions.cursor,
    dsn: str,
    schema: str,
    loads: list[TableLoad],
    options: RestoreOptions,
    log: Callable[[str], None],
) -> _Prepared:
    """Take the restore lock, create what is missing, check headers and privileges, then lock, truncate and drop
    indexes as the options say: everything that can refuse comes before anything that changes rows."""
    hold_restore_lock(cur, schema)
    created = ensure_schema_objects(cur, schema, loads, options.table_ddl)
    refuse_tables_no_backup_takes(cur, schema, [load.table for load in loads])
    targets = {load.table: target_columns(cur, schema, load, options) for load in loads}
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


def _shadows(
    cur: psycopg2.extensions.cursor,
    dsn: str,
    schema: str,
    loads: list[TableLoad],
    options: RestoreOptions,
    log: Callable[[str], None],
) -> tuple[list[str], list[Shadow], bool]:
    """The leftovers dropped first, the new tables beside the live ones, and whether further sessions load them: then
    the tables are committed by a further session (they must exist outside this transaction; dropped again on any
    failure, and a killed restore's are dropped by the next one); else they are made in this transaction."""
    tables = [load.table for load in loads]
    if loads_in_parallel(loads, options):
        try:
            return (*committed_shadows(dsn, schema, tables), True)
        except SessionUnavailable as unavailable:
            log(f"Loading {', '.join(tables)} in this session alone: no further session could connect ({unavailable}).")
    return drop_leftovers(cur, schema), create_shadows(cur, schema, tables), False


def _hold_writers_off(cur: psycopg2.extensions.cursor, schema: str, tables: list[str]) -> dict[str, int]:
    """SHARE-lock the live tables until the swap (bounded wait): readers go on, writers wait, so no write is made
    to a table about to be replaced. The rows they hold now."""
    lock_tables(cur.connection, cur, schema, tables, "SHARE", "the restore (holding writers off until the swap)")
    return {table: count_rows(cur, schema, table) for table in tables}


def _prepare_tables(
    cur: psycopg2.extensions.cursor,
    schema: str,
    loads: list[TableLoad],
    options: RestoreOptions,
    created: list[str],
    log: Callable[[str], None],
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
