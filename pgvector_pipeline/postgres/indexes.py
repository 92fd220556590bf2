"""Indexes around a load: an emptied table's indexes dropped (empty_tables) and built again after the load, in the
same transaction, with this transaction's memory and parallel workers for index builds raised (build_indexes)."""

import os
import time
from collections.abc import Callable

import psycopg2.extensions
from psycopg2 import sql

from pgvector_pipeline.postgres import catalog
from pgvector_pipeline.postgres.catalog import qualified
from pgvector_pipeline.postgres.maintenance import truncate_tables
from pgvector_pipeline.postgres.restore_types import RestoreOptions


def default_maintenance_work_mem() -> str:
    """An eighth of this machine's memory, between 64 MB and 1 GB (an HNSW build is fast while its graph fits)."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return f"{max(64, min(1024, memory // 8 // 2**20))}MB"


def default_maintenance_workers() -> int:
    """Parallel workers for index builds besides the leader: one per further core, at most 4."""
    return max(0, min((os.cpu_count() or 1) - 1, 4))


def empty_tables(
    cur: psycopg2.extensions.cursor, schema: str, tables: list[str], created: list[str], log: Callable[[str], None]
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


def drop_rebuildable_indexes(
    cur: psycopg2.extensions.cursor, schema: str, tables: list[str], log: Callable[[str], None]
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


def raise_maintenance_settings(cur: psycopg2.extensions.cursor, options: RestoreOptions) -> tuple[str, int]:
    """This transaction's memory and parallel workers for index builds; what they were set to."""
    memory = options.maintenance_work_mem or default_maintenance_work_mem()
    workers = default_maintenance_workers()
    # set_config takes the values as parameters; the server checks them (a bad value is a DATABASE_ERROR).
    cur.execute("SELECT pg_catalog.set_config('maintenance_work_mem', %s, true)", (memory,))
    cur.execute("SELECT pg_catalog.set_config('max_parallel_maintenance_workers', %s, true)", (str(workers),))
    return memory, workers


def build_indexes(
    cur: psycopg2.extensions.cursor, statements: list[str], options: RestoreOptions, log: Callable[[str], None]
) -> None:
    """Build indexes after the load, with the memory and workers of this transaction raised for it."""
    if not statements:
        return
    memory, workers = raise_maintenance_settings(cur, options)
    for statement in statements:
        started = time.monotonic()
        log(f"Building index (maintenance_work_mem {memory}, {workers} parallel workers): {statement}")
        # A checked DDL statement of the manifest (postgres.ddl) or the server's own pg_get_indexdef.
        cur.execute(statement)
        log(f"Built the index in {time.monotonic() - started:.1f} s.")
