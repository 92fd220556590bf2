"""Appending restores: checked by the rows COPY loaded, so other sessions' writes do not fail them."""

import threading

from pgvector_pipeline.backup import back_up_database
from pgvector_pipeline.names import EMBEDDING_TABLE
from pgvector_pipeline.postgres.connection import connect
from pgvector_pipeline.restore import restore_backup_set
from pgvector_pipeline.store.layout import GLOBAL_TASK_KEY
from pgvector_pipeline.store.listing import locate_backup_set
from pgvector_pipeline.store.local import LocalBackupStore
from pgvector_pipeline.testing.db import execute, query
from pgvector_pipeline.testing.langchain_tables import fill_sample_store

TS = "20261125_120000"


def test_an_append_restore_succeeds_while_an_app_writes(store_db, backup_root):
    fill_sample_store(store_db, collections=1, embeddings_per_collection=3000, dimension=16)
    back_up_database(store_db, "public", LocalBackupStore(backup_root), GLOBAL_TASK_KEY, TS)
    execute(store_db, lambda cur: cur.execute("DELETE FROM langchain_pg_embedding"))
    stop, written = threading.Event(), []

    def app_writes():
        conn = connect(store_db, application_name="rag_app")
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
