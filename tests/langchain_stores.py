"""Stores written and read by the real LangChain classes: langchain_community's PGVector (the older layout),
langchain_postgres's PGVector (the two current tables) and its PGVectorStore (one table per store). Embeddings come
from LangChain's DeterministicFakeEmbedding, so a text always gets the same vector."""

import asyncio
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding

DIMENSION = 16
QUERIES = ("alpha report", "beta notes", "gamma", "a question nobody wrote")


def embedding() -> DeterministicFakeEmbedding:
    return DeterministicFakeEmbedding(size=DIMENSION)


def sqlalchemy_url(dsn: str, driver: str) -> str:
    """The embedded server's postgresql:// URI for SQLAlchemy with `driver` (psycopg2, psycopg)."""
    assert dsn.startswith("postgresql://"), dsn
    return dsn.replace("postgresql://", f"postgresql+{driver}://", 1)


@dataclass(frozen=True)
class Answer:
    """One search answer as LangChain returns it, comparable across stores."""

    id: str | None
    content: str
    metadata: dict
    score: float


def answers(pairs: Sequence[tuple[Document, float]]) -> list[Answer]:
    return [Answer(doc.id, doc.page_content, dict(doc.metadata or {}), round(score, 9)) for doc, score in pairs]


def community_store(dsn: str, collection: str):
    """langchain_community's PGVector over psycopg2, cmetadata jsonb."""
    from langchain_community.vectorstores.pgvector import PGVector

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return PGVector(
            connection_string=sqlalchemy_url(dsn, "psycopg2"),
            embedding_function=embedding(),
            collection_name=collection,
            use_jsonb=True,
        )


def postgres_store(dsn: str, collection: str):
    """langchain_postgres's PGVector over psycopg 3."""
    from langchain_postgres import PGVector

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return PGVector(
            embeddings=embedding(),
            collection_name=collection,
            connection=sqlalchemy_url(dsn, "psycopg"),
            use_jsonb=True,
        )


def search(store, queries: Sequence[str] = QUERIES, k: int = 4) -> dict[str, list[Answer]]:
    return {query: answers(store.similarity_search_with_score(query, k=k)) for query in queries}


def vector_store_search(
    dsn: str, table: str, schema: str = "public", metadata_columns: Sequence[str] = (), k: int = 4
) -> dict[str, list[Answer]]:
    """The answers of a PGVectorStore table (langchain_postgres.v2) to QUERIES."""
    from langchain_postgres import PGEngine, PGVectorStore

    engine = PGEngine.from_connection_string(url=sqlalchemy_url(dsn, "psycopg"))
    try:
        store = PGVectorStore.create_sync(
            engine,
            table_name=table,
            schema_name=schema,
            embedding_service=embedding(),
            metadata_columns=list(metadata_columns),
        )
        return search(store, k=k)
    finally:
        asyncio.run(engine.close())
