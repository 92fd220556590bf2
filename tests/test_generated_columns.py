"""Tables with generated columns back up without them and restore with the server computing them again (from a CSV
set and from a binary one)."""

import pytest

from pgvector_pipeline.contract import RestoreFlags
from pgvector_pipeline.errors import DataError
from pgvector_pipeline.operations.backup import BackupOptions, back_up_database
from pgvector_pipeline.operations.restore import restore_backup_set
from pgvector_pipeline.set_formats import BINARY, CSV
from pgvector_pipeline.store.layout import GLOBAL_TASK_KEY
from pgvector_pipeline.store.local import LocalBackupStore, locate_backup_set
from pgvector_pipeline.testing.db import execute, query
from pgvector_pipeline.testing.langchain_tables import insert_sample_store
from tests.helpers import RecordingLog

TS = "20261125_130000"
ROWS = "SELECT id, document, doc_length FROM langchain_pg_embedding ORDER BY id"


@pytest.fixture
def store(store_db):
    def setup(cur):
        insert_sample_store(cur, "public", collections=1, embeddings_per_collection=20, dimension=4)
        cur.execute(
            "ALTER TABLE langchain_pg_embedding ADD COLUMN doc_length integer "
            "GENERATED ALWAYS AS (length(document)) STORED"
        )

    execute(store_db, setup)
    return store_db


@pytest.mark.parametrize("set_format", [CSV, BINARY])
def test_a_table_with_a_generated_column_restores(store, backup_root, set_format):
    before = query(store, ROWS)
    log = RecordingLog()
    options = BackupOptions(set_format=set_format)
    result = back_up_database(store, "public", LocalBackupStore(backup_root), GLOBAL_TASK_KEY, TS, options, log=log)
    assert "doc_length" not in [c.name for c in result.table("langchain_pg_embedding").columns]
    assert any("generated column" in line for line in log.warnings), log.warnings

    restore_backup_set(
        store, "public", locate_backup_set(backup_root, timestamp=TS), RestoreFlags(truncate_before_restore=True)
    )

    assert query(store, ROWS) == before


def test_create_missing_refuses_a_generated_column_and_says_so(store, backup_root, empty_db):
    back_up_database(store, "public", LocalBackupStore(backup_root), GLOBAL_TASK_KEY, TS)

    with pytest.raises(DataError) as failure:
        restore_backup_set(
            empty_db, "public", locate_backup_set(backup_root, timestamp=TS), RestoreFlags(create_missing=True)
        )

    assert "'doc_length' of the set's table is a generated column" in failure.value.message
    assert "damaged" not in failure.value.message
