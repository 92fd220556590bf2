"""Binary sets (issue 34): PostgreSQL's binary COPY stream per table, written from one snapshot (by several sessions
joined into one valid stream), restored straight into tables of the set's types and through a stage with casts into
others, in every restore mode."""

import dataclasses
import io
import json

import pytest

from pgvector_pipeline import pgcopy
from pgvector_pipeline.contract import RestoreFlags
from pgvector_pipeline.errors import DataError
from pgvector_pipeline.names import COLLECTION_TABLE, EMBEDDING_TABLE
from pgvector_pipeline.operations.backup import BackupOptions, back_up_database
from pgvector_pipeline.operations.restore import restore_backup_set
from pgvector_pipeline.set_formats import BINARY
from pgvector_pipeline.store.codecs import NONE, Compression
from pgvector_pipeline.store.local import LocalBackupStore
from pgvector_pipeline.testing.db import execute, query
from pgvector_pipeline.testing.langchain_tables import fill_sample_store
from tests.catalog_fingerprint import contents, dress, fingerprint
from tests.helpers import RecordingLog, set_files

BINARY_PLAIN = BackupOptions(compression=Compression(NONE), set_format=BINARY)
BINARY_ZSTD = BackupOptions(set_format=BINARY)
SWAP = RestoreFlags(truncate_before_restore=True)
IN_PLACE = RestoreFlags(truncate_before_restore=True, in_place=True)


def backed_up(dsn, root, options=BINARY_ZSTD):
    result = back_up_database(dsn, "public", LocalBackupStore(root), "global", None, options)
    return result, LocalBackupStore(root).locate(timestamp=result.timestamp)


def test_a_binary_set_is_one_binary_copy_stream_per_table_named_pgcopy(store_db, backup_root):
    fill_sample_store(store_db)
    result, backup_set = backed_up(store_db, backup_root, BINARY_PLAIN)

    files = set_files(backup_set)
    assert sorted(path.name for path in files.values()) == [
        f"{COLLECTION_TABLE}_{result.timestamp}.pgcopy",
        f"{EMBEDDING_TABLE}_{result.timestamp}.pgcopy",
    ]
    data = files[EMBEDDING_TABLE].read_bytes()
    assert data.startswith(pgcopy.HEADER) and data.endswith(pgcopy.TRAILER)
    tuples = list(pgcopy.fields_of(b"".join(pgcopy.tuple_blocks(io.BytesIO(data).read, "t", 1 << 20)), "t"))
    assert len(tuples) == 200
    manifest = json.loads(result.manifest_path.read_text())
    assert manifest["format"] == "pgvector-pipeline-backup/4"
    assert manifest["set_format"] == "binary"
    assert [c["type"] for c in manifest["tables"][EMBEDDING_TABLE]["columns"]][:3] == [
        "character varying",
        "uuid",
        "vector",
    ]


def test_a_binary_set_restores_every_row_and_byte_swapped_in_place_and_appended(store_db, backup_root):
    dress(store_db)
    rows, before = contents(store_db), fingerprint(store_db)
    _, backup_set = backed_up(store_db, backup_root)
    for flags in (SWAP, IN_PLACE):
        execute(store_db, lambda cur: cur.execute(f"DELETE FROM {EMBEDDING_TABLE} WHERE cmetadata->>'page' = '3'"))
        restore_backup_set(store_db, "public", backup_set, flags, log=RecordingLog())
        assert contents(store_db) == rows
        assert fingerprint(store_db) == before
    execute(store_db, lambda cur: cur.execute(f"TRUNCATE {EMBEDDING_TABLE}, {COLLECTION_TABLE}"))
    restore_backup_set(store_db, "public", backup_set, RestoreFlags(), log=RecordingLog())
    assert contents(store_db) == rows


def test_a_parallel_export_and_load_keep_one_valid_stream(store_db, backup_root, small_export_ranges, monkeypatch):
    fill_sample_store(store_db, embeddings_per_collection=2000)
    rows = contents(store_db)
    monkeypatch.setattr("pgvector_pipeline.postgres.load.PARALLEL_LOAD_MIN_BYTES", 0)
    monkeypatch.setattr("pgvector_pipeline.postgres.parallel_load.BLOCK_BYTES", 4096)
    log = RecordingLog()
    result = back_up_database(store_db, "public", LocalBackupStore(backup_root), "global", None, BINARY_PLAIN, log=log)
    assert any("exported by 2 sessions" in line for line in log.infos)
    data = set_files(LocalBackupStore(backup_root).locate(timestamp=result.timestamp))[EMBEDDING_TABLE].read_bytes()
    assert data.count(pgcopy.SIGNATURE) == 1 and data.endswith(pgcopy.TRAILER)

    backup_set = LocalBackupStore(backup_root).locate(timestamp=result.timestamp)
    log = RecordingLog()
    restore_backup_set(store_db, "public", backup_set, dataclasses.replace(SWAP), log=log)
    assert any("by 2 sessions at once" in line for line in log.infos), log.infos
    assert contents(store_db) == rows


def test_a_binary_set_loads_into_other_types_through_casts(store_db, backup_root):
    fill_sample_store(store_db)
    rows = query(store_db, f"SELECT id, cmetadata::text, embedding::text FROM {EMBEDDING_TABLE} ORDER BY id")
    _, backup_set = backed_up(store_db, backup_root)
    execute(
        store_db,
        lambda cur: cur.execute(
            f"TRUNCATE {EMBEDDING_TABLE}, {COLLECTION_TABLE}; DROP INDEX ix_cmetadata_gin; ALTER TABLE {EMBEDDING_TABLE} "
            f"ALTER cmetadata TYPE json, ALTER embedding TYPE vector(8), ALTER id TYPE text"
        ),
    )
    log = RecordingLog()
    restore_backup_set(store_db, "public", backup_set, RestoreFlags(), log=log)
    assert (
        query(store_db, f"SELECT id, cmetadata::jsonb::text, embedding::text FROM {EMBEDDING_TABLE} ORDER BY id")
        == rows
    )


def test_a_binary_set_into_a_type_without_a_cast_is_refused_and_nothing_changes(store_db, backup_root):
    fill_sample_store(store_db)
    _, backup_set = backed_up(store_db, backup_root)
    execute(
        store_db,
        lambda cur: cur.execute(
            f"TRUNCATE {EMBEDDING_TABLE}, {COLLECTION_TABLE}; DROP INDEX ix_cmetadata_gin; "
            f"ALTER TABLE {EMBEDDING_TABLE} ALTER cmetadata TYPE point USING NULL"
        ),
    )
    with pytest.raises(DataError) as refused:
        restore_backup_set(store_db, "public", backup_set, RestoreFlags(), log=RecordingLog())
    assert "cmetadata jsonb -> point" in refused.value.message
    assert query(store_db, f"SELECT count(*) FROM {EMBEDDING_TABLE}") == [(0,)]


def test_a_damaged_binary_file_is_refused(store_db, backup_root):
    fill_sample_store(store_db)
    _, backup_set = backed_up(store_db, backup_root, BINARY_PLAIN)
    path = set_files(backup_set)[COLLECTION_TABLE]
    path.write_bytes(b"not a copy stream" + path.read_bytes()[17:])
    with pytest.raises(DataError, match="binary COPY signature"):
        restore_backup_set(
            store_db,
            "public",
            LocalBackupStore(backup_root).locate(timestamp=backup_set.timestamp),
            SWAP,
            log=RecordingLog(),
        )


def test_the_set_checks_read_binary_vectors_and_find_a_bad_one(store_db, backup_root):
    from pgvector_pipeline.operations.set_checks import check_files_and_embeddings
    from tests.helpers import rewrite_csv_keeping_manifest_consistent

    fill_sample_store(store_db)
    _, backup_set = backed_up(store_db, backup_root, BINARY_PLAIN)
    files, vectors = check_files_and_embeddings(backup_set)
    assert (files.passed, vectors.passed) == (True, True), vectors.description
    assert vectors.description == "All 200 vectors load as pgvector reads them, and have one dimension per collection."
    assert vectors.metadata["dimensions"] == "8"

    def a_nan_in_the_first_vector(data: bytes) -> bytes:
        # The first tuple's embedding field: header, field count, then id and collection_id before it.
        at = len(pgcopy.HEADER) + 2
        for _ in range(2):
            at += 4 + int.from_bytes(data[at : at + 4], "big")
        first_number = at + 4 + 4  # the field's length, then its int16 dimensions and int16 unused
        return data[:first_number] + b"\x7f\xc0\x00\x00" + data[first_number + 4 :]

    rewrite_csv_keeping_manifest_consistent(backup_set, EMBEDDING_TABLE, a_nan_in_the_first_vector)
    files, vectors = check_files_and_embeddings(backup_set)
    assert files.passed and not vectors.passed
    assert f"{EMBEDDING_TABLE}_{backup_set.timestamp}.pgcopy row 1, embedding: NaN" in vectors.description


def test_a_zstd_binary_set_whose_first_block_is_larger_than_64_kib_restores(store_db, backup_root):
    """Vectors hardly compress: zstd stores the stream's first 128 KiB as one block, which a 64 KiB prefix of the file
    does not hold, so the header check decoded nothing and refused every binary zstd set of more than a few rows."""
    fill_sample_store(store_db, embeddings_per_collection=100, dimension=384)
    rows = contents(store_db)
    _, backup_set = backed_up(store_db, backup_root)
    assert set_files(backup_set)[EMBEDDING_TABLE].stat().st_size > 128 << 10
    execute(store_db, lambda cur: cur.execute(f"DELETE FROM {EMBEDDING_TABLE} WHERE cmetadata->>'page' = '3'"))

    restore_backup_set(store_db, "public", backup_set, SWAP, log=RecordingLog())

    assert contents(store_db) == rows
