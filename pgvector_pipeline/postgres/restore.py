"""Loading backup CSVs into the LangChain tables in one transaction: all rows or none."""

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from pgvector_pipeline.errors import DataError, ResourceNotFound
from pgvector_pipeline.postgres import catalog
from pgvector_pipeline.postgres.commit import commit_confirmed
from pgvector_pipeline.postgres.connection import classify_error
from pgvector_pipeline.postgres.maintenance import count_rows, qualified, truncate_tables


@dataclass(frozen=True)
class TableLoad:
    table: str
    columns: list[str]  # the CSV header, in file order
    open_csv: Callable[[], BinaryIO]
    expected_rows: int | None  # from the manifest; None for legacy sets


@dataclass(frozen=True)
class TableDDL:
    """Checked statements (see postgres.ddl) that recreate one table and its indexes."""

    create_table: str
    indexes: list[str]


@dataclass(frozen=True)
class TableRestoreStats:
    table: str
    rows_before: int
    rows_restored: int
    rows_after: int
    duration_s: float


def restore_tables(
    conn: psycopg2.extensions.connection,
    dsn: str,
    schema: str,
    loads: list[TableLoad],
    *,
    truncate: bool,
    table_ddl: dict[str, TableDDL] | None,
    commit: bool,
    log: Callable[[str], None],
    warn: Callable[[str], None],
) -> tuple[list[TableRestoreStats], list[str]]:
    """COPY each load (collections first) in one transaction and return per-table counts and created objects.

    `table_ddl` enables creating a missing extension and tables; indexes of tables created here are
    built after the data is loaded. Every statement is executed alone (one statement per execute).
    Without `commit` everything is checked and loaded, then rolled back. On any error the transaction
    is rolled back and the target is unchanged; a COMMIT whose connection drops is looked up (`dsn`).
    """
    conn.set_session(isolation_level=psycopg2.extensions.ISOLATION_LEVEL_READ_COMMITTED, readonly=False, autocommit=False)
    current_table = "the target tables"
    try:
        with conn.cursor() as cur:
            created = _ensure_schema_objects(cur, schema, loads, table_ddl)
            for load in loads:
                _check_header(cur, schema, load)
            if truncate:
                before = {s.table: s.rows_before for s in truncate_tables(cur, schema, [l.table for l in loads])}
                baseline = {load.table: 0 for load in loads}
            else:
                before = {load.table: count_rows(cur, schema, load.table) for load in loads}
                baseline = before
            stats = []
            for load in loads:
                current_table = load.table
                started = time.monotonic()
                log(f"Loading {load.table} ({', '.join(load.columns)}).")
                restored = _copy_in(cur, schema, load)
                after = count_rows(cur, schema, load.table)
                _check_restored_rows(load, restored, baseline[load.table], after)
                stats.append(TableRestoreStats(load.table, before[load.table], restored, after, time.monotonic() - started))
                log(f"Loaded {restored:,} rows into {load.table} in {time.monotonic() - started:.1f} s.")
            current_table = "the indexes"
            # Every table created here gets its indexes, loaded or not: after the loads, so they build once.
            for table in [t for t in catalog.BACKUP_TABLES if t in created]:
                for statement in table_ddl[table].indexes:
                    log(f"Building index: {statement}")
                    cur.execute(statement)
    except psycopg2.Error as exc:
        _rollback(conn)
        raise classify_error(exc, f"restoring {current_table}", conn) from exc
    except BaseException:
        _rollback(conn)
        raise
    if not commit:
        conn.rollback()
        return stats, created
    restored = ", ".join(load.table for load in loads)
    commit_confirmed(
        conn,
        dsn,
        f"the restore of {restored}",
        if_unknown=f"Compare the row counts of {restored} with the set's manifest: equal counts mean the "
        f"restore was committed.",
        warn=warn,
    )
    return stats, created


def _rollback(conn) -> None:
    if not conn.closed:
        conn.rollback()


def _ensure_schema_objects(cur, schema: str, loads: list[TableLoad], table_ddl) -> list[str]:
    created = []
    ext_schema = catalog.extension_schema(cur)
    if ext_schema is None:
        if table_ddl is None:
            raise ResourceNotFound(
                "The target database has no pgvector extension. Run CREATE EXTENSION vector there, or set "
                "create_missing: true to create it with the tables (needs a set with a manifest)."
            )
        cur.execute("CREATE EXTENSION vector")
        ext_schema = catalog.extension_schema(cur)
        created.append("extension vector")
    # The manifest's DDL names tables without a schema: create them in the target schema.
    catalog.set_local_search_path(cur, schema, ext_schema)
    for table in catalog.BACKUP_TABLES:
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
        cur.execute(table_ddl[table].create_table)
        created.append(table)
    return created


def _check_header(cur, schema: str, load: TableLoad) -> None:
    target = catalog.describe_table(cur, schema, load.table)
    unknown = [c for c in load.columns if target.column(c) is None]
    missing = [c for c in target.column_names if c not in load.columns]
    if unknown or missing or len(set(load.columns)) != len(load.columns):
        raise DataError(
            f"The CSV header of {load.table} does not match the target table: "
            f"columns only in the file {unknown or 'none'}, columns only in the table {missing or 'none'}. "
            f"File columns: {load.columns}; table columns: {target.column_names}."
        )


def _copy_in(cur, schema: str, load: TableLoad) -> int:
    statement = sql.SQL("COPY {table} ({cols}) FROM STDIN WITH (FORMAT csv, HEADER)").format(
        table=qualified(schema, load.table), cols=sql.SQL(", ").join(sql.Identifier(c) for c in load.columns)
    )
    with load.open_csv() as stream:
        cur.copy_expert(statement, stream, size=1 << 20)
    return cur.rowcount


def _check_restored_rows(load: TableLoad, restored: int, baseline: int, after: int) -> None:
    if load.expected_rows is not None and restored != load.expected_rows:
        raise DataError(f"{load.table}: the manifest lists {load.expected_rows} rows but COPY loaded {restored}.")
    if after != baseline + restored:
        raise DataError(f"{load.table}: expected {baseline + restored} rows after the load, found {after}.")

