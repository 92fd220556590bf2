"""The backup core against a real server: bytes, checksums, snapshot consistency, failures."""

import hashlib
import io
import json

import pytest

from pgvector_pipeline.errors import DatabaseError, InvalidParams, ResourceNotFound
from pgvector_pipeline.names import LANGCHAIN_COMMUNITY, LANGCHAIN_POSTGRES
from pgvector_pipeline.operations.backup import BackupOptions, back_up_database
from pgvector_pipeline.postgres.connection import APPLICATION_NAME
from pgvector_pipeline.store.layout import GLOBAL_TASK_KEY, LOG_FILE_NAME
from pgvector_pipeline.store.local import LocalBackupStore
from pgvector_pipeline.testing.admin import terminate_backends
from pgvector_pipeline.testing.db import (
    execute,
    insert_collection,
    insert_embedding,
    query,
)
from pgvector_pipeline.testing.langchain_tables import create_langchain_tables, insert_sample_store
from tests.faulty_stores import FaultyStore
from tests.helpers import csv_of, read_csv_rows
from tests.stores import TRICKY_DOCUMENTS, TRICKY_METADATA, make_store

TS = "20261123_121700"


def csv_bytes_from_copy(dsn: str, table: str, columns: list[str]) -> bytes:
    sink = io.BytesIO()

    def run(cur):
        cur.copy_expert(f"COPY (SELECT {', '.join(columns)} FROM {table}) TO STDOUT WITH (FORMAT csv, HEADER)", sink)

    execute(dsn, run)
    return sink.getvalue()


def test_round_trip_of_tricky_data_matches_copy_and_manifest(empty_db, backup_root):
    store_db = empty_db
    make_store(store_db, LANGCHAIN_POSTGRES)

    result = back_up_database(store_db, "public", LocalBackupStore(backup_root), GLOBAL_TASK_KEY, TS)

    manifest = json.loads(result.manifest_path.read_text())
    for table in result.tables:
        data = csv_of(table.path)
        columns = [c["name"] for c in manifest["tables"][table.table]["columns"]]
        assert data == csv_bytes_from_copy(store_db, table.table, columns)
        assert hashlib.sha256(data).hexdigest() == manifest["tables"][table.table]["sha256"] == table.sha256
        assert len(data) == manifest["tables"][table.table]["bytes"]
    rows = read_csv_rows(result.table("langchain_pg_embedding").path)
    by_id = {row["id"]: row for row in rows}
    for i, document in enumerate(TRICKY_DOCUMENTS):
        assert by_id[f"e{i}"]["document"] == ("" if document is None else document)
        assert json.loads(by_id[f"e{i}"]["cmetadata"]) == {**TRICKY_METADATA, "i": i}
    raw = csv_of(result.table("langchain_pg_embedding").path)
    assert b"line two\r\nline three" in raw  # CRLF inside a document survives byte for byte
    assert b'"",' in raw and b"\ne5," in raw  # '' is quoted, NULL is an empty unquoted field
    assert manifest["embedding_dimensions"] == {"3": 6, "5": 1, "null": 1}
    assert manifest["tables"]["langchain_pg_embedding"]["rows"] == 8
    assert manifest["source"]["langchain_layout"] == "langchain_postgres"
    assert "ix_cmetadata_gin" in manifest["tables"]["langchain_pg_embedding"]["indexes"][0]


def test_fixed_dimension_and_community_layout(empty_db, backup_root):
    def setup(cur):
        create_langchain_tables(cur, "public", LANGCHAIN_COMMUNITY, dimension=3)
        cur.execute(
            "INSERT INTO langchain_pg_collection (name, cmetadata, uuid) VALUES ('c', '{\"a\": 1}', gen_random_uuid())"
        )
        cur.execute(
            "INSERT INTO langchain_pg_embedding (collection_id, embedding, document, cmetadata, custom_id, uuid) "
            "SELECT uuid, '[1,2,3]', 'doc', '{\"b\": 2}', 'custom-1', gen_random_uuid() FROM langchain_pg_collection"
        )

    execute(empty_db, setup)
    result = back_up_database(empty_db, "public", LocalBackupStore(backup_root), GLOBAL_TASK_KEY, TS)

    manifest = json.loads(result.manifest_path.read_text())
    assert manifest["source"]["langchain_layout"] == "langchain_community"
    assert manifest["embedding_dimensions"] == {"3": 1}
    header = csv_of(result.table("langchain_pg_embedding").path).splitlines()[0]
    assert header == b"collection_id,embedding,document,cmetadata,custom_id,uuid"
    assert "vector(3)" in manifest["tables"]["langchain_pg_embedding"]["create_table"]


def test_snapshot_is_consistent_while_a_writer_inserts(store_db, backup_root):
    execute(
        store_db,
        lambda cur: insert_sample_store(cur, "public", collections=2, embeddings_per_collection=200, dimension=8),
    )

    def write_collection_with_embeddings(n: int) -> None:
        def work(cur):
            collection = insert_collection(cur, f"written_during_backup_{n}")
            for i in range(5):
                insert_embedding(cur, f"late-{n}-{i}", collection, "[1,1,1,1,1,1,1,1]", "late", {})

        execute(store_db, work)

    class WriterBetweenTables:
        """Commits new rows exactly between the collection export and the embedding export."""

        writes = 0

        def info(self, msg: str) -> None:
            if msg.startswith("Exporting langchain_pg_embedding"):
                for _ in range(3):
                    self.writes += 1
                    write_collection_with_embeddings(self.writes)

        def warning(self, msg: str) -> None:
            pass

    log = WriterBetweenTables()
    result = back_up_database(store_db, "public", LocalBackupStore(backup_root), GLOBAL_TASK_KEY, TS, log=log)

    assert log.writes == 3
    collections = read_csv_rows(result.table("langchain_pg_collection").path)
    embeddings = read_csv_rows(result.table("langchain_pg_embedding").path)
    collection_ids = {row["uuid"] for row in collections}
    assert all(row["collection_id"] in collection_ids for row in embeddings)
    assert len(collections) == result.table("langchain_pg_collection").rows == 2
    assert len(embeddings) == result.table("langchain_pg_embedding").rows == 400
    assert query(store_db, "SELECT count(*) FROM langchain_pg_embedding")[0][0] == 415


@pytest.mark.parametrize("truncate_after_backup", [False, True])
def test_backend_terminated_mid_copy_leaves_no_set_and_no_change(
    store_db, admin_dsn, backup_root, truncate_after_backup
):
    execute(
        store_db,
        lambda cur: insert_sample_store(cur, "public", collections=2, embeddings_per_collection=500, dimension=16),
    )
    before = query(store_db, "SELECT id, document FROM langchain_pg_embedding ORDER BY id")

    def kill_at_line_51(table: str, writes: int) -> None:
        """Kills the exporting backend (pg_terminate_backend) once 50 CSV lines of a table arrived."""
        if writes == 51:
            assert terminate_backends(admin_dsn, APPLICATION_NAME) >= 1

    store = FaultyStore(backup_root, on_write=kill_at_line_51)

    with pytest.raises(DatabaseError) as failure:
        back_up_database(
            store_db, "public", store, GLOBAL_TASK_KEY, TS, BackupOptions(truncate_after_backup=truncate_after_backup)
        )

    assert failure.value.can_retry
    assert "exporting langchain_pg_embedding" in failure.value.message
    directory = backup_root / "vector_bak"
    assert sorted(p.name for p in directory.iterdir()) == [LOG_FILE_NAME]
    assert "FAILED" in (directory / LOG_FILE_NAME).read_text()
    assert query(store_db, "SELECT id, document FROM langchain_pg_embedding ORDER BY id") == before


def test_truncate_after_backup_empties_only_embeddings(store_db, backup_root):
    execute(
        store_db,
        lambda cur: insert_sample_store(cur, "public", collections=2, embeddings_per_collection=10, dimension=4),
    )

    result = back_up_database(
        store_db,
        "public",
        LocalBackupStore(backup_root),
        GLOBAL_TASK_KEY,
        TS,
        BackupOptions(truncate_after_backup=True),
    )

    assert [(s.table, s.rows_before, s.rows_after) for s in result.truncated] == [("langchain_pg_embedding", 20, 0)]
    assert query(store_db, "SELECT count(*) FROM langchain_pg_embedding")[0][0] == 0
    assert query(store_db, "SELECT count(*) FROM langchain_pg_collection")[0][0] == 2
    assert result.table("langchain_pg_embedding").rows == 20
    assert "truncated langchain_pg_embedding: 20 -> 0 rows" in result.log_path.read_text()


def test_task_directory_rules(store_db, backup_root):
    with pytest.raises(ResourceNotFound, match="create_task_dir"):
        back_up_database(store_db, "public", LocalBackupStore(backup_root), "task_1", TS)
    assert not (backup_root / "task_1").exists()

    result = back_up_database(
        store_db, "public", LocalBackupStore(backup_root), "task_1", TS, BackupOptions(create_task_dir=True)
    )
    assert result.directory == backup_root / "task_1" / "vector_bak"

    with pytest.raises(InvalidParams, match="already exists"):
        back_up_database(store_db, "public", LocalBackupStore(backup_root), "task_1", TS)
    for bad in ["../etc", "task-1", "a|b", "a,b", "", "tâche"]:
        with pytest.raises(InvalidParams, match="not valid"):
            back_up_database(store_db, "public", LocalBackupStore(backup_root), bad or "x y", TS)
    with pytest.raises(InvalidParams, match="Timestamp"):
        back_up_database(store_db, "public", LocalBackupStore(backup_root), "task_1", "20261399_000000")


def test_missing_tables_and_missing_extension_are_reported(empty_db, backup_root):
    with pytest.raises(ResourceNotFound, match="pgvector extension is not installed"):
        back_up_database(empty_db, "public", LocalBackupStore(backup_root), GLOBAL_TASK_KEY, TS)
    execute(empty_db, lambda cur: cur.execute("CREATE EXTENSION vector"))
    with pytest.raises(ResourceNotFound, match="langchain_pg_collection does not exist"):
        back_up_database(empty_db, "public", LocalBackupStore(backup_root), GLOBAL_TASK_KEY, TS)
    assert sorted(p.name for p in (backup_root / "vector_bak").iterdir()) == [LOG_FILE_NAME]


def test_unreachable_database_is_retryable_and_never_shows_the_password(backup_root):
    dsn = "postgresql://writer:s3cret-pw@127.0.0.1:1/vectors"
    with pytest.raises(DatabaseError) as failure:
        back_up_database(dsn, "public", LocalBackupStore(backup_root), GLOBAL_TASK_KEY, TS)
    assert failure.value.can_retry
    assert "Cannot connect" in failure.value.message
    log = (backup_root / "vector_bak" / LOG_FILE_NAME).read_text()
    assert "s3cret-pw" not in failure.value.message and "s3cret-pw" not in log
    assert "password=***" in log


def test_log_is_appended_and_names_each_manifest(store_db, backup_root):
    directory = backup_root / "vector_bak"
    directory.mkdir()
    (directory / LOG_FILE_NAME).write_text("=== Vector Table Backup Log ===\nwritten by the old system\n")

    back_up_database(store_db, "public", LocalBackupStore(backup_root), GLOBAL_TASK_KEY, "20261123_000001")
    back_up_database(store_db, "public", LocalBackupStore(backup_root), GLOBAL_TASK_KEY, "20261123_000002")

    log = (directory / LOG_FILE_NAME).read_text()
    assert log.startswith("=== Vector Table Backup Log ===\nwritten by the old system\n")
    assert log.count(" OK (task global") == 2
    assert "    manifest: vector_backup_20261123_000001.json\n" in log
    assert "    manifest: vector_backup_20261123_000002.json\n" in log
