"""A langchain_community set restored into langchain_postgres tables: what differs between the layouts, and the new
embedding ids, computed by the server from the staged file (no row passes through Python).

langchain_community's embedding table keys rows by `uuid` (uuid) and keeps the caller's id in `custom_id` (varchar,
nullable, not unique); langchain_postgres keys them by `id` (varchar). A row's new `id` is its `custom_id` where that
is present (not NULL, not '') and unique in the set (the id the app gave it, which langchain_postgres returns as
Document.id), else its old uuid as text. Uniqueness is judged over the whole set, so a row gets the same id whichever
of its collections a restore takes. The collection tables differ only in column order: they load by name.
"""

from typing import cast

import psycopg2.extensions
from psycopg2 import sql

from pgvector_pipeline.errors import DataError, setting
from pgvector_pipeline.names import (
    COLLECTION_TABLE,
    COMMUNITY_CUSTOM_ID_COLUMN,
    COMMUNITY_KEY_COLUMN,
    EMBEDDING_ID_COLUMN,
    EMBEDDING_TABLE,
    LANGCHAIN_COMMUNITY,
    LANGCHAIN_POSTGRES,
)
from pgvector_pipeline.postgres.catalog import TableDescription, langchain_layout, single_value
from pgvector_pipeline.postgres.collections import stage_table

# The community file's columns that make the new id and are not loaded as such.
CONSUMED_COLUMNS = (COMMUNITY_CUSTOM_ID_COLUMN, COMMUNITY_KEY_COLUMN)

_DUPLICATED = sql.Identifier("pgvector_restore_duplicated_custom_ids")

# langchain_postgres's PGVector tables as it creates them (0.0.19, langchain_postgres/vectorstores.py), in the
# form of a manifest's DDL, placed in the target schema by ddl.placed (pgvector's type through its schema): the
# tables of a migration with create_missing.
_COLLECTION_DDL = (
    "CREATE TABLE langchain_pg_collection (uuid uuid PRIMARY KEY, name varchar NOT NULL UNIQUE, cmetadata json)"
)
_EMBEDDING_DDL = (
    "CREATE TABLE langchain_pg_embedding (id varchar PRIMARY KEY, collection_id uuid REFERENCES langchain_pg_collection "
    "(uuid) ON DELETE CASCADE, embedding vector{dimension}, document varchar, cmetadata jsonb)"
)
_EMBEDDING_INDEX = "CREATE INDEX ix_cmetadata_gin ON langchain_pg_embedding USING gin (cmetadata jsonb_path_ops)"


def langchain_postgres_ddl(dimension: int | None) -> dict[str, tuple[str, list[str]]]:
    """Table -> (CREATE TABLE, CREATE INDEX statements) of langchain_postgres's layout, in restore order; a fixed
    embedding dimension when the set has one."""
    return {
        COLLECTION_TABLE: (_COLLECTION_DDL, []),
        EMBEDDING_TABLE: (
            _EMBEDDING_DDL.format(dimension=f"({int(dimension)})" if dimension else ""),
            [_EMBEDDING_INDEX],
        ),
    }


def loaded_columns(file_columns: list[str]) -> list[str]:
    """The target columns a community embedding file fills when migrated: its own but the consumed ones, and id."""
    return [c for c in file_columns if c not in CONSUMED_COLUMNS] + [EMBEDDING_ID_COLUMN]


def check_layouts(target: TableDescription, file_columns: list[str], migrating: bool) -> None:
    """Refuse, saying what to do, an embedding file and a target table of different LangChain layouts that the
    restore would not migrate between: a community set into langchain_postgres without migrating, and the reverse."""
    if target.name != EMBEDDING_TABLE:
        return
    theirs, ours = langchain_layout(file_columns), langchain_layout(target.column_names)
    if ours == LANGCHAIN_COMMUNITY and (migrating or theirs == LANGCHAIN_POSTGRES):
        raise DataError(
            f"The target's {EMBEDDING_TABLE} has langchain_community's older layout (rows keyed by uuid, with "
            f"custom_id), and {'a migration loads into' if migrating else 'the set holds'} langchain_postgres's "
            f"(keyed by id). Restoring into the older layout is not supported: it would have to invent keys and "
            f"drop ids. Restore into langchain_postgres tables (an empty schema with ",
            setting("create_missing"),
            " gets them). Nothing was changed.",
        )
    if ours == LANGCHAIN_POSTGRES and theirs == LANGCHAIN_COMMUNITY and not migrating:
        raise DataError(
            f"The set was written by langchain_community's PGVector (embeddings keyed by uuid, with custom_id) and "
            f"the target's {EMBEDDING_TABLE} has langchain_postgres's layout (keyed by id). Restore with ",
            setting("migrate_to", LANGCHAIN_POSTGRES),
            " to load it into this layout: each row's id becomes its custom_id where that is unique, else its old "
            "uuid. Nothing was changed.",
        )


def new_ids(cur: psycopg2.extensions.cursor) -> dict[str, sql.Composable]:
    """The expression of each migrated row's new id over the staged embedding row `s` (see the module's
    docstring), after noting which custom ids the set holds more than once."""
    stage, custom_id = stage_table(EMBEDDING_TABLE), sql.Identifier(COMMUNITY_CUSTOM_ID_COLUMN)
    cur.execute(
        sql.SQL(
            "CREATE TEMPORARY TABLE {duplicated} ON COMMIT DROP AS "
            "SELECT {custom_id} FROM {stage} WHERE {custom_id} OPERATOR(pg_catalog.<>) '' GROUP BY 1 "
            "HAVING pg_catalog.count(*) OPERATOR(pg_catalog.>) 1"
        ).format(duplicated=_DUPLICATED, custom_id=custom_id, stage=stage)
    )
    # NOT (x = ANY (subquery)) is NOT IN, as the parser reads it: over a small table, one hashed lookup per row;
    # the table holds no NULL, so it is exact.
    expression = sql.SQL(
        "CASE WHEN s.{custom_id} OPERATOR(pg_catalog.<>) '' AND NOT (s.{custom_id} OPERATOR(pg_catalog.=) ANY "
        "(SELECT {custom_id} FROM {duplicated})) THEN s.{custom_id} ELSE s.{old_key} END"
    ).format(custom_id=custom_id, duplicated=_DUPLICATED, old_key=sql.Identifier(COMMUNITY_KEY_COLUMN))
    return {EMBEDDING_ID_COLUMN: expression}


def duplicated_custom_ids(cur: psycopg2.extensions.cursor) -> int:
    """How many custom ids the set holds more than once (their rows keep their old uuid as id)."""
    cur.execute(sql.SQL("SELECT pg_catalog.count(*) FROM {}").format(_DUPLICATED))
    return cast(int, single_value(cur))
