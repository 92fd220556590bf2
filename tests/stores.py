"""Stores with awkward content for round-trip tests, in both LangChain layouts."""

import json

from pgvector_pipeline.names import LANGCHAIN_POSTGRES
from pgvector_pipeline.testing.db import execute, insert_collection, insert_embedding
from pgvector_pipeline.testing.langchain_tables import create_langchain_tables

TRICKY_DOCUMENTS = [
    'commas, "quotes", and more',
    "line one\nline two\r\nline three with CRLF",
    "tab\there and backslash \\N not null",
    "non-ASCII: 東京, Ünïcödé, emoji 🧭",
    "",
    None,
]
TRICKY_METADATA = {"source": 'it\'s "here"', "ok": True, "none": None, "nested": {"list": [1, 2.5, "x"]}}


def fill_langchain_postgres(cur, fixed_dimension: bool = False) -> None:
    with_meta = insert_collection(cur, "tricky", {"lang": "zh", "note": 'it\'s "quoted"'})
    without_meta = insert_collection(cur, "no metadata", None)
    for i, document in enumerate(TRICKY_DOCUMENTS):
        insert_embedding(cur, f"e{i}", with_meta, f"[{i}, 0.5, -1.25]", document, {**TRICKY_METADATA, "i": i})
    if not fixed_dimension:
        insert_embedding(cur, "other-dim", without_meta, "[1,2,3,4,5]", "five dims", {})
    insert_embedding(cur, "no-vector", without_meta, None, "no embedding", None)


def fill_langchain_community(cur, fixed_dimension: bool = False) -> None:
    cur.execute(
        "INSERT INTO langchain_pg_collection (name, cmetadata, uuid) VALUES ('c', %s, gen_random_uuid())",
        (json.dumps({"a": "b'c"}),),
    )
    for i, document in enumerate(TRICKY_DOCUMENTS):
        cur.execute(
            "INSERT INTO langchain_pg_embedding (collection_id, embedding, document, cmetadata, custom_id, uuid) "
            "SELECT uuid, %s, %s, %s, %s, gen_random_uuid() FROM langchain_pg_collection",
            (f"[{i},1,2]", document, json.dumps({**TRICKY_METADATA, "i": i}), f"custom-{i}"),
        )


def make_store(dsn: str, layout: str, dimension: int | None = None, create_tables: bool = True) -> None:
    """Fill a store with the tricky rows; create its tables first unless they exist (`create_tables` False)."""
    fill = fill_langchain_postgres if layout == LANGCHAIN_POSTGRES else fill_langchain_community

    def setup(cur):
        if create_tables:
            create_langchain_tables(cur, "public", layout, dimension=dimension)
        fill(cur, fixed_dimension=dimension is not None)

    execute(dsn, setup)
