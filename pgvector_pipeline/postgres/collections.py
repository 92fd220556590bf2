"""Collections of a LangChain store as rows: which rows a per-collection backup takes, and how many embeddings
each collection holds. All SQL of it lives here; identifiers through psycopg2.sql."""

from collections.abc import Callable, Sequence

from psycopg2 import sql

from pgvector_pipeline.errors import ResourceNotFound
from pgvector_pipeline.names import (
    COLLECTION_KEY_COLUMN,
    COLLECTION_NAME_COLUMN,
    COLLECTION_REF_COLUMN,
    COLLECTION_TABLE,
    EMBEDDING_TABLE,
)
from pgvector_pipeline.postgres.catalog import qualified

# A listing of the collections a store holds, in a message, stops after this many names.
_SHOWN = 20


def row_filter(schema: str, table: str, names: Sequence[str]) -> sql.Composable | None:
    """The WHERE condition that keeps `table`'s rows of the collections `names` (None: every row). Embeddings
    are chosen through their collection's key, in the same snapshot, so the two files agree."""
    if not names:
        return None
    chosen = sql.SQL("{name} = ANY({names})").format(
        name=sql.Identifier(COLLECTION_NAME_COLUMN), names=sql.Literal(list(names))
    )
    if table == COLLECTION_TABLE:
        return chosen
    if table == EMBEDDING_TABLE:
        return sql.SQL("{ref} IN (SELECT {key} FROM {collections} WHERE {chosen})").format(
            ref=sql.Identifier(COLLECTION_REF_COLUMN),
            key=sql.Identifier(COLLECTION_KEY_COLUMN),
            collections=qualified(schema, COLLECTION_TABLE),
            chosen=chosen,
        )
    return None


def embeddings_per_collection(cur, schema: str, names: Sequence[str]) -> dict[str, int]:
    """Embeddings of each collection (those named, or all), by name; ResourceNotFound naming the collections the
    store holds when a name is not among them (a typo must not back up nothing)."""
    where = row_filter(schema, COLLECTION_TABLE, names)
    cur.execute(
        sql.SQL(
            "SELECT c.{name}, count(e.{ref}) FROM {collections} c LEFT JOIN {embeddings} e ON e.{ref} = c.{key}"
            "{where} GROUP BY c.{name} ORDER BY c.{name}"
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


def delete_collections(cur, schema: str, names: Sequence[str], log: Callable[[str], None]) -> None:
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
