"""Row-level security never makes a partial set look complete, nor lets a truncate destroy the hidden rows."""

import psycopg2
import pytest

from pgvector_pipeline.errors import DatabaseError
from pgvector_pipeline.operations.backup import BackupOptions, back_up_database
from pgvector_pipeline.store.layout import GLOBAL_TASK_KEY, LOG_FILE_NAME
from pgvector_pipeline.store.local import LocalBackupStore
from pgvector_pipeline.testing.db import execute, query
from pgvector_pipeline.testing.langchain_tables import insert_sample_store

TS = "20261125_090000"
TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE")


@pytest.fixture
def tenant_store(store_db):
    """1,000 embeddings under a policy that shows a role about half of them (Supabase-style tenancy)."""

    def setup(cur):
        insert_sample_store(cur, "public", collections=2, embeddings_per_collection=500, dimension=8)
        cur.execute("ALTER TABLE langchain_pg_embedding ENABLE ROW LEVEL SECURITY")
        cur.execute("CREATE POLICY tenant_rows ON langchain_pg_embedding USING (right(id, 1) < '5')")

    execute(store_db, setup)
    return store_db


def embedding_rows(dsn: str) -> int:
    return query(dsn, "SELECT count(*) FROM langchain_pg_embedding")[0][0]


def test_a_role_under_a_policy_gets_an_error_and_nothing_is_written_or_truncated(tenant_store, make_role, backup_root):
    tenant = make_role(*TABLE_PRIVILEGES)
    with psycopg2.connect(tenant) as plain, plain.cursor() as cur:  # an ordinary session: the policy filters
        cur.execute("SELECT count(*) FROM langchain_pg_embedding")
        assert 0 < cur.fetchone()[0] < 1000

    with pytest.raises(DatabaseError) as failure:
        back_up_database(
            tenant,
            "public",
            LocalBackupStore(backup_root),
            GLOBAL_TASK_KEY,
            TS,
            BackupOptions(truncate_after_backup=True),
        )

    message = failure.value.message
    assert "row-level security policy on langchain_pg_embedding" in message
    assert "BYPASSRLS" in message and "Nothing was written or truncated" in message
    assert embedding_rows(tenant_store) == 1000
    assert sorted(p.name for p in (backup_root / "vector_bak").iterdir()) == [LOG_FILE_NAME]


def test_a_role_that_bypasses_the_policy_backs_up_every_row(tenant_store, make_role, backup_root):
    admin_of_tenants = make_role(*TABLE_PRIVILEGES, attributes=("BYPASSRLS",))

    result = back_up_database(admin_of_tenants, "public", LocalBackupStore(backup_root), GLOBAL_TASK_KEY, TS)

    assert result.table("langchain_pg_embedding").rows == 1000
