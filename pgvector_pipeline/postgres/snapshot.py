"""A consistent read of both LangChain tables, streamed out with COPY ... TO STDOUT."""

import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Protocol

import psycopg2
import psycopg2.errors
import psycopg2.extensions
from psycopg2 import sql

from pgvector_pipeline.errors import DatabaseError, ResourceNotFound
from pgvector_pipeline.names import (
    COLLECTION_KEY_COLUMN,
    COLLECTION_REF_COLUMN,
    COLLECTION_TABLE,
    EMBEDDING_COLUMN,
    EMBEDDING_TABLE,
)
from pgvector_pipeline.postgres import catalog
from pgvector_pipeline.postgres.catalog import qualified
from pgvector_pipeline.postgres.collections import embeddings_per_collection
from pgvector_pipeline.postgres.commit import commit_confirmed
from pgvector_pipeline.postgres.connection import SessionUnavailable, classified, classify_error, rollback_quietly
from pgvector_pipeline.postgres.locks import lock_tables
from pgvector_pipeline.postgres.maintenance import (
    TruncateStats,
    count_rows,
    truncate_tables,
)
from pgvector_pipeline.postgres.ranges import (
    BlockRange,
    OrderedRangeCopy,
    RangeStatement,
    SnapshotSession,
    export_ranges,
)
from pgvector_pipeline.postgres.row_filter import ALL_ROWS, RowChoice
from pgvector_pipeline.set_formats import BINARY, CSV


class CopySink(Protocol):
    """Where COPY TO STDOUT writes: any object with write(bytes)."""

    def write(self, data: bytes) -> object: ...


@dataclass(frozen=True)
class VectorDimensions:
    """The dimensions of a table's embeddings in the snapshot, as the server counted them."""

    rows_by_dimension: dict[str, int]  # 'null' for rows without a vector
    mixed: dict[str, list[int]]  # collection (its key) or table whose vectors have several dimensions: which


class Snapshot:
    """One REPEATABLE READ transaction: every read through it sees the same committed data.

    Read-only by default. With `lock_for_truncate` the transaction is read-write and its very first
    statement is a SHARE lock on those tables: the snapshot is fixed by the first statement that takes
    one (any SELECT, catalog queries included), and LOCK TABLE takes none, so every row committed
    before the lock was granted is in the snapshot and no row can be written between the export and
    the truncate that follows it in the same transaction.

    With `export_sessions` above 1, a large table is exported by that many more sessions of `dsn` that
    import this transaction's snapshot (see postgres.ranges): the same rows, more server cores.
    """

    def __init__(
        self,
        conn: psycopg2.extensions.connection,
        schema: str,
        tables: Sequence[str],
        lock_for_truncate: Sequence[str] = (),
        *,
        dsn: str,
        export_sessions: int = 1,
    ):
        self.conn = conn
        self.schema = schema
        self.tables = list(tables)
        self.lock_for_truncate = list(lock_for_truncate)
        self.dsn = dsn
        self.export_sessions = export_sessions
        self._committed = False
        self._snapshot_id: str | None = None

    def __enter__(self) -> "Snapshot":
        self.conn.set_session(
            isolation_level=psycopg2.extensions.ISOLATION_LEVEL_REPEATABLE_READ,
            readonly=not self.lock_for_truncate,
            autocommit=False,
        )
        self.cur = self.conn.cursor()
        try:
            # Locks first (LOCK takes no snapshot), each wait bounded and its blockers named (postgres.locks).
            if self.lock_for_truncate:
                lock_tables(self.conn, self.cur, self.schema, self.lock_for_truncate, "SHARE", "the backup")
            lock_tables(self.conn, self.cur, self.schema, list(self.tables), "ACCESS SHARE", "the backup")
        except (psycopg2.errors.UndefinedTable, psycopg2.errors.InvalidSchemaName):
            rollback_quietly(self.conn)
            raise self._missing_table() from None
        except psycopg2.Error as exc:
            rollback_quietly(self.conn)
            raise classify_error(exc, "starting the backup snapshot", self.conn) from exc
        except BaseException:
            rollback_quietly(self.conn)
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        # Cleanup never replaces the error that ended the block (a dead session needs no rollback).
        if not self._committed:
            rollback_quietly(self.conn)

    def _missing_table(self) -> ResourceNotFound:
        """Which of the extension, schema or tables is missing, asked in a transaction of its own."""
        try:
            with self.conn.cursor() as cur:
                has_extension = catalog.extension_version(cur) is not None
                missing = [table for table in self.tables if catalog.table_oid(cur, self.schema, table) is None]
        except psycopg2.Error as exc:
            rollback_quietly(self.conn)
            return ResourceNotFound(f"Cannot back up {', '.join(self.tables)}: {str(exc).strip()}.")
        rollback_quietly(self.conn)
        if not has_extension:
            return _no_pgvector()
        return ResourceNotFound(
            f"Table {self.schema}.{(missing or self.tables)[0]} does not exist in this database. Check PGVECTOR_DSN "
            f"and the schema setting (now '{self.schema}'); LangChain creates it on first use of PGVector."
        )

    def pgvector_version(self) -> str:
        """The pgvector version; ResourceNotFound when the extension is missing."""
        with classified("reading the pgvector version", self.conn):
            version = catalog.extension_version(self.cur)
        if version is None:
            raise _no_pgvector()
        return version

    def server_version(self) -> str:
        """The server's version string."""
        with classified("reading the server version", self.conn):
            return catalog.server_version(self.cur)

    def describe(self, table: str) -> catalog.TableDescription:
        """The table's description; ResourceNotFound when it does not exist."""
        with classified(f"reading the definition of {table}", self.conn):
            description = catalog.describe_table(self.cur, self.schema, table)
        if description is None:
            raise ResourceNotFound(
                f"Table {self.schema}.{table} does not exist in this database. Check PGVECTOR_DSN and the "
                f"schema setting (now '{self.schema}'); LangChain creates it on first use of PGVector."
            )
        return description

    def count(self, table: str, rows: RowChoice = ALL_ROWS) -> int:
        """Rows of the table in this snapshot (those `rows` chooses); row-level security that would hide rows is an
        error, not a filter."""
        with self._counting(f"counting the rows of {table}", table):
            return count_rows(self.cur, self.schema, table, rows.condition(self.schema, table))

    @contextmanager
    def _counting(self, doing: str, table: str) -> Iterator[None]:
        """Driver errors become classified pipeline errors; a row-level security policy that would hide rows is
        named as such (on the table PostgreSQL names, else `table`)."""
        try:
            yield
        except psycopg2.errors.InsufficientPrivilege as exc:
            if "row-level security" not in str(exc):
                raise classify_error(exc, doing, self.conn) from exc
            named = re.search(r'table "([^"]+)"', str(exc))
            raise row_security_error(named.group(1) if named else table, str(exc)) from exc
        except psycopg2.Error as exc:
            raise classify_error(exc, doing, self.conn) from exc

    def embedding_dimensions(
        self, description: catalog.TableDescription, rows: int, choice: RowChoice = ALL_ROWS
    ) -> VectorDimensions:
        """Rows per embedding dimension ('null' for rows without a vector), given the table's row count, and the
        collections (or the table, without collections) whose vectors have more than one dimension.

        A fixed-dimension column answers from the catalog; otherwise this scans the column once.
        """
        if description.column(EMBEDDING_COLUMN) is None:
            return VectorDimensions({}, {})
        fixed = description.fixed_embedding_dimension
        if fixed is not None:
            return VectorDimensions({str(fixed): rows}, {})
        where = choice.condition(self.schema, description.name)
        grouped = description.column(COLLECTION_REF_COLUMN) is not None
        group = (
            sql.SQL("{}::pg_catalog.text").format(sql.Identifier(COLLECTION_REF_COLUMN)) if grouped else sql.SQL("''")
        )
        with classified(f"reading the embedding dimensions of {description.name}", self.conn):
            self.cur.execute(
                sql.SQL(
                    "SELECT {group}, {dims}({col}), pg_catalog.count(*) FROM {table}{where} GROUP BY 1, 2 ORDER BY 1, 2"
                ).format(
                    group=group,
                    dims=catalog.pgvector_name(self.cur, "vector_dims"),
                    col=sql.Identifier(EMBEDDING_COLUMN),
                    table=qualified(self.schema, description.name),
                    where=catalog.where_clause(where),
                )
            )
            found = self.cur.fetchall()
        by_dimension: dict[str, int] = {}
        by_group: dict[str, list[int]] = {}
        for key, dims, count in found:
            name = "null" if dims is None else str(dims)
            by_dimension[name] = by_dimension.get(name, 0) + count
            if dims is not None:
                by_group.setdefault(key or "", []).append(dims)
        mixed = {key or description.name: dims for key, dims in by_group.items() if len(dims) > 1}
        if grouped and mixed:
            mixed = self._named_collections(mixed)
        return VectorDimensions(dict(sorted(by_dimension.items())), mixed)

    def _named_collections(self, by_key: dict[str, list[int]]) -> dict[str, list[int]]:
        """`by_key` keyed by collection name ('collection NAME'), where the collection table names the key."""
        if catalog.table_oid(self.cur, self.schema, COLLECTION_TABLE) is None:
            return {f"collection {key}": dims for key, dims in by_key.items()}
        with classified("reading the names of collections", self.conn):
            self.cur.execute(
                sql.SQL(
                    "SELECT {key}::pg_catalog.text, {name} FROM {table} WHERE {key}::pg_catalog.text "
                    "OPERATOR(pg_catalog.=) ANY (%s::pg_catalog.text[])"
                ).format(
                    key=sql.Identifier(COLLECTION_KEY_COLUMN),
                    name=sql.Identifier("name"),
                    table=qualified(self.schema, COLLECTION_TABLE),
                ),
                (list(by_key),),
            )
            names = dict(self.cur.fetchall())
        return {
            f"collection {names[key]!r}" if key in names else f"collection {key}": dims for key, dims in by_key.items()
        }

    def embeddings_per_collection(self, names: Sequence[str]) -> dict[str, int]:
        """Embeddings of each collection named (or of all), in this snapshot (see postgres.collections)."""
        with self._counting("counting the embeddings of each collection", EMBEDDING_TABLE):
            return embeddings_per_collection(self.cur, self.schema, names)

    def copy_to(
        self,
        table: str,
        columns: list[str],
        sink: CopySink,
        log: Callable[[str], None],
        rows: RowChoice = ALL_ROWS,
        set_format: str = CSV,
    ) -> int:
        """Stream the table (the rows `rows` chooses) into `sink` as CSV with a header row, or as one binary COPY
        stream (`set_format` BINARY); returns the rows PostgreSQL sent. The filter applies inside each parallel range
        as well."""
        binary = set_format == BINARY
        where = rows.condition(self.schema, table)
        select = sql.SQL("SELECT {cols} FROM {table}").format(
            cols=sql.SQL(", ").join(sql.Identifier(c) for c in columns), table=qualified(self.schema, table)
        )

        def statement(block_range: BlockRange | None, header: bool) -> sql.Composable:
            where_clause = catalog.where_clause(block_range.condition() if block_range else None, where)
            options = sql.SQL("FORMAT binary" if binary else "FORMAT csv, HEADER" if header else "FORMAT csv")
            return sql.SQL("COPY ({select}{where}) TO STDOUT WITH ({options})").format(
                select=select, where=where_clause, options=options
            )

        with classified(f"exporting {table}", self.conn):
            ranges = self._parallel_ranges(table)
            copied = self._copy_in_ranges(table, ranges, statement, sink, log, binary) if ranges else None
            if copied is not None:
                return copied
            self.cur.copy_expert(statement(None, True), sink)
            return self.cur.rowcount

    def _copy_in_ranges(
        self,
        table: str,
        ranges: list[BlockRange],
        statement: RangeStatement,
        sink: CopySink,
        log: Callable[[str], None],
        binary: bool,
    ) -> int | None:
        """The table's ranges exported by further sessions on this snapshot; None when no further session can
        read it now (the caller exports it alone)."""
        with ExitStack() as sessions:
            try:
                readers = [
                    sessions.enter_context(SnapshotSession(self.dsn, self._exported_id(), self.schema, table))
                    for _ in range(self.export_sessions)
                ]
            except SessionUnavailable as unavailable:
                log(f"{table}: exported by this session alone: no further session could read it ({unavailable}).")
                return None
            log(
                f"{table}: exported by {len(readers)} sessions on this snapshot, {len(ranges)} ranges of heap blocks "
                f"written in order."
            )
            with OrderedRangeCopy(readers, ranges, statement, binary) as copy:
                return copy.write_to(sink)

    def _parallel_ranges(self, table: str) -> list[BlockRange]:
        """The block ranges of a table worth exporting by several sessions; [] for one session."""
        if self.export_sessions < 2:
            return []
        return export_ranges(*catalog.table_extent(self.cur, self.schema, table))

    def _exported_id(self) -> str:
        """This transaction's snapshot, exported for other sessions (valid until the transaction ends)."""
        if self._snapshot_id is None:
            self.cur.execute("SELECT pg_catalog.pg_export_snapshot()")
            self._snapshot_id = catalog.single_value(self.cur)
        return self._snapshot_id

    def truncate_and_commit(self, tables: list[str], dsn: str, warn: Callable[[str], None]) -> list[TruncateStats]:
        """Truncate `tables` in this transaction and commit; the outcome of a lost COMMIT is looked up."""
        try:
            stats = truncate_tables(self.cur, self.schema, tables)
        except psycopg2.Error as exc:
            raise classify_error(exc, f"truncating {', '.join(tables)}", self.conn) from exc
        commit_confirmed(
            self.conn,
            dsn,
            f"the truncate of {', '.join(tables)} after the backup",
            if_unknown=f"The backup set is complete. Count the rows of {', '.join(tables)}: 0 means the "
            f"truncate was committed.",
            warn=warn,
        )
        self._committed = True
        return stats


def row_security_error(table: str, detail: str) -> DatabaseError:
    """A backup refused because a row-level security policy would hide rows of `table` from this role."""
    return DatabaseError(
        f"The backup role is subject to a row-level security policy on {table} ({detail.strip()}): it would "
        f"read, count and back up only the rows the policy shows it, and a truncate after it would destroy the "
        f"rest. Nothing was written or truncated. Back up as the table's owner or as a role with BYPASSRLS "
        f"(ALTER ROLE name BYPASSRLS), as pg_dump requires."
    )


def _no_pgvector() -> ResourceNotFound:
    return ResourceNotFound(
        "The pgvector extension is not installed in this database, so it holds no LangChain vector store. Check "
        "PGVECTOR_DSN, or run CREATE EXTENSION vector."
    )
