"""Collections of a LangChain store as rows: which rows a per-collection backup takes, and how many embeddings
each collection holds. All SQL of it lives here; identifiers through psycopg2.sql."""

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg2.errors
import psycopg2.extensions
from psycopg2 import sql

from pgvector_pipeline.errors import DataError, ResourceNotFound, advice, named
from pgvector_pipeline.names import (
    COLLECTION_KEY_COLUMN,
    COLLECTION_NAME_COLUMN,
    COLLECTION_REF_COLUMN,
    COLLECTION_TABLE,
    EMBEDDING_TABLE,
)
from pgvector_pipeline.postgres.catalog import Column, TableDescription, qualified, table_oid

# A listing of the collections a store holds, in a message, stops after this many names.
_SHOWN = 20


def row_filter(schema: str, table: str, names: Sequence[str]) -> sql.Composable | None:
    """The WHERE condition that keeps `table`'s rows of the collections `names` (None: every row). Embeddings
    are chosen through their collection's key, in the same snapshot, so the two files agree."""
    if not names:
        return None
    chosen = sql.SQL("{name} OPERATOR(pg_catalog.=) ANY ({names})").format(
        name=sql.Identifier(COLLECTION_NAME_COLUMN), names=sql.Literal(list(names))
    )
    if table == COLLECTION_TABLE:
        return chosen
    if table == EMBEDDING_TABLE:
        return sql.SQL("{ref} OPERATOR(pg_catalog.=) ANY (SELECT {key} FROM {collections} WHERE {chosen})").format(
            ref=sql.Identifier(COLLECTION_REF_COLUMN),
            key=sql.Identifier(COLLECTION_KEY_COLUMN),
            collections=qualified(schema, COLLECTION_TABLE),
            chosen=chosen,
        )
    return None


def embeddings_per_collection(cur: psycopg2.extensions.cursor, schema: str, names: Sequence[str]) -> dict[str, int]:
    """Embeddings of each collection (those named, or all), by name; ResourceNotFound naming the collections the
    store holds when a name is not among them (a typo must not back up nothing)."""
    where = row_filter(schema, COLLECTION_TABLE, names)
    cur.execute(
        sql.SQL(
            "SELECT c.{name}, pg_catalog.count(e.{ref}) FROM {collections} c LEFT JOIN {embeddings} e "
            "ON e.{ref} OPERATOR(pg_catalog.=) c.{key}{where} GROUP BY c.{name} ORDER BY c.{name}"
        ).format(
            name=sql.Identifier(COLLECTION_NAME_COLUMN),
            ref=sql.Identifier(COLLECTION_REF_COLUMN),
            key=sql.Identifier(COLLECTION_KEY_COLUMN),
            collections=qualified(schema, COLLECTION_TABLE),
            embeddings=qualified(schema, EMBEDDING_TABLE),
            where=sql.SQL(" WHERE c.{}").format(where) if where is not None else sql.SQL(""),
        )
    )
    rows = {name: count for name, count in cur.fetchall()}
    missing = [name for name in names if name not in rows]
    if missing:
        cur.execute(
            sql.SQL("SELECT {name} FROM {collections} ORDER BY 1 LIMIT {limit}").format(
                name=sql.Identifier(COLLECTION_NAME_COLUMN),
                collections=qualified(schema, COLLECTION_TABLE),
                limit=sql.Literal(_SHOWN + 1),
            )
        )
        held = [repr(row[0]) for row in cur.fetchall()]
        shown = ", ".join(held[:_SHOWN]) + (", …" if len(held) > _SHOWN else "") if held else "none"
        raise ResourceNotFound(
            f"No collection named {', '.join(repr(n) for n in missing)} in {schema}.{COLLECTION_TABLE}; it holds "
            f"{shown}. Name existing collections, or leave collections empty to back up all of them."
        )
    return rows


def delete_collections(
    cur: psycopg2.extensions.cursor, schema: str, names: Sequence[str], log: Callable[[str], None]
) -> None:
    """Delete the collections `names` and their embeddings (by collection key, not a truncate): every other
    collection stays as it is. Part of the caller's transaction."""
    deleted = {}
    for table in (EMBEDDING_TABLE, COLLECTION_TABLE):  # embeddings first: they reference their collection
        condition = row_filter(schema, table, names)
        assert condition is not None, "names are given"
        cur.execute(sql.SQL("DELETE FROM {} WHERE {}").format(qualified(schema, table), condition))
        deleted[table] = cur.rowcount
    log(
        f"Deleted {deleted[COLLECTION_TABLE]} collections ({', '.join(repr(n) for n in names)}) and their "
        f"{deleted[EMBEDDING_TABLE]:,} embeddings; the set's rows of them replace them in this transaction."
    )


@dataclass(frozen=True)
class ChosenCollections:
    """The collections a restore loads (as the set names them), renamed as asked, replacing the target's or not."""

    names: tuple[str, ...]
    renames: tuple[tuple[str, str], ...] = ()  # (name in the set, name in the target)
    replace: bool = False
    # The set holds exactly these collections and none is renamed: its files load straight into the target.
    whole_set: bool = False

    @property
    def final_names(self) -> list[str]:
        """The names the collections have in the target after the restore."""
        renamed = dict(self.renames)
        return [renamed.get(name, name) for name in self.names]


def stage_table(table: str) -> sql.Identifier:
    """The temporary table a file is loaded into before its rows are inserted into `table`."""
    return sql.Identifier(f"pgvector_restore_{table}")


def create_stage(
    cur: psycopg2.extensions.cursor, table: str, columns: Sequence[str], types: Mapping[str, str] | None = None
) -> sql.Identifier:
    """A temporary table with the file's columns (from its header): each of the type `types` gives it (the target
    column's, from the catalog), so COPY parses a value once and the INSERT … SELECT that takes the rows on copies
    it; text for the others, which that INSERT casts. (All text was 2.5× slower at 50,000 × 1536: the server
    compressed each vector's text as it stored it, and decompressed it to parse it.)"""
    stage, types = stage_table(table), types or {}
    cur.execute(
        sql.SQL("CREATE TEMPORARY TABLE {stage} ({columns}) ON COMMIT DROP").format(
            stage=stage,
            columns=sql.SQL(", ").join(
                # A type is the catalog's own format_type of a target column, or one of the callers' constants.
                sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(types.get(c, "pg_catalog.text")))
                for c in columns
            ),
        )
    )
    return stage


_RENAMES = sql.Identifier("pgvector_restore_renames")


def prepare_chosen(
    cur: psycopg2.extensions.cursor, schema: str, chosen: ChosenCollections, log: Callable[[str], None]
) -> None:
    """Before anything is loaded: delete the target's collections the restore replaces (by their final names),
    refuse names the target holds when not replacing, and note a new key for each renamed collection."""
    if chosen.replace:
        delete_collections(cur, schema, chosen.final_names, log)
    else:
        cur.execute(
            sql.SQL(
                "SELECT {name} FROM {collections} WHERE {name} OPERATOR(pg_catalog.=) ANY ({names}) ORDER BY 1"
            ).format(
                name=sql.Identifier(COLLECTION_NAME_COLUMN),
                collections=qualified(schema, COLLECTION_TABLE),
                names=sql.Literal(chosen.final_names),
            )
        )
        taken = [row[0] for row in cur.fetchall()]
        if taken:
            raise DataError(
                f"The target already holds {', '.join(repr(n) for n in taken)}. ",
                advice("replace_collections"),
                " to replace them, or rename them on restore (",
                named("rename"),
                "). Nothing was changed.",
            )
    cur.execute(
        sql.SQL(
            "CREATE TEMPORARY TABLE {} (old_name pg_catalog.text, new_name pg_catalog.text, new_key pg_catalog.uuid) "
            "ON COMMIT DROP"
        ).format(_RENAMES)
    )
    for old, new in chosen.renames:
        cur.execute(
            sql.SQL("INSERT INTO {} VALUES (%s, %s, pg_catalog.gen_random_uuid())").format(_RENAMES), (old, new)
        )


def insert_staged(
    cur: psycopg2.extensions.cursor,
    schema: str,
    target: TableDescription,
    file_columns: Sequence[str],
    chosen: ChosenCollections | None,
    derived: Mapping[str, sql.Composable] | None = None,
) -> int:
    """Insert the staged rows of a file into its target table (see create_stage), each value cast to its column's
    type; the rows inserted. `chosen`: only those collections' rows, renamed ones under their new name and key
    (their embeddings following); None: every row. `derived`: target columns computed from the staged row `s`
    (a migration's new keys) rather than taken from a file column of the same name. A key or id the target holds
    already is a clear DataError."""
    table, derived = target.name, derived or {}
    columns = [c for c in target.data_columns if c.name in derived or c.name in file_columns]
    statement = sql.SQL("INSERT INTO {target} ({columns}) SELECT {values} FROM {source}").format(
        target=qualified(schema, table),
        columns=sql.SQL(", ").join(sql.Identifier(c.name) for c in columns),
        values=sql.SQL(", ").join(
            derived[c.name] if c.name in derived else _staged_value(table, c, chosen) for c in columns
        ),
        source=_staged_rows(table, chosen),
    )
    with keys_taken_is_clear(table):
        cur.execute(statement)
    return cur.rowcount


def _staged_value(table: str, column: Column, chosen: ChosenCollections | None) -> sql.Composable:
    """A staged (text) value cast to its column's type; a renamed collection's new name or key in its place."""
    # The type is the catalog's own format_type of the target column, not file content.
    value = sql.SQL("s.{}::{}").format(sql.Identifier(column.name), sql.SQL(column.sql_type or column.type))
    renamed = {COLLECTION_KEY_COLUMN: "new_key", COLLECTION_NAME_COLUMN: "new_name"}
    if chosen is None or not chosen.renames:
        return value
    if table == COLLECTION_TABLE and column.name in renamed:
        return sql.SQL("COALESCE(r.{}, {})").format(sql.Identifier(renamed[column.name]), value)
    if table == EMBEDDING_TABLE and column.name == COLLECTION_REF_COLUMN:
        return sql.SQL("COALESCE(r.new_key, {})").format(value)
    return value


def _staged_rows(table: str, chosen: ChosenCollections | None) -> sql.Composable:
    """The FROM of insert_staged: the staged rows `s`, of the chosen collections only (joined to their renames)."""
    stage = stage_table(table)
    if chosen is None:
        return sql.SQL("{} s").format(stage)
    if table == COLLECTION_TABLE:
        source = sql.SQL(
            "{stage} s LEFT JOIN {renames} r ON r.old_name OPERATOR(pg_catalog.=) s.{name} "
            "WHERE s.{name} OPERATOR(pg_catalog.=) ANY ({names})"
        )
    else:
        source = sql.SQL(
            "{stage} s JOIN {collection_stage} c "
            "ON s.{ref}::pg_catalog.uuid OPERATOR(pg_catalog.=) c.{key}::pg_catalog.uuid "
            "LEFT JOIN {renames} r ON r.old_name OPERATOR(pg_catalog.=) c.{name} "
            "WHERE c.{name} OPERATOR(pg_catalog.=) ANY ({names})"
        )
    return source.format(
        stage=stage,
        collection_stage=stage_table(COLLECTION_TABLE),
        renames=_RENAMES,
        name=sql.Identifier(COLLECTION_NAME_COLUMN),
        names=sql.Literal(list(chosen.names)),
        ref=sql.Identifier(COLLECTION_REF_COLUMN),
        key=sql.Identifier(COLLECTION_KEY_COLUMN),
    )


def collections_present(cur: psycopg2.extensions.cursor, schema: str, names: Sequence[str]) -> list[str]:
    """Which of `names` the target's collection table holds already (none when it has no such table)."""
    # By name in the catalog: text handed to to_regclass is folded to lower case ("Docs" would read as docs).
    if table_oid(cur, schema, COLLECTION_TABLE) is None:
        return []
    cur.execute(
        sql.SQL("SELECT {name} FROM {table} WHERE {name} OPERATOR(pg_catalog.=) ANY (%s) ORDER BY 1").format(
            name=sql.Identifier(COLLECTION_NAME_COLUMN), table=qualified(schema, COLLECTION_TABLE)
        ),
        (list(names),),
    )
    return [row[0] for row in cur.fetchall()]


@contextmanager
def keys_taken_is_clear(table: str) -> Iterator[None]:
    """A unique violation while the chosen collections' rows go in becomes a DataError that says what it means:
    the target holds one of their keys or ids under another collection."""
    try:
        yield
    except psycopg2.errors.UniqueViolation as exc:
        what = "keys (uuid) of the collections" if table == COLLECTION_TABLE else "ids of the embeddings"
        raise DataError(
            f"The target already holds {what} being restored into {table} ({exc.diag.message_detail or exc}), "
            f"under another collection. A renamed collection gets a new key but keeps its embeddings' ids: restore "
            f"it into a target without those ids, or replace the collection that holds them. Nothing was changed."
        ) from None
