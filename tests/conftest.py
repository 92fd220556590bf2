"""One real embedded PostgreSQL 18 + pgvector server per test session; a fresh database per test."""

import itertools
import json
import os
from pathlib import Path

# Before the definitions are imported: retry back-off of lost connections in seconds, not minutes.
os.environ["PGVECTOR_RETRY_DELAY_S"] = "0.1"

import pytest

from pgvector_pipeline.embedded import database_dsn, ensure_database, start_embedded_server
from pgvector_pipeline.postgres.connection import connect
from pgvector_pipeline.postgres.langchain_schema import LANGCHAIN_POSTGRES, create_langchain_tables

_database_numbers = itertools.count()


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory):
    server = start_embedded_server(tmp_path_factory.mktemp("pg") / "data", keep_running=False)
    yield server
    server.cleanup()


@pytest.fixture
def empty_db(pg_server) -> str:
    """DSN of a new, empty database (no extension, no tables)."""
    return ensure_database(pg_server, f"test_{next(_database_numbers)}")


@pytest.fixture
def admin_dsn(pg_server) -> str:
    return database_dsn(pg_server, "postgres")


@pytest.fixture
def store_db(empty_db) -> str:
    """DSN of a database with empty langchain_postgres tables (embedding without a fixed dimension)."""
    execute(empty_db, lambda cur: create_langchain_tables(cur, "public", LANGCHAIN_POSTGRES))
    return empty_db


@pytest.fixture
def backup_root(tmp_path) -> Path:
    root = tmp_path / "backups"
    root.mkdir()
    return root


def execute(dsn: str, work):
    """Run `work(cursor)` in one committed transaction and return its result."""
    conn = connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            return work(cur)
    finally:
        conn.close()


def query(dsn: str, statement: str, params=None) -> list[tuple]:
    def run(cur):
        cur.execute(statement, params)
        return cur.fetchall()

    return execute(dsn, run)


def insert_collection(cur, name: str, metadata=None) -> str:
    cur.execute(
        "INSERT INTO langchain_pg_collection (uuid, name, cmetadata) VALUES (gen_random_uuid(), %s, %s) RETURNING uuid",
        (name, None if metadata is None else json.dumps(metadata)),
    )
    return cur.fetchone()[0]


def insert_embedding(cur, id_: str, collection_id: str, vector: str | None, document, metadata) -> None:
    cur.execute(
        "INSERT INTO langchain_pg_embedding (id, collection_id, embedding, document, cmetadata) "
        "VALUES (%s, %s, %s::vector, %s, %s)",
        (id_, collection_id, vector, document, None if metadata is None else json.dumps(metadata)),
    )
