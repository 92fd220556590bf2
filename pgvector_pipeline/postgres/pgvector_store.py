"""A PGVector set (either LangChain package's two tables) loaded into one PGVectorStore table (langchain_postgres.v2:
`langchain_id uuid` primary key, `content text NOT NULL`, `embedding vector(n) NOT NULL`, typed metadata columns,
`langchain_metadata json`), in one transaction: all rows or none.

Both files are COPYed into text staging tables, checked, and moved by one INSERT … SELECT; no row passes through
Python but the ids that are not UUIDs. Rows map as LangChain's own migrator maps them:
- id: the embedding's id (langchain_postgres) or its new id as postgres.migrate gives it (langchain_community). A
  UUID stays itself; any other id gets uuid5(MIGRATED_ID_NAMESPACE, old id), and the old id is kept in the row's
  metadata under StoreTable.old_id_key.
- document -> content, embedding -> embedding (cast to the column's vector(n)), cmetadata -> langchain_metadata
  (json), less the keys that have their own metadata column; those get the key's value cast to the column's type.
A NULL document or embedding (which PGVectorStore cannot hold) refuses the restore, naming the rows. A table created
here gets its primary key after the load (one index build instead of one insert per row); a table emptied first
gets its other indexes dropped and built again after the load, as a truncating restore does.
"""

import csv
import io
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import psycopg2.errors
import psycopg2.extensions
from psycopg2 import sql

from pgvector_pipeline.errors import DataError, named
from pgvector_pipeline.names import (
    COLLECTION_KEY_COLUMN,
    COLLECTION_NAME_COLUMN,
    COLLECTION_REF_COLUMN,
    COLLECTION_TABLE,
    DOCUMENT_COLUMN,
    EMBEDDING_COLUMN,
    EMBEDDING_ID_COLUMN,
    EMBEDDING_TABLE,
    LANGCHAIN_COMMUNITY,
    METADATA_COLUMN,
)
from pgvector_pipeline.postgres import catalog
from pgvector_pipeline.postgres.catalog import langchain_layout, qualified
from pgvector_pipeline.postgres.collections import create_stage, stage_table
from pgvector_pipeline.postgres.indexes import build_indexes, empty_tables
from pgvector_pipeline.postgres.load import check_restored_rows, copy_in
from pgvector_pipeline.postgres.locks import hold_restore_lock, lock_tables
from pgvector_pipeline.postgres.maintenance import count_rows
from pgvector_pipeline.postgres.migrate import new_ids
from pgvector_pipeline.postgres.preflight import check_privileges, ensure_vector_extension
from pgvector_pipeline.postgres.progress import ProgressMonitor
from pgvector_pipeline.postgres.restore_types import RestoreOptions, TableLoad, TableRestoreStats
from pgvector_pipeline.postgres.transaction import RestoreTransaction

# The namespace of the uuid5 a non-UUID id becomes: fixed, so a migration gives the same ids every time.
MIGRATED_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "pgvector-pipeline:pgvector-store-id")
_NEW_IDS = sql.Identifier("pgvector_restore_store_ids")
# Staged typed, so COPY parses them once (see create_stage); the rest as text. `vector` is pgvector's, named through
# the extension's schema (see _staged_types).
_STAGED_TYPES = {EMBEDDING_COLUMN: "vector", METADATA_COLUMN: "jsonb"}
# A message naming rows stops after this many ids.
_SHOWN = 5


def migrated_id(old_id: str) -> uuid.UUID:
    """The PGVectorStore id of a row whose id is not a UUID."""
    return uuid.uuid5(MIGRATED_ID_NAMESPACE, old_id)


@dataclass(frozen=True)
class MetadataColumn:
    """A metadata key that gets its own typed column in a PGVectorStore table (LangChain's `metadata_columns`):
    the column is named like the key, as LangChain names it. The type is one of migration's allowed names."""

    name: str
    data_type: str

    @property
    def is_json(self) -> bool:
        return self.data_type in ("json", "jsonb")


@dataclass(frozen=True)
class StoreTable:
    """A PGVectorStore table, with the column names LangChain gives it by default (langchain_postgres 0.0.19,
    PGEngine.init_vectorstore_table)."""

    table: str
    metadata_columns: tuple[MetadataColumn, ...] = ()
    id_column: str = "langchain_id"
    content_column: str = "content"
    embedding_column: str = "embedding"
    metadata_json_column: str = "langchain_metadata"
    # Where a row whose id is not a UUID keeps its old id (its new id is a uuid5 of it).
    old_id_key: str = "langchain_pg_embedding_id"

    @property
    def metadata_keys(self) -> list[str]:
        return [column.name for column in self.metadata_columns]

    @property
    def columns(self) -> list[str]:
        return [self.id_column, self.content_column, self.embedding_column, *self.metadata_keys]


@dataclass(frozen=True)
class StoreLoad:
    """What restore_into_store loads: the set's two files, the collections taken (empty: all), the embedding
    dimensions the set records (to create the table), and the embeddings expected (None: unknown)."""

    collections: TableLoad
    embeddings: TableLoad
    names: tuple[str, ...]
    dimensions: tuple[int, ...]
    expected_rows: int | None


def restore_into_store(
    conn: psycopg2.extensions.connection,
    dsn: str,
    schema: str,
    load: StoreLoad,
    store: StoreTable,
    options: RestoreOptions,
    *,
    log: Callable[[str], None],
    warn: Callable[[str], None],
) -> tuple[TableRestoreStats, list[str]]:
    """Load the set's embeddings (of the collections named) into the PGVectorStore table in one transaction; the
    table's counts and the objects created. Truncates the table first with options.truncate."""
    loads = [load.collections, load.embeddings]
    with RestoreTransaction(conn, dsn, loads, options, warn) as transaction, conn.cursor() as cur:
        hold_restore_lock(cur, schema)
        # Created when missing, as LangChain's init_vectorstore_table does.
        created = ensure_vector_extension(cur, schema, may_create=True)
        transaction.doing = "loading the set's files into staging tables"
        expected = {stage_table(x.table).string: (x.expected_rows, x.file_bytes) for x in loads}
        with ProgressMonitor(dsn, conn.get_backend_pid(), log, expected):
            for table_load in loads:
                stage = create_stage(cur, table_load.table, table_load.columns, _staged_types(cur))
                check_restored_rows(table_load, copy_in(cur, schema, table_load, None, into=stage), None)
            transaction.doing = "checking the rows"
            source = _source(cur, load)
            _check_rows(cur, source, store)
            mapped = _map_ids(cur, source, store)
            if mapped:
                log(f"{mapped:,} ids are not UUIDs: they get a uuid5 of the old id, kept in {store.old_id_key}.")
            transaction.doing = f"preparing {store.table}"
            target_table, before, dropped = _prepare_target(cur, schema, store, load, options, created, log)
            transaction.doing = f"loading {store.table}"
            started = time.monotonic()
            log(f"Loading {store.table} from {EMBEDDING_TABLE} ({_chosen(load)}).")
            restored = _insert(cur, schema, store, target_table, source)
            if load.expected_rows is not None and restored != load.expected_rows:
                raise DataError(
                    f"{store.table}: the set's manifest lists {load.expected_rows:,} embeddings of {_chosen(load)}, "
                    f"but {restored:,} were loaded. Nothing was committed."
                )
            transaction.doing = "building the indexes"
            if store.table in created:
                _add_primary_key(cur, schema, store, log)
            build_indexes(cur, [index.definition for index in dropped], options, log)
            after = count_rows(cur, schema, store.table)
            duration = time.monotonic() - started
            log(f"Loaded {restored:,} rows into {store.table} in {duration:.1f} s.")
    return TableRestoreStats(store.table, before, restored, after, duration), created


def _chosen(load: StoreLoad) -> str:
    return f"collections {', '.join(repr(n) for n in load.names)}" if load.names else "all collections"


@dataclass(frozen=True)
class _Source:
    """The staged embedding rows taken, `s`, as SQL: what to select FROM, the chosen collections' condition, and
    the expression of a row's old id."""

    rows: sql.Composable
    chosen: sql.Composable | None
    old_id: sql.Composable

    def where(self, condition: sql.Composable | None = None) -> sql.Composable:
        return catalog.where_clause(self.chosen, condition)


def _source(cur: psycopg2.extensions.cursor, load: StoreLoad) -> _Source:
    layout = langchain_layout(load.embeddings.columns)
    old_id = (
        new_ids(cur)[EMBEDDING_ID_COLUMN]
        if layout == LANGCHAIN_COMMUNITY
        else sql.SQL("s.{}").format(sql.Identifier(EMBEDDING_ID_COLUMN))
    )
    rows = sql.SQL("{} s").format(stage_table(EMBEDDING_TABLE))
    if not load.names:
        return _Source(rows, None, old_id)
    # Both staged columns are text: compared as uuids, as the foreign key compared them.
    rows = sql.SQL(
        "{rows} JOIN {collections} c ON s.{ref}::pg_catalog.uuid OPERATOR(pg_catalog.=) c.{key}::pg_catalog.uuid"
    ).format(
        rows=rows,
        collections=stage_table(COLLECTION_TABLE),
        ref=sql.Identifier(COLLECTION_REF_COLUMN),
        key=sql.Identifier(COLLECTION_KEY_COLUMN),
    )
    chosen = sql.SQL("c.{name} OPERATOR(pg_catalog.=) ANY ({names})").format(
        name=sql.Identifier(COLLECTION_NAME_COLUMN), names=sql.Literal(list(load.names))
    )
    return _Source(rows, chosen, old_id)


def _check_rows(cur: psycopg2.extensions.cursor, source: _Source, store: StoreTable) -> None:
    """Refuse rows a PGVectorStore table cannot hold (NULL content or embedding), naming some of them."""
    for column, becomes in ((DOCUMENT_COLUMN, store.content_column), (EMBEDDING_COLUMN, store.embedding_column)):
        cur.execute(
            sql.SQL("SELECT {old_id} FROM {rows}{where} ORDER BY 1").format(
                old_id=source.old_id,
                rows=source.rows,
                where=source.where(sql.SQL("s.{} IS NULL").format(sql.Identifier(column))),
            )
        )
        ids = [row[0] for row in cur.fetchall()]
        if ids:
            shown = ", ".join(repr(i) for i in ids[:_SHOWN]) + (", …" if len(ids) > _SHOWN else "")
            raise DataError(
                f"{len(ids):,} embeddings of the set have no {column} (ids {shown}), and a PGVectorStore table's "
                f"{becomes} is NOT NULL. Restore the collections without them, or fix those rows in the source and "
                f"back up again. Nothing was changed."
            )


def _map_ids(cur: psycopg2.extensions.cursor, source: _Source, store: StoreTable) -> int:
    """Give each id that is not a UUID its uuid5 (noted in a temporary table the INSERT joins); how many."""
    cur.execute(
        sql.SQL(
            "SELECT {old_id}, coalesce(s.{metadata}::pg_catalog.jsonb OPERATOR(pg_catalog.?) {key}, false) "
            "FROM {rows}{where}"
        ).format(
            old_id=source.old_id,
            metadata=sql.Identifier(METADATA_COLUMN),
            key=sql.Literal(store.old_id_key),
            rows=source.rows,
            where=source.where(
                sql.SQL("NOT pg_catalog.pg_input_is_valid({}, 'pg_catalog.uuid')").format(source.old_id)
            ),
        )
    )
    rows = cur.fetchall()
    taken = [old_id for old_id, has_key in rows if has_key]
    if taken:
        raise DataError(
            f"{len(taken):,} embeddings whose ids are not UUIDs (e.g. {taken[0]!r}) already have a metadata key "
            f"{store.old_id_key!r}, where the migration keeps the old id: it would be overwritten. Nothing was "
            f"changed."
        )
    cur.execute(
        sql.SQL(
            "CREATE TEMPORARY TABLE {} (old_id pg_catalog.text PRIMARY KEY, new_id pg_catalog.uuid NOT NULL) "
            "ON COMMIT DROP"
        ).format(_NEW_IDS)
    )
    if rows:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows((old_id, migrated_id(old_id)) for old_id, _ in rows)
        buffer.seek(0)
        cur.copy_expert(sql.SQL("COPY {} FROM STDIN WITH (FORMAT csv)").format(_NEW_IDS), buffer)
    return len(rows)


def _prepare_target(
    cur: psycopg2.extensions.cursor,
    schema: str,
    store: StoreTable,
    load: StoreLoad,
    options: RestoreOptions,
    created: list[str],
    log: Callable[[str], None],
) -> tuple[catalog.TableDescription, int, list[catalog.RebuildableIndex]]:
    """The store table made ready: created when missing (primary key after the load), else checked, locked and, with
    options.truncate, emptied with its indexes dropped to build after the load. Its rows before; dropped indexes."""
    description = catalog.describe_table(cur, schema, store.table)
    if description is None:
        _create_table(cur, schema, store, _dimension(cur, load, store))
        created.append(store.table)
        log(f"Created {schema}.{store.table} (PGVectorStore layout); its primary key is built after the load.")
        description = catalog.describe_table(cur, schema, store.table)
        assert description is not None
        return description, 0, []
    _check_table(description, store, schema)
    check_privileges(cur, schema, [store.table], options.truncate)
    if not options.truncate:
        lock_tables(cur.connection, cur, schema, [store.table], "ROW EXCLUSIVE", "the restore")
        return description, count_rows(cur, schema, store.table), []
    before, dropped = empty_tables(cur, schema, [store.table], created, log)
    return description, before[store.table], dropped


def _dimension(cur: psycopg2.extensions.cursor, load: StoreLoad, store: StoreTable) -> int:
    """The dimension of a new table's embedding column: the one the set's manifest records, else (a set of the old
    system) the first embedding's; the INSERT's cast to vector(n) refuses any row of another."""
    if len(load.dimensions) == 1:
        return load.dimensions[0]
    if not load.dimensions:
        cur.execute(
            sql.SQL("SELECT {dims}(s.{column}::{vector}) FROM {stage} s WHERE s.{column} IS NOT NULL LIMIT 1").format(
                dims=catalog.pgvector_name(cur, "vector_dims"),
                vector=catalog.pgvector_name(cur, "vector"),
                column=sql.Identifier(EMBEDDING_COLUMN),
                stage=stage_table(EMBEDDING_TABLE),
            )
        )
        row = cur.fetchone()
        if row:
            return cast(int, row[0])
    held = ", ".join(map(str, load.dimensions)) or "no embeddings"
    raise DataError(
        f"{store.table} does not exist, and its embedding column needs one dimension; the set's embeddings have "
        f"{held}. Create the table first (PGEngine.init_vectorstore_table with the dimension of the collections "
        f"restored), or restore only collections of one dimension into it. Nothing was changed."
    )


def _staged_types(cur: psycopg2.extensions.cursor) -> dict[str, str]:
    """_STAGED_TYPES as SQL names them: pgvector's through the extension's schema, the others through pg_catalog."""
    return {
        column: catalog.pgvector_name(cur, name).as_string(cur) if name == "vector" else f"pg_catalog.{name}"
        for column, name in _STAGED_TYPES.items()
    }


def _create_table(cur: psycopg2.extensions.cursor, schema: str, store: StoreTable, dimension: int) -> None:
    columns = [
        sql.SQL("{} pg_catalog.uuid NOT NULL").format(sql.Identifier(store.id_column)),
        sql.SQL("{} pg_catalog.text NOT NULL").format(sql.Identifier(store.content_column)),
        sql.SQL("{} {}({}) NOT NULL").format(
            sql.Identifier(store.embedding_column), catalog.pgvector_name(cur, "vector"), sql.Literal(dimension)
        ),
        *(
            # The type is one of migration's allowed type names (SQL's keyword spellings among them, which take no
            # schema; the others resolve in pg_catalog alone under the empty search_path).
            sql.SQL("{} {}").format(sql.Identifier(column.name), sql.SQL(column.data_type))
            for column in store.metadata_columns
        ),
        sql.SQL("{} pg_catalog.json").format(sql.Identifier(store.metadata_json_column)),
    ]
    cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    cur.execute(sql.SQL("CREATE TABLE {} ({})").format(qualified(schema, store.table), sql.SQL(", ").join(columns)))


def _check_table(description: catalog.TableDescription, store: StoreTable, schema: str) -> None:
    """An existing table must have the store's columns, and no other column the INSERT cannot fill."""
    wanted = [*store.columns, store.metadata_json_column]
    missing = [name for name in wanted if description.column(name) is None]
    unfillable = [c.name for c in description.data_columns if c.name not in wanted and c.not_null and not c.has_default]
    if missing or unfillable:
        raise DataError(
            f"{schema}.{store.table} exists but is not a PGVectorStore table of this shape: "
            + (f"it has no {', '.join(missing)}" if missing else "")
            + ("; " if missing and unfillable else "")
            + (f"its {', '.join(unfillable)} is NOT NULL without a default" if unfillable else "")
            + ". Name the metadata columns it has (",
            named("metadata_columns"),
            "), or restore into a new ",
            named("store_table"),
            ". Nothing was changed.",
        )


def _insert(
    cur: psycopg2.extensions.cursor, schema: str, store: StoreTable, target: catalog.TableDescription, source: _Source
) -> int:
    """One INSERT … SELECT of the staged rows into the store table; the rows inserted."""
    metadata = sql.SQL("s.{}::pg_catalog.jsonb").format(sql.Identifier(METADATA_COLUMN))
    kept_id = sql.SQL(
        "CASE WHEN m.new_id IS NULL THEN {metadata} ELSE coalesce({metadata}, '{{}}') OPERATOR(pg_catalog.||) "
        "pg_catalog.jsonb_build_object({key}, {old_id}) END"
    ).format(metadata=metadata, key=sql.Literal(store.old_id_key), old_id=source.old_id)
    if store.metadata_keys:
        kept_id = sql.SQL("({}) OPERATOR(pg_catalog.-) {}::pg_catalog.text[]").format(
            kept_id, sql.Literal(store.metadata_keys)
        )

    def cast(value: sql.Composable, column: str) -> sql.Composable:
        # The type is the catalog's own format_type of the target column, not file content.
        column_type = target.column(column)
        assert column_type is not None  # _check_table or _create_table made sure
        return sql.SQL("({})::{}").format(value, sql.SQL(column_type.sql_type or column_type.type))

    values = [
        sql.SQL("coalesce(m.new_id, ({})::pg_catalog.uuid)").format(source.old_id),
        cast(sql.SQL("s.{}").format(sql.Identifier(DOCUMENT_COLUMN)), store.content_column),
        cast(sql.SQL("s.{}").format(sql.Identifier(EMBEDDING_COLUMN)), store.embedding_column),
        *(
            cast(
                sql.SQL("{} {} {}").format(
                    metadata,
                    sql.SQL("OPERATOR(pg_catalog.->)" if c.is_json else "OPERATOR(pg_catalog.->>)"),
                    sql.Literal(c.name),
                ),
                c.name,
            )
            for c in store.metadata_columns
        ),
        cast(kept_id, store.metadata_json_column),
    ]
    statement = sql.SQL(
        "INSERT INTO {target} ({columns}) SELECT {values} FROM {rows} LEFT JOIN {ids} m "
        "ON m.old_id OPERATOR(pg_catalog.=) {old_id}{where}"
    ).format(
        target=qualified(schema, store.table),
        columns=sql.SQL(", ").join(map(sql.Identifier, [*store.columns, store.metadata_json_column])),
        values=sql.SQL(", ").join(values),
        rows=source.rows,
        ids=_NEW_IDS,
        old_id=source.old_id,
        where=source.where(),
    )
    try:
        cur.execute(statement)
    except psycopg2.errors.UniqueViolation as exc:
        raise _ids_taken(store, exc) from None
    except psycopg2.DataError as exc:  # SQLSTATE class 22: a value its column cannot hold
        raise DataError(
            f"A row of the set does not fit {store.table}: {str(exc).strip()}. An embedding of another dimension "
            f"than the table's, or a metadata value its column's type cannot hold (",
            named("metadata_columns"),
            "), does this. Nothing was changed.",
        ) from None
    return cur.rowcount


def _add_primary_key(
    cur: psycopg2.extensions.cursor, schema: str, store: StoreTable, log: Callable[[str], None]
) -> None:
    started = time.monotonic()
    try:
        cur.execute(
            sql.SQL("ALTER TABLE {} ADD PRIMARY KEY ({})").format(
                qualified(schema, store.table), sql.Identifier(store.id_column)
            )
        )
    except psycopg2.errors.UniqueViolation as exc:
        raise _ids_taken(store, exc) from None
    log(f"Built the primary key of {store.table} in {time.monotonic() - started:.1f} s.")


def _ids_taken(store: StoreTable, exc: psycopg2.Error) -> DataError:
    return DataError(
        f"Two rows would have one id in {store.table} ({exc.diag.message_detail or str(exc).strip()}): the table "
        f"holds that id already, or two ids of the set name one UUID (in upper and lower case, say). Restore into an "
        f"empty table (",
        named("truncate_before_restore"),
        ") or another ",
        named("store_table"),
        ". Nothing was changed.",
    )
