"""Restores into a newer LangChain layout: a migration's settings (contract.Migration, from run config, the client or
the command line) checked and made typed records before anything connects. No SQL here: postgres.migrate and
postgres.pgvector_store load.

Two migrations, both one transaction from a set (never from a live store, so the source is a consistent snapshot):
- langchain_postgres: a langchain_community set (embeddings keyed by uuid, with custom_id) into langchain_postgres
  PGVector tables (keyed by id); see postgres.migrate for the ids. The reverse is refused.
- pgvector_store: a PGVector set (either package's layout; all its collections or those named) into one
  PGVectorStore table (langchain_postgres.v2), created when missing; see postgres.pgvector_store.
"""

import re
from collections.abc import Sequence

from pgvector_pipeline.contract import (
    MIGRATE_TO_LANGCHAIN_POSTGRES,
    MIGRATE_TO_PGVECTOR_STORE,
    MIGRATION_TARGETS,
    SAME_LAYOUT,
    Migration,
    RestoreFlags,
)
from pgvector_pipeline.errors import InvalidParams
from pgvector_pipeline.names import (
    COLLECTION_TABLE,
    COLUMN_NAME_PATTERN,
    EMBEDDING_TABLE,
    LANGCHAIN_COMMUNITY,
    LANGCHAIN_POSTGRES,
)
from pgvector_pipeline.postgres.pgvector_store import MetadataColumn, StoreTable

# The types a metadata column may have: PostgreSQL type names a cast of a JSON value's text can reach. Kept to a
# list, because the type is spelled into DDL and casts.
_METADATA_TYPES = re.compile(
    r"text|varchar(?:\([1-9][0-9]{0,4}\))?|character varying(?:\([1-9][0-9]{0,4}\))?|smallint|integer|int|bigint"
    r"|numeric(?:\([1-9][0-9]?(?:, ?[0-9]{1,2})?\))?|real|double precision|float8|float4|boolean|bool|date"
    r"|timestamp|timestamptz|timestamp with time zone|timestamp without time zone|uuid|json|jsonb"
)


def parse_metadata_column(text: str) -> MetadataColumn:
    """'name:type' as a MetadataColumn; InvalidParams saying what is wrong."""
    name, sep, data_type = text.partition(":")
    name, data_type = name.strip(), " ".join(data_type.split()).lower()
    if not sep or not COLUMN_NAME_PATTERN.fullmatch(name):
        raise InvalidParams(
            f"metadata column {text!r} is not 'name:type' with a plain name (letters, digits, underscores; at most "
            f"63), e.g. 'page:integer'."
        )
    if not _METADATA_TYPES.fullmatch(data_type):
        raise InvalidParams(
            f"metadata column {name!r} has type {data_type!r}; use one of text, varchar(n), smallint, integer, "
            f"bigint, numeric(p,s), real, double precision, boolean, date, timestamp, timestamptz, uuid, json, jsonb."
        )
    return MetadataColumn(name, data_type)


def check_store_table(migration: Migration) -> StoreTable:
    """The PGVectorStore table a pgvector_store migration loads into; InvalidParams for a missing or odd name, odd
    metadata columns, or a metadata column that takes a name the table's own columns have."""
    if not COLUMN_NAME_PATTERN.fullmatch(migration.store_table):
        raise InvalidParams(
            f"migrate_to {MIGRATE_TO_PGVECTOR_STORE} needs store_table, the PGVectorStore table to load into "
            f"(letters, digits, underscores; at most 63), in the target schema; got {migration.store_table!r}."
        )
    columns = tuple(parse_metadata_column(text) for text in migration.metadata_columns)
    store = StoreTable(migration.store_table, columns)
    own = {store.id_column, store.content_column, store.embedding_column, store.metadata_json_column}
    names = [column.name for column in columns]
    clash = sorted({n for n in names if n in own or names.count(n) > 1})
    if clash:
        raise InvalidParams(
            f"metadata columns {clash} are named twice or like the table's own columns ({', '.join(sorted(own))})."
        )
    return store


def check_migration(
    migration: Migration,
    set_layout: str,
    flags: RestoreFlags,
    renamed: bool,
    tables: Sequence[str],
    held: Sequence[str],
) -> StoreTable | None:
    """Refuse migration settings that cannot work with this set and these restore settings, before anything
    connects; the PGVectorStore table for a pgvector_store migration."""
    if migration.migrate_to not in MIGRATION_TARGETS:
        choices = ", ".join(repr(t) for t in MIGRATION_TARGETS if t)
        raise InvalidParams(f"migrate_to is {migration.migrate_to!r}; use {choices}, or leave it empty.")
    if migration.migrate_to != MIGRATE_TO_PGVECTOR_STORE and (migration.store_table or migration.metadata_columns):
        raise InvalidParams(
            f"store_table and metadata_columns describe a PGVectorStore table: set migrate_to: "
            f"{MIGRATE_TO_PGVECTOR_STORE} with them, or leave them empty."
        )
    if migration.migrate_to == SAME_LAYOUT:
        return None
    if list(tables) != list(held):
        raise InvalidParams(f"A migration restores all the set's tables ({', '.join(held)}); leave tables empty.")
    if migration.migrate_to == MIGRATE_TO_LANGCHAIN_POSTGRES:
        if set_layout != LANGCHAIN_COMMUNITY:
            raise InvalidParams(
                f"migrate_to {MIGRATE_TO_LANGCHAIN_POSTGRES} loads a set written by langchain_community's PGVector, "
                f"and this set's layout is {set_layout}"
                + (": restore it without migrate_to." if set_layout == LANGCHAIN_POSTGRES else ".")
            )
        return None
    if not {COLLECTION_TABLE, EMBEDDING_TABLE} <= set(held):
        raise InvalidParams(
            f"migrate_to {MIGRATE_TO_PGVECTOR_STORE} needs a set of both LangChain tables ({COLLECTION_TABLE}, "
            f"{EMBEDDING_TABLE}); this set holds {', '.join(held)}."
        )
    if set_layout not in (LANGCHAIN_POSTGRES, LANGCHAIN_COMMUNITY):
        raise InvalidParams(
            f"migrate_to {MIGRATE_TO_PGVECTOR_STORE} loads a LangChain PGVector set; this set's "
            f"embedding table has layout {set_layout}."
        )
    if renamed or flags.replace_collections or flags.fill_extra_columns:
        raise InvalidParams(
            f"migrate_to {MIGRATE_TO_PGVECTOR_STORE} loads into one table that holds no collections: rename, "
            f"replace_collections and fill_extra_columns do not apply (the table is created when missing; "
            f"truncate_before_restore empties it first). Name the collections to take in collections."
        )
    return check_store_table(migration)
