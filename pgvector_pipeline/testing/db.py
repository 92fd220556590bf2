"""Small SQL helpers for tests and the demo: run work in one committed transaction, insert LangChain rows."""

import json
from collections.abc import Callable
from contextlib import closing
from typing import Any

from pgvector_pipeline.postgres.connection import connect


def app_connection(dsn: str, **options: Any):
    """A session as an app opens it: this tool's connect() (lock bounds, row security off, …) with the role's and
    database's search_path back (the tool's own sessions run with an empty one), so unqualified names resolve as the
    app's do."""
    conn = connect(dsn, **options)
    with conn.cursor() as cur:
        cur.execute("RESET search_path")
    conn.commit()
    return conn


def execute(dsn: str, work: Callable[[Any], Any]) -> Any:
    """Run `work(cursor)` in one committed transaction and return its result, as an app's session would: with the
    role's and database's search_path (the tool's own sessions run with an empty one)."""
    with closing(connect(dsn)) as conn:
        with conn, conn.cursor() as cur:
            cur.execute("RESET search_path")
            return work(cur)


def query(dsn: str, statement: str, params: tuple | None = None) -> list[tuple]:
    """All rows of one statement, run in its own transaction."""

    def run(cur):
        cur.execute(statement, params)
        return cur.fetchall()

    return execute(dsn, run)


def insert_collection(cur, name: str, metadata: dict | None = None) -> str:
    cur.execute(
        "INSERT INTO langchain_pg_collection (uuid, name, cmetadata) VALUES (gen_random_uuid(), %s, %s) RETURNING uuid",
        (name, None if metadata is None else json.dumps(metadata)),
    )
    return cur.fetchone()[0]


def insert_embedding(
    cur, id_: str, collection_id: str, vector: str | None, document: str | None, metadata: dict | None
) -> None:
    cur.execute(
        "INSERT INTO langchain_pg_embedding (id, collection_id, embedding, document, cmetadata) "
        "VALUES (%s, %s, %s::vector, %s, %s)",
        (id_, collection_id, vector, document, None if metadata is None else json.dumps(metadata)),
    )
