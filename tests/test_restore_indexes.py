"""Restores in place (in_place) into emptied tables drop their rebuildable indexes, load, and build them again in
the same transaction; any failure leaves the original indexes and rows. Progress lines while it works. (A swapped
restore, the default, builds the indexes on its new tables: tests/test_swap_restore.py.)"""

import contextlib
import threading
import time
from collections.abc import Iterator

import psycopg2
import pytest

from pgvector_pipeline.contract import RestoreFlags
from pgvector_pipeline.errors import DatabaseError, DataError
from pgvector_pipeline.operations.backup import back_up_database
from pgvector_pipeline.operations.restore import restore_backup_set
from pgvector_pipeline.postgres.connection import APPLICATION_NAME
from pgvector_pipeline.postgres.progress import ProgressMonitor
from pgvector_pipeline.store.layout import GLOBAL_TASK_KEY
from pgvector_pipeline.store.local import LocalBackupStore, locate_backup_set
from pgvector_pipeline.testing.admin import terminate_backends
from pgvector_pipeline.testing.db import execute, query
from pgvector_pipeline.testing.langchain_tables import insert_sample_store
from tests.helpers import RecordingLog, set_directory

TS = "20261124_101500"
IN_PLACE = RestoreFlags(truncate_before_restore=True, in_place=True)
DIMENSION = 16
# What users add: a cosine HNSW index on a dimension-less column (by expression), and a btree on the document.
USER_INDEXES = [
    "CREATE INDEX ix_embedding_hnsw ON langchain_pg_embedding USING hnsw "
    f"((embedding::vector({DIMENSION})) vector_cosine_ops)",
    "CREATE INDEX ix_document ON langchain_pg_embedding (document)",
]


def indexes(dsn: str) -> list[tuple[str, str]]:
    return query(
        dsn,
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename LIKE 'langchain_pg_%' ORDER BY indexname",
    )


@contextlib.contextmanager
def snapshot_held(dsn: str) -> Iterator[None]:
    """Another session holds a snapshot (and no table lock) meanwhile, so deleted rows stay visible to it."""
    reader = psycopg2.connect(dsn)
    try:
        reader.set_session(isolation_level="REPEATABLE READ")
        reader.cursor().execute("SELECT 1")
        yield
    finally:
        reader.close()


def fingerprint(dsn: str) -> tuple:
    return query(dsn, "SELECT count(*), md5(string_agg(t::text, ',' ORDER BY id)) FROM langchain_pg_embedding t")[0]


@pytest.fixture
def indexed_store(store_db, backup_root):
    execute(
        store_db,
        lambda cur: insert_sample_store(
            cur, "public", collections=2, embeddings_per_collection=300, dimension=DIMENSION
        ),
    )
    for statement in USER_INDEXES:
        execute(store_db, lambda cur, statement=statement: cur.execute(statement))
    back_up_database(store_db, "public", LocalBackupStore(backup_root), GLOBAL_TASK_KEY, TS)
    return store_db, locate_backup_set(backup_root, timestamp=TS)


def test_restore_after_truncate_rebuilds_the_same_indexes(indexed_store):
    dsn, backup_set = indexed_store
    before_indexes, before_rows = indexes(dsn), fingerprint(dsn)
    execute(dsn, lambda cur: cur.execute("DELETE FROM langchain_pg_embedding WHERE id LIKE '%-1%'"))
    log = RecordingLog()

    restore_backup_set(dsn, "public", backup_set, IN_PLACE, log=log)

    assert indexes(dsn) == before_indexes
    assert fingerprint(dsn) == before_rows
    [dropped] = [line for line in log.infos if line.startswith("Dropped ")]
    # The GIN index of LangChain and both user indexes; the primary key stays (foreign keys need it).
    assert dropped.startswith(
        "Dropped 3 indexes of the emptied tables (ix_cmetadata_gin, ix_document, ix_embedding_hnsw)"
    )
    built = [line for line in log.infos if line.startswith("Building index (maintenance_work_mem ")]
    assert len(built) == 3 and any("USING hnsw" in line for line in built)
    # The rebuilt HNSW index answers a nearest-neighbour query through an index scan.
    plan = query(
        dsn,
        "SET enable_seqscan = off; EXPLAIN SELECT id FROM langchain_pg_embedding "
        f"ORDER BY embedding::vector({DIMENSION}) <=> (SELECT embedding FROM langchain_pg_embedding LIMIT 1) LIMIT 5",
    )
    assert any("ix_embedding_hnsw" in row[0] for row in plan)


@pytest.mark.parametrize(
    ("flags", "doing"),
    [
        (IN_PLACE, "building the indexes"),
        (RestoreFlags(truncate_before_restore=True), "building the new tables' indexes"),
    ],
    ids=["in place", "swapped"],
)
def test_a_failing_index_build_leaves_the_original_indexes_and_rows(indexed_store, flags, doing):
    dsn, backup_set = indexed_store
    # An index that cannot be built over the set's rows: one of them has a 5-character document.
    execute(
        dsn,
        lambda cur: cur.execute(
            "UPDATE langchain_pg_embedding SET document = 'short' WHERE id = (SELECT min(id) FROM langchain_pg_embedding)"
        ),
    )
    back_up_database(
        dsn, "public", LocalBackupStore(set_directory(backup_set).parent), GLOBAL_TASK_KEY, "20261124_101501"
    )
    bad_set = locate_backup_set(set_directory(backup_set).parent, timestamp="20261124_101501")
    # Not a DELETE: CREATE INDEX also indexes a deleted row that a snapshot elsewhere may still see (an autovacuum
    # ANALYZE did, in CI; here a reader holds one) and would fail on it. TRUNCATE leaves no such row.
    with snapshot_held(dsn):
        execute(
            dsn,
            lambda cur: cur.execute(
                "CREATE TEMP TABLE kept AS SELECT * FROM langchain_pg_embedding WHERE document <> 'short';"
                "TRUNCATE langchain_pg_embedding; INSERT INTO langchain_pg_embedding SELECT * FROM kept"
            ),
        )
        execute(
            dsn,
            lambda cur: cur.execute("CREATE INDEX ix_fragile ON langchain_pg_embedding ((1 / (length(document) - 5)))"),
        )
    before_indexes, before_rows = indexes(dsn), fingerprint(dsn)

    with pytest.raises(DataError) as failed:
        restore_backup_set(dsn, "public", bad_set, flags)

    assert failed.value.message == (
        f"PostgreSQL rejected the data while {doing}: division by zero. The restore was rolled back: "
        "the target tables, their rows and indexes are as they were."
    )
    assert indexes(dsn) == before_indexes
    assert fingerprint(dsn) == before_rows
    assert query(dsn, "SELECT count(*) FROM pg_class WHERE relname LIKE 'pgvector_%%'") == [(0,)]


def test_a_failing_load_leaves_the_original_indexes_and_rows(indexed_store):
    dsn, backup_set = indexed_store
    # The set's embeddings point at collections that are gone: the COPY fails on the foreign key.
    execute(
        dsn,
        lambda cur: (
            cur.execute("DELETE FROM langchain_pg_collection"),
            insert_sample_store(cur, "public", collections=1, embeddings_per_collection=20, dimension=DIMENSION),
        ),
    )
    before_indexes, before_rows = indexes(dsn), fingerprint(dsn)

    with pytest.raises((DataError, DatabaseError), match="foreign key"):
        restore_backup_set(dsn, "public", backup_set, IN_PLACE, tables=["langchain_pg_embedding"])

    assert indexes(dsn) == before_indexes
    assert fingerprint(dsn) == before_rows


def test_progress_lines_name_rows_bytes_and_share(store_db):
    worker = psycopg2.connect(store_db)
    lines: list[str] = []

    class SlowCsv:
        """1,000 rows of a CSV, a hundred at a time, slowly enough for several progress lines."""

        def __init__(self):
            rows = [f'doc-{i},,"[1,2,3]",text {i},{{}}\n' for i in range(1000)]
            self.chunks = [b"id,collection_id,embedding,document,cmetadata\n"] + [
                "".join(rows[i : i + 100]).encode() for i in range(0, 1000, 100)
            ]

        def read(self, size=-1):
            time.sleep(0.3)
            return self.chunks.pop(0) if self.chunks else b""

    try:
        with (
            worker.cursor() as cur,
            ProgressMonitor(
                store_db,
                worker.get_backend_pid(),
                lines.append,
                {"langchain_pg_embedding": (1000, 52_000)},
                interval_s=0.5,
            ),
        ):
            cur.copy_expert(
                "COPY langchain_pg_embedding (id, collection_id, embedding, document, cmetadata) FROM STDIN (FORMAT csv, HEADER)",
                SlowCsv(),
                size=1 << 16,
            )
        worker.rollback()
    finally:
        worker.close()

    copy_lines = [line for line in lines if line.startswith("COPY langchain_pg_embedding: ")]
    assert len(copy_lines) >= 3, lines
    assert any(" of 1,000 rows (" in line and " % )" not in line and "of 50.8 KB." in line for line in copy_lines), (
        copy_lines
    )
    assert not threading.enumerate()[1:] or all(not t.name.startswith("progress-") for t in threading.enumerate())


def test_a_connection_lost_during_the_index_builds_leaves_the_original_indexes_and_rows(indexed_store, admin_dsn):
    dsn, backup_set = indexed_store
    before_indexes, before_rows = indexes(dsn), fingerprint(dsn)

    class KillAtIndexBuild(RecordingLog):
        def info(self, msg: str) -> None:
            super().info(msg)
            if msg.startswith("Building index"):
                # The server process of the restore dies between the load and the index build.
                assert terminate_backends(admin_dsn, APPLICATION_NAME) == 1

    with pytest.raises(DatabaseError) as lost:
        restore_backup_set(dsn, "public", backup_set, IN_PLACE, log=KillAtIndexBuild())

    assert lost.value.can_retry is True and "building the indexes" in lost.value.message
    assert indexes(dsn) == before_indexes
    assert fingerprint(dsn) == before_rows


def test_progress_lines_name_an_index_built_inside_the_transaction(store_db):
    # Another session cannot see an index the restore's transaction is building (its oid shows as "-"): the line
    # names it from the statement.
    worker = psycopg2.connect(store_db)
    lines: list[str] = []
    try:
        with worker.cursor() as cur:
            cur.execute(
                "CREATE TABLE fresh (id int, embedding vector(16)); INSERT INTO fresh SELECT i, "
                "array_fill(random()::real, ARRAY[16])::vector FROM generate_series(1, 60000) i"
            )
            with ProgressMonitor(store_db, worker.get_backend_pid(), lines.append, interval_s=0.2):
                cur.execute("CREATE INDEX ix_fresh_hnsw ON fresh USING hnsw (embedding vector_l2_ops) WITH (m = 16)")
        worker.rollback()
    finally:
        worker.close()

    index_lines = [line for line in lines if line.startswith("Index ")]
    assert index_lines, lines
    assert all(line.startswith("Index ix_fresh_hnsw: building index") for line in index_lines), index_lines
