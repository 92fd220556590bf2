"""What stops a restore from swapping new tables for the live ones (issue 23): each kind of dependent the catalog
shows, named; the LangChain tables as LangChain makes them (and their own foreign key) stop nothing."""

import pytest

from pgvector_pipeline.names import COLLECTION_TABLE, EMBEDDING_TABLE
from pgvector_pipeline.postgres.swap import swap_blockers
from pgvector_pipeline.testing.db import execute

TABLES = [COLLECTION_TABLE, EMBEDDING_TABLE]


def blockers(dsn: str, tables=TABLES) -> list[str]:
    return execute(dsn, lambda cur: swap_blockers(cur, "public", tables))


def test_langchain_tables_as_made_can_be_swapped(store_db):
    assert blockers(store_db) == []


def test_swapping_the_embeddings_alone_is_blocked_by_nothing_of_theirs(store_db):
    assert blockers(store_db, [EMBEDDING_TABLE]) == []
    # The collections alone: the embeddings' foreign key points at them and would be left on the old table.
    assert blockers(store_db, [COLLECTION_TABLE]) == [
        f"foreign key {EMBEDDING_TABLE}_collection_id_fkey of {EMBEDDING_TABLE} references {COLLECTION_TABLE}"
    ]


@pytest.mark.parametrize(
    ("ddl", "reason"),
    [
        (f"CREATE VIEW docs AS SELECT document FROM {EMBEDDING_TABLE}", f"view docs reads {EMBEDDING_TABLE}"),
        (
            f"CREATE MATERIALIZED VIEW names AS SELECT name FROM {COLLECTION_TABLE}",
            f"materialized view names reads {COLLECTION_TABLE}",
        ),
        (
            f"CREATE RULE no_delete AS ON DELETE TO {EMBEDDING_TABLE} DO INSTEAD NOTHING",
            f"rule no_delete is defined on {EMBEDDING_TABLE}",
        ),
        (
            f"CREATE TABLE feedback (id int, embedding_id varchar REFERENCES {EMBEDDING_TABLE} (id))",
            f"foreign key feedback_embedding_id_fkey of feedback references {EMBEDDING_TABLE}",
        ),
        (f"CREATE PUBLICATION vectors FOR TABLE {EMBEDDING_TABLE}", f"publication vectors publishes {EMBEDDING_TABLE}"),
        (
            f"CREATE TABLE archived () INHERITS ({EMBEDDING_TABLE})",
            f"{EMBEDDING_TABLE} is an inheritance parent",
        ),
        (
            f"CREATE SEQUENCE shared OWNED BY {COLLECTION_TABLE}.name; CREATE TABLE other (n bigint DEFAULT "
            f"nextval('shared'))",
            f"sequence shared of {COLLECTION_TABLE} is also used by other",
        ),
        (
            f"CREATE FUNCTION count_docs() RETURNS bigint LANGUAGE sql BEGIN ATOMIC SELECT count(*) FROM "
            f"{EMBEDDING_TABLE}; END",
            f"function count_docs() depends on {EMBEDDING_TABLE}",
        ),
        (
            f"CREATE FUNCTION first_row() RETURNS SETOF {EMBEDDING_TABLE} LANGUAGE sql AS "
            f"'SELECT * FROM {EMBEDDING_TABLE} LIMIT 1'",
            f"function first_row() depends on {EMBEDDING_TABLE}",
        ),
        (f"CREATE TABLE kept (r {EMBEDDING_TABLE})", f"column r of table kept depends on {EMBEDDING_TABLE}"),
        (
            # Its expression is bound to the collection table it reads now: rebuilt on the new embedding table, it
            # would go on reading the old collection table after the swap.
            f"CREATE POLICY named ON {EMBEDDING_TABLE} USING (collection_id IN (SELECT uuid FROM {COLLECTION_TABLE}))",
            f"policy named on table {EMBEDDING_TABLE} depends on {COLLECTION_TABLE}",
        ),
    ],
)
def test_each_dependent_is_named(store_db, ddl, reason):
    execute(store_db, lambda cur: cur.execute(ddl))
    assert reason in blockers(store_db)


def test_a_publication_of_all_tables_and_a_partitioned_table_block(empty_db):
    execute(
        empty_db,
        lambda cur: cur.execute(
            "CREATE EXTENSION vector; CREATE TABLE chunks (id int, part int, embedding vector(3)) PARTITION BY "
            "LIST (part); CREATE TABLE chunks_1 PARTITION OF chunks FOR VALUES IN (1); "
            "CREATE PUBLICATION everything FOR ALL TABLES"
        ),
    )
    assert blockers(empty_db, ["chunks", "chunks_1"]) == [
        "publication everything publishes chunks",
        "chunks is partitioned",
        "publication everything publishes chunks_1",
        "chunks_1 is a partition",
    ]
