"""Restore checks the privileges it needs before changing anything, and loads with indexes in place when
the role cannot drop and rebuild them."""

import pytest
from psycopg2 import sql

from pgvector_pipeline.contract import RestoreFlags
from pgvector_pipeline.errors import DatabaseError, ErrorType
from pgvector_pipeline.operations.backup import back_up_database
from pgvector_pipeline.operations.restore import restore_backup_set
from pgvector_pipeline.store.layout import GLOBAL_TASK_KEY
from pgvector_pipeline.store.local import LocalBackupStore, locate_backup_set
from pgvector_pipeline.testing.db import execute, query
from pgvector_pipeline.testing.langchain_tables import fill_sample_store
from tests.helpers import RecordingLog

TS = "20261125_110000"
INDEXES = "SELECT indexname FROM pg_indexes WHERE tablename = 'langchain_pg_embedding' ORDER BY 1"


@pytest.fixture
def backed_up(store_db, backup_root):
    fill_sample_store(store_db, collections=2, embeddings_per_collection=50, dimension=8)
    back_up_database(store_db, "public", LocalBackupStore(backup_root), GLOBAL_TASK_KEY, TS)
    execute(store_db, lambda cur: cur.execute("DELETE FROM langchain_pg_embedding WHERE id LIKE '%7'"))
    return locate_backup_set(backup_root, timestamp=TS)


def role_of(dsn: str) -> str:
    return query(dsn, "SELECT current_user")[0][0]


def test_a_role_that_may_insert_and_truncate_restores_with_the_indexes_in_place(store_db, backed_up, make_role):
    loader = make_role("SELECT", "INSERT", "TRUNCATE")
    indexes = query(store_db, INDEXES)
    log = RecordingLog()

    result = restore_backup_set(loader, "public", backed_up, RestoreFlags(truncate_before_restore=True), log=log)

    assert [t.rows_after for t in result.tables] == [2, 100]
    assert query(store_db, "SELECT count(*) FROM langchain_pg_embedding")[0][0] == 100
    assert query(store_db, INDEXES) == indexes
    assert any(
        "loading with its indexes in place, which is slower" in line and f"role {role_of(loader)} does not own" in line
        for line in log.infos
    ), log.infos


def test_an_owner_without_create_on_the_schema_restores_with_the_indexes_in_place(store_db, backed_up, make_role):
    owner = make_role()
    execute(
        store_db,
        lambda cur: cur.execute(
            sql.SQL("ALTER TABLE langchain_pg_collection OWNER TO {0}; ").format(sql.Identifier(role_of(owner)))
        ),
    )
    execute(
        store_db,
        lambda cur: cur.execute(
            sql.SQL("ALTER TABLE langchain_pg_embedding OWNER TO {0}").format(sql.Identifier(role_of(owner)))
        ),
    )
    log = RecordingLog()

    restore_backup_set(owner, "public", backed_up, RestoreFlags(truncate_before_restore=True), log=log)

    assert query(store_db, "SELECT count(*) FROM langchain_pg_embedding")[0][0] == 100
    assert any("has no CREATE privilege on schema public" in line for line in log.infos), log.infos


def test_missing_privileges_are_named_before_anything_changes(store_db, backed_up, make_role):
    reader = make_role("SELECT")
    before = query(store_db, "SELECT count(*) FROM langchain_pg_embedding")[0][0]

    with pytest.raises(DatabaseError) as failure:
        restore_backup_set(reader, "public", backed_up, RestoreFlags(truncate_before_restore=True))

    assert "lacks INSERT on public.langchain_pg_collection, TRUNCATE on public.langchain_pg_collection" in (
        failure.value.message
    )
    assert "Nothing was changed" in failure.value.message
    assert query(store_db, "SELECT count(*) FROM langchain_pg_embedding")[0][0] == before


@pytest.mark.parametrize(
    ("grants", "flags", "missing"),
    [
        (("INSERT",), RestoreFlags(), "SELECT on public.langchain_pg_collection"),
        (
            ("INSERT", "TRUNCATE"),
            RestoreFlags(truncate_before_restore=True),
            "SELECT on public.langchain_pg_collection",
        ),
        (
            ("SELECT", "INSERT"),
            RestoreFlags(truncate_before_restore=True),
            "TRUNCATE on public.langchain_pg_collection",
        ),
    ],
    ids=["append, insert only", "truncate, no select", "truncate, no truncate"],
)
def test_every_privilege_a_restore_lacks_is_named_before_any_change(
    store_db, backed_up, make_role, grants, flags, missing
):
    role = make_role(*grants)
    before = query(store_db, "SELECT count(*) FROM langchain_pg_embedding")

    with pytest.raises(DatabaseError, match=f"lacks .*{missing}") as raised:
        restore_backup_set(role, "public", backed_up, flags)

    assert raised.value.error_type == ErrorType.DATABASE_ERROR
    assert query(store_db, "SELECT count(*) FROM langchain_pg_embedding") == before
