"""Appending restores: checked by the rows COPY loaded, so other sessions' writes do not fail them; one that would
duplicate what the target holds says what to do instead (issue 24)."""

import threading

import pytest

from pgvector_pipeline.contract import PLAIN_RESTORE, RestoreFlags
from pgvector_pipeline.entry_points.cli import build_parser
from pgvector_pipeline.errors import DataError, InvalidParams
from pgvector_pipeline.names import EMBEDDING_TABLE
from pgvector_pipeline.operations.backup import back_up_database
from pgvector_pipeline.operations.restore import restore_backup_set
from pgvector_pipeline.store.layout import GLOBAL_TASK_KEY
from pgvector_pipeline.store.local import LocalBackupStore, locate_backup_set
from pgvector_pipeline.testing.db import app_connection, execute, query
from pgvector_pipeline.testing.langchain_tables import fill_sample_store

TS = "20261125_120000"
# What to do instead, as a Dagster run (and a Python caller) reads it; the command line names its flags.
APPEND_ADVICE = (
    "A restore without truncate_before_restore adds the set's rows to the live ones. To roll the tables back to the "
    "set, restore with truncate_before_restore; to replace only some collections, restore them with collections and "
    "replace_collections; to keep both, restore them under new names with rename."
)
APPEND_ADVICE_IN_SHELL = (
    "A restore without --truncate adds the set's rows to the live ones. To roll the tables back to the set, restore "
    "with --truncate; to replace only some collections, restore them with --collections NAME and "
    "--replace-collections; to keep both, restore them under new names with --rename OLD=NEW."
)


def test_an_append_restore_succeeds_while_an_app_writes(store_db, backup_root):
    fill_sample_store(store_db, collections=1, embeddings_per_collection=3000, dimension=16)
    back_up_database(store_db, "public", LocalBackupStore(backup_root), GLOBAL_TASK_KEY, TS)
    execute(store_db, lambda cur: cur.execute("DELETE FROM langchain_pg_embedding"))
    stop, written = threading.Event(), []

    def app_writes():
        conn = app_connection(store_db, application_name="rag_app")
        conn.autocommit = True
        with conn.cursor() as cur:
            while not stop.is_set():
                cur.execute(
                    "INSERT INTO langchain_pg_embedding (id, collection_id, document) "
                    "SELECT 'app-' || %s, uuid, 'new' FROM langchain_pg_collection",
                    (len(written),),
                )
                written.append(1)
        conn.close()

    writer = threading.Thread(target=app_writes, daemon=True)
    writer.start()
    try:
        result = restore_backup_set(
            store_db, "public", locate_backup_set(backup_root, timestamp=TS), tables=[EMBEDDING_TABLE]
        )
    finally:
        stop.set()
        writer.join()

    assert result.tables[0].rows_restored == 3000
    assert written, "the app wrote nothing during the restore"
    assert query(store_db, "SELECT count(*) FROM langchain_pg_embedding WHERE id NOT LIKE 'app-%%'")[0][0] == 3000
    assert query(store_db, "SELECT count(*) FROM langchain_pg_embedding WHERE id LIKE 'app-%%'")[0][0] == len(written)


@pytest.mark.parametrize("flags", [PLAIN_RESTORE, RestoreFlags(verify_only=True)], ids=["restore", "verify_only"])
def test_restoring_a_set_into_the_store_it_came_from_says_what_to_do_before_loading(store_db, backup_root, flags):
    fill_sample_store(store_db, collections=2, embeddings_per_collection=10, dimension=4)
    back_up_database(store_db, "public", LocalBackupStore(backup_root), GLOBAL_TASK_KEY, TS)
    rows = query(store_db, "SELECT t::text FROM langchain_pg_embedding t ORDER BY 1")

    with pytest.raises(InvalidParams) as refused:
        restore_backup_set(store_db, "public", locate_backup_set(backup_root, timestamp=TS), flags)

    assert refused.value.message == (
        "The target already holds the set's collections 'sample_collection_0', 'sample_collection_1' "
        "(langchain_pg_collection): restoring them again would duplicate them. Nothing was changed. " + APPEND_ADVICE
    )
    shell = build_parser().parse_args(["restore", "--timestamp", TS]).spelling
    assert refused.value.render(shell).endswith("Nothing was changed. " + APPEND_ADVICE_IN_SHELL)
    assert query(store_db, "SELECT t::text FROM langchain_pg_embedding t ORDER BY 1") == rows


def test_embeddings_appended_over_their_own_ids_fail_saying_what_to_do(store_db, backup_root):
    fill_sample_store(store_db, collections=1, embeddings_per_collection=10, dimension=4)
    back_up_database(store_db, "public", LocalBackupStore(backup_root), GLOBAL_TASK_KEY, TS)

    with pytest.raises(DataError) as failed:
        restore_backup_set(store_db, "public", locate_backup_set(backup_root, timestamp=TS), tables=[EMBEDDING_TABLE])

    assert failed.value.message.startswith(
        "PostgreSQL rejected the data while restoring langchain_pg_embedding: duplicate key value violates unique "
        'constraint "langchain_pg_embedding_pkey"'
    )
    assert failed.value.message.endswith("are as they were. " + APPEND_ADVICE)


def test_an_append_of_collections_the_target_holds_is_refused_in_a_schema_with_capitals(pg_server, backup_root):
    """The check looked the table up as unquoted text, so schema "Docs" read as docs: it found no table, and the
    append ran into the first duplicate key instead of the plain refusal."""
    from pgvector_pipeline.errors import InvalidParams
    from pgvector_pipeline.operations.backup import back_up_database
    from pgvector_pipeline.operations.restore import restore_backup_set
    from pgvector_pipeline.store.local import LocalBackupStore
    from pgvector_pipeline.testing.embedded import ensure_database
    from pgvector_pipeline.testing.langchain_tables import create_langchain_tables, insert_sample_store

    dsn = ensure_database(pg_server, "capital_schema")
    execute(dsn, lambda cur: create_langchain_tables(cur, "Docs"))
    execute(dsn, lambda cur: insert_sample_store(cur, "Docs", collections=1, embeddings_per_collection=5, dimension=4))
    result = back_up_database(dsn, "Docs", LocalBackupStore(backup_root), "global", None)
    backup_set = LocalBackupStore(backup_root).locate(timestamp=result.timestamp)

    with pytest.raises(InvalidParams, match="The target already holds the set's collections 'sample_collection_0'"):
        restore_backup_set(dsn, "Docs", backup_set)
