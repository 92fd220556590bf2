"""New tables built beside the live ones and swapped in (issue 23): after the swap, the tables under the live names
have everything the live ones had, by the catalog's own account; the rows are there and the foreign key between the
LangChain tables points at the new collection table."""

import pytest

from pgvector_pipeline.names import COLLECTION_TABLE, EMBEDDING_TABLE
from pgvector_pipeline.postgres.catalog import qualified
from pgvector_pipeline.postgres.shadow import create_shadows, finish_shadows, old_name, swap_shadows
from pgvector_pipeline.testing.db import execute, query
from tests.catalog_fingerprint import TABLES, contents, dress, fingerprint


@pytest.fixture
def dressed_store(store_db) -> str:
    return dress(store_db)


def swap_in_copies(dsn: str) -> None:
    """Build new tables, fill them with the live rows (as a load would), finish and swap them in: one transaction."""

    def work(cur) -> None:
        shadows = create_shadows(cur, "public", TABLES)
        for shadow in shadows:
            cur.execute(f"INSERT INTO {qualified('public', shadow.name).as_string(cur)} SELECT * FROM {shadow.live}")
        finish_shadows(cur, "public", shadows, lambda _: None)
        swap_shadows(cur, "public", shadows)
        cur.execute(f"DROP TABLE {', '.join(old_name(shadow) for shadow in shadows)}")

    execute(dsn, work)


def test_swapped_tables_have_everything_the_live_ones_had(dressed_store):
    before, rows = fingerprint(dressed_store), contents(dressed_store)
    assert len(before[EMBEDDING_TABLE]) > 15  # the extras are there to compare

    swap_in_copies(dressed_store)

    assert fingerprint(dressed_store) == before
    assert contents(dressed_store) == rows
    assert query(dressed_store, "SELECT count(*) FROM pg_class WHERE relname LIKE 'pgvector_%%'") == [(0,)]


def test_the_foreign_key_points_at_the_new_collection_table(dressed_store):
    swap_in_copies(dressed_store)

    execute(
        dressed_store, lambda cur: cur.execute(f"DELETE FROM {COLLECTION_TABLE} WHERE name = 'sample_collection_0'")
    )
    assert query(dressed_store, f"SELECT count(*) FROM {EMBEDDING_TABLE}") == [(20,)]  # ON DELETE CASCADE
    with pytest.raises(Exception, match="violates foreign key constraint"):
        execute(
            dressed_store,
            lambda cur: cur.execute(
                f"INSERT INTO {EMBEDDING_TABLE} (id, collection_id) VALUES ('x', gen_random_uuid())"
            ),
        )


def test_a_serial_id_keeps_its_sequence(empty_db):
    execute(
        empty_db,
        lambda cur: cur.execute(
            "CREATE EXTENSION vector; CREATE TABLE data_docs (id bigserial PRIMARY KEY, text text, "
            "embedding vector(3)); INSERT INTO data_docs (text) VALUES ('a'), ('b')"
        ),
    )

    def work(cur) -> None:
        shadows = create_shadows(cur, "public", ["data_docs"])
        cur.execute(f"INSERT INTO {shadows[0].name} SELECT * FROM data_docs")
        finish_shadows(cur, "public", shadows, lambda _: None)
        swap_shadows(cur, "public", shadows)
        cur.execute(f"DROP TABLE {', '.join(old_name(shadow) for shadow in shadows)}")

    execute(empty_db, work)

    assert query(empty_db, "INSERT INTO data_docs (text) VALUES ('c') RETURNING id") == [(3,)]
    assert query(empty_db, "SELECT pg_get_serial_sequence('data_docs', 'id')") == [("public.data_docs_id_seq",)]
