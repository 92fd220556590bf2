"""Counting and truncating the LangChain tables."""

import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from typing import cast

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from pgvector_pipeline.errors import InvalidParams, ResourceNotFound
from pgvector_pipeline.postgres.catalog import qualified, single_value, table_oid, where_clause
from pgvector_pipeline.postgres.commit import commit_confirmed
from pgvector_pipeline.postgres.connection import DEFAULT_LOCK_TIMEOUT_S, classify_error, connect
from pgvector_pipeline.postgres.locks import lock_tables
from pgvector_pipeline.tables import DEFAULT_TABLES, TableSet


@dataclass(frozen=True)
class TruncateStats:
    """Rows of one table before and after a truncate."""

    table: str
    rows_before: int
    rows_after: int
    duration_s: float


def count_rows(cur: psycopg2.extensions.cursor, schema: str, table: str, where: sql.Composable | None = None) -> int:
    """count(*) of `schema.table` (of its rows `where` keeps) in the cursor's transaction."""
    cur.execute(sql.SQL("SELECT pg_catalog.count(*) FROM {}{}").format(qualified(schema, table), where_clause(where)))
    return cast(int, single_value(cur))


def check_truncate_tables(tables: list[str], table_set: TableSet = DEFAULT_TABLES) -> list[str]:
    """The tables in a safe order, or a clear error for names we do not manage or an FK-breaking subset."""
    unknown = [table for table in tables if table not in table_set.names]
    if unknown or not tables:
        raise InvalidParams(
            f"Cannot truncate {unknown or 'no tables'}: only {list(table_set.names)} can be truncated. "
            f"Name one or more of them."
        )
    for table in tables:
        left = [other for other in table_set.referencing(table) if other not in tables]
        if left:
            raise InvalidParams(
                f"Truncating {table} alone would break the foreign key from {', '.join(left)}. "
                f"Truncate {table} together with {', '.join(left)}, or only {', '.join(left)}."
            )
    return table_set.in_order(tables)


def truncate_tables(cur: psycopg2.extensions.cursor, schema: str, tables: list[str]) -> list[TruncateStats]:
    """Truncate `tables` in one statement inside the caller's transaction and report counts.

    The exclusive lock is taken before counting so rows_before is exactly what the TRUNCATE removed. The
    caller chose the tables (a set's, or checked by check_truncate_tables); PostgreSQL itself refuses a
    TRUNCATE that would break a foreign key.
    """
    ordered = list(tables)
    targets = sql.SQL(", ").join(qualified(schema, table) for table in ordered)
    started = time.monotonic()
    lock_tables(cur.connection, cur, schema, ordered, "ACCESS EXCLUSIVE", f"truncating {', '.join(ordered)}")
    before = {table: count_rows(cur, schema, table) for table in ordered}
    cur.execute(sql.SQL("TRUNCATE {}").format(targets))
    after = {table: count_rows(cur, schema, table) for table in ordered}
    duration = time.monotonic() - started
    return [TruncateStats(table, before[table], after[table], duration) for table in ordered]


def count_committed_rows(dsn: str, schema: str, table: str) -> int:
    """Rows of `table` as a new READ COMMITTED session sees them now (outside any caller's snapshot)."""
    with closing(connect(dsn)) as conn:
        conn.autocommit = True  # a single read: nothing to commit
        try:
            with conn.cursor() as cur:
                return count_rows(cur, schema, table)
        except psycopg2.Error as exc:
            raise classify_error(exc, f"counting the rows of {table}", conn) from exc


def truncate_tables_now(
    dsn: str,
    schema: str,
    tables: list[str],
    warn: Callable[[str], None],
    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
) -> list[TruncateStats]:
    """Truncate `tables` (one statement) in a transaction of its own."""
    ordered = check_truncate_tables(tables)
    with closing(connect(dsn, lock_timeout_s=lock_timeout_s)) as conn:
        try:
            with conn.cursor() as cur:
                for table in ordered:
                    if table_oid(cur, schema, table) is None:
                        raise ResourceNotFound(f"Table {schema}.{table} does not exist; nothing to truncate.")
                stats = truncate_tables(cur, schema, ordered)
        except psycopg2.Error as exc:
            raise classify_error(exc, f"truncating {', '.join(ordered)}", conn) from exc
        commit_confirmed(
            conn,
            dsn,
            f"the truncate of {', '.join(ordered)}",
            if_unknown=f"Count the rows of {', '.join(ordered)}: 0 means the truncate was committed.",
            warn=warn,
        )
        return stats
