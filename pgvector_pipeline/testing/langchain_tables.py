"""The two LangChain PGVector table layouts as LangChain creates them, and sample data for the demo,
the benchmark and the tests."""

import io
import json
import random
import uuid

import psycopg2.extensions
from psycopg2 import sql

from pgvector_pipeline.names import (
    COLLECTION_TABLE,
    EMBEDDING_TABLE,
    LANGCHAIN_COMMUNITY,
    LANGCHAIN_POSTGRES,
)
from pgvector_pipeline.postgres.catalog import pgvector_name, qualified

_TABLES = {
    # langchain_postgres.PGVector (current).
    LANGCHAIN_POSTGRES: (
        "CREATE TABLE {collection} (uuid uuid PRIMARY KEY, name varchar NOT NULL UNIQUE, cmetadata json)",
        "CREATE TABLE {embedding} (id varchar PRIMARY KEY, "
        "collection_id uuid REFERENCES {collection} (uuid) ON DELETE CASCADE, "
        "embedding {vector}, document varchar, cmetadata jsonb)",
        "CREATE INDEX ix_cmetadata_gin ON {embedding} USING gin (cmetadata jsonb_path_ops)",
    ),
    # langchain_community.vectorstores.PGVector (older): other column order, custom_id, uuid keys.
    LANGCHAIN_COMMUNITY: (
        "CREATE TABLE {collection} (name varchar, cmetadata json, uuid uuid PRIMARY KEY)",
        "CREATE TABLE {embedding} (collection_id uuid REFERENCES {collection} (uuid) ON DELETE CASCADE, "
        "embedding {vector}, document varchar, cmetadata jsonb, custom_id varchar, uuid uuid PRIMARY KEY)",
    ),
}


def create_langchain_tables(
    cur: psycopg2.extensions.cursor, schema: str, layout: str = LANGCHAIN_POSTGRES, dimension: int | None = None
) -> None:
    """Create the vector extension and the two tables as LangChain does (a fixed dimension is optional)."""
    # Named through schemas: this tool's sessions (connect) run with an empty search_path.
    cur.execute("CREATE EXTENSION IF NOT EXISTS vector SCHEMA public")
    cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    vector = pgvector_name(cur, "vector")
    vector = vector if dimension is None else sql.SQL("{}({})").format(vector, sql.Literal(dimension))
    names = {"collection": qualified(schema, COLLECTION_TABLE), "embedding": qualified(schema, EMBEDDING_TABLE)}
    for statement in _TABLES[layout]:
        cur.execute(sql.SQL(statement).format(vector=vector, **names))


def random_vector_text(rng: random.Random, dimension: int) -> str:
    """A random vector of `dimension` floats in pgvector's text form."""
    return "[" + ",".join(f"{rng.uniform(-1, 1):.6f}" for _ in range(dimension)) + "]"


def insert_sample_store(
    cur: psycopg2.extensions.cursor,
    schema: str,
    collections: int = 3,
    embeddings_per_collection: int = 1000,
    dimension: int = 384,
    seed: int = 0,
) -> int:
    """Fill a langchain_postgres layout with deterministic sample collections and embeddings; returns rows added."""
    rng = random.Random(seed)
    collection_ids = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(collections)]
    cur.executemany(
        sql.SQL("INSERT INTO {} (uuid, name, cmetadata) VALUES (%s, %s, %s)").format(
            qualified(schema, COLLECTION_TABLE)
        ),
        [
            (str(cid), f"sample_collection_{i}", json.dumps({"owner": "demo", "index": i}))
            for i, cid in enumerate(collection_ids)
        ],
    )
    buffer = io.StringIO()
    for c, cid in enumerate(collection_ids):
        for i in range(embeddings_per_collection):
            metadata = json.dumps({"source": f"doc_{c}_{i}.md", "page": i % 7})
            document = f"Sample document {i} of collection {c}, about topic {rng.randint(1, 50)}."
            buffer.write(f"{cid}-{i}\t{cid}\t{random_vector_text(rng, dimension)}\t{document}\t{metadata}\n")
    buffer.seek(0)
    cur.copy_expert(
        sql.SQL("COPY {} (id, collection_id, embedding, document, cmetadata) FROM STDIN").format(
            qualified(schema, EMBEDDING_TABLE)
        ),
        buffer,
    )
    return collections * embeddings_per_collection


def fill_sample_store(
    dsn: str, *, collections: int = 2, embeddings_per_collection: int = 100, dimension: int = 8
) -> int:
    """insert_sample_store into the public schema of `dsn`, in a transaction of its own; rows added."""
    from pgvector_pipeline.testing.db import execute

    return execute(
        dsn,
        lambda cur: insert_sample_store(
            cur,
            "public",
            collections=collections,
            embeddings_per_collection=embeddings_per_collection,
            dimension=dimension,
        ),
    )
