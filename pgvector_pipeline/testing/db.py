"""Small SQL helpers for tests and the demo: run work in one committed transaction, insert LangChain rows."""

import json
from collections.abc import Callable, Mapping
from contextlib import closing
from typing import Any, TypeVar, cast

import psycopg2.extensions

from pgvector_pipeline.postgres.catalog import single_value
from pgvector_pipeline.postgres.connection import connect

T = TypeVar("T")


def app_connection(dsn: str, **options: Any) -> psycopg2.extensions.connection:
    """A session as an app opens it: this tool's connect() (lock bounds, row security off, …) with the role's and
    database's search_path back (the tool's own sessions run with an empty one), so unqualified names resolve as the
    app's do."""
    conn = connect(dsn, **options)
    with conn.cursor() as cur:
        cur.execute("RESET search_path")
    conn.commit()
    return conn


def execute(dsn: str, work: Callable[[psycopg2.extensions.cursor], T]) -> T:
    """Run `work(cursor)` in one committed transaction and return its result, as an app's session would: with the
    role's and database's search_path (the tool's own sessions run with an empty one)."""
    with closing(connect(dsn)) as conn:
        with conn, conn.cursor() as cur:
            cur.execute("RESET search_path")
            return work(cur)


def query(dsn: str, statement: str, params: tuple[Any, ...] | None = None) -> list[tuple[Any, ...]]:
    """All rows of one statement, run in its own transaction."""

    def run(cur: psycopg2.extensions.cursor) -> list[tuple[Any, ...]]:
        cur.execute(statement, params)
        return cur.fetchall()

    return execute(dsn, run)


def insert_collection(cur: psycopg2.extensions.cursor, name: str, metadata: Mapping[str, Any] | None = None) -> str:
    cur.execute(
        "INSERT INTO langchain_pg_collection (uuid, name, cmetadata) VALUES (gen_random_uuid(), %s, %s) RETURNING uuid",
        (name, None if metadata is None else json.dumps(metadata)),
    )
    return cast(str, single_value(cur))


def insert_embedding(
    cur: psycopg2.extensions.cursor,
    id_: str,
    collection_id: str,
    vector: str | None,
    document: str | None,
    metadata: Mapping[str, Any] | None,
) -> None:
    cur.execute(
        "INSERT INTO langchain_pg_embedding (id, collection_id, embedding, document, cmetadata) "
        "VALUES (%s, %s, %s::vector, %s, %s)",
        (id_, collection_id, vector, document, None if metadata is None else json.dumps(metadata)),
    )
