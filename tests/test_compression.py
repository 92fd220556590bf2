"""Compressed sets: what is stored, what the manifest records, exact round trips, and damage caught."""

import gzip
import hashlib
import json
from pathlib import Path

import pytest
import zstandard

from pgvector_pipeline.contract import RestoreFlags
from pgvector_pipeline.errors import DataError, InvalidParams
from pgvector_pipeline.names import COLLECTION_TABLE, EMBEDDING_TABLE, LANGCHAIN_POSTGRES
from pgvector_pipeline.operations.backup import BackupOptions, back_up_database
from pgvector_pipeline.operations.restore import restore_backup_set
from pgvector_pipeline.store.codecs import GZIP, NONE, ZSTD, Compression
from pgvector_pipeline.store.local import LocalBackupStore, locate_backup_set
from pgvector_pipeline.testing.db import execute, query
from pgvector_pipeline.testing.langchain_tables import insert_sample_store
from tests.helpers import flip_a_digit
from tests.stores import make_store

TS = "20261201_101500"
DECOMPRESS = {ZSTD: lambda data: zstandard.ZstdDecompressor().decompressobj().decompress(data), GZIP: gzip.decompress}


def contents(dsn: str) -> dict[str, list[str]]:
    return {
        table: [row[0] for row in query(dsn, f"SELECT t::text FROM {table} t ORDER BY t::text")]
        for table in (COLLECTION_TABLE, EMBEDDING_TABLE)
    }


def back_up(dsn: str, root: Path, compression: Compression, timestamp: str = TS):
    options = BackupOptions(compression=compression)
    return back_up_database(dsn, "public", LocalBackupStore(root), "global", timestamp, options)


@pytest.mark.parametrize("codec", [ZSTD, GZIP])
def test_a_compressed_set_stores_the_csv_and_records_both_digests(store_db, backup_root, codec):
    execute(store_db, lambda cur: insert_sample_store(cur, "public", embeddings_per_collection=300, dimension=64))
    compressed = back_up(store_db, backup_root, Compression(codec))
    plain = back_up(store_db, backup_root, Compression(NONE), "20261201_101501")
    manifest = json.loads(compressed.manifest_path.read_text())
    assert manifest["format"] == "pgvector-pipeline-backup/4"
    for table in (COLLECTION_TABLE, EMBEDDING_TABLE):
        stored = compressed.table(table).path.read_bytes()
        csv = plain.table(table).path.read_bytes()
        entry = manifest["tables"][table]
        suffix = ".csv.zst" if codec == ZSTD else ".csv.gz"
        assert compressed.table(table).path.name == f"{table}_{TS}{suffix}" == entry["file"]
        # The CSV inside is byte for byte what the plain set holds.
        assert DECOMPRESS[codec](stored) == csv
        assert (entry["codec"], entry["bytes"], entry["sha256"]) == (codec, len(csv), hashlib.sha256(csv).hexdigest())
        assert (entry["stored_bytes"], entry["stored_sha256"]) == (len(stored), hashlib.sha256(stored).hexdigest())
    embedding = manifest["tables"][EMBEDDING_TABLE]
    assert embedding["stored_bytes"] < embedding["bytes"] / 2


def test_an_uncompressed_set_records_the_file_as_its_csv(store_db, backup_root):
    result = back_up(store_db, backup_root, Compression(NONE))
    entry = json.loads(result.manifest_path.read_text())["tables"][EMBEDDING_TABLE]
    data = result.table(EMBEDDING_TABLE).path.read_bytes()
    assert result.table(EMBEDDING_TABLE).path.name == f"{EMBEDDING_TABLE}_{TS}.csv"
    assert entry["codec"] == "none"
    assert entry["stored_bytes"] == entry["bytes"] == len(data)
    assert entry["stored_sha256"] == entry["sha256"] == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("codec", [ZSTD, GZIP])
def test_compressed_sets_list_and_restore_exactly(empty_db, backup_root, codec):
    make_store(empty_db, LANGCHAIN_POSTGRES)
    original = contents(empty_db)
    back_up(empty_db, backup_root, Compression(codec, 3))
    backup_set = locate_backup_set(backup_root, timestamp=TS)
    assert backup_set.status == "complete" and backup_set.codecs == {COLLECTION_TABLE: codec, EMBEDDING_TABLE: codec}
    assert backup_set.compression_ratio is not None and backup_set.compression_ratio > 2
    result = restore_backup_set(empty_db, "public", backup_set, RestoreFlags(truncate_before_restore=True))
    assert [s.rows_restored for s in result.tables] == [len(original[COLLECTION_TABLE]), len(original[EMBEDDING_TABLE])]
    assert contents(empty_db) == original


def _damage(path: Path, codec: str, keep_stored_digest: bool) -> None:
    """Change one digit of the CSV inside a compressed file and compress it again."""
    csv = DECOMPRESS[codec](path.read_bytes())
    changed = flip_a_digit(csv)
    path.write_bytes(zstandard.ZstdCompressor().compress(changed) if codec == ZSTD else gzip.compress(changed, mtime=0))
    if keep_stored_digest:
        # Record the new file's own size and digest, so only the CSV's digest can catch the change.
        manifest_path = path.parent / f"vector_backup_{TS}.json"
        manifest = json.loads(manifest_path.read_text())
        entry = next(e for e in manifest["tables"].values() if e["file"] == path.name)
        entry["stored_bytes"] = path.stat().st_size
        entry["stored_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
        manifest_path.write_text(json.dumps(manifest))


@pytest.mark.parametrize("keep_stored_digest", [False, True], ids=["file-changed", "file-and-its-digest-changed"])
def test_a_changed_compressed_file_restores_nothing(empty_db, backup_root, keep_stored_digest):
    make_store(empty_db, LANGCHAIN_POSTGRES)
    original = contents(empty_db)
    result = back_up(empty_db, backup_root, Compression(ZSTD))
    path = result.table(EMBEDDING_TABLE).path
    _damage(path, ZSTD, keep_stored_digest)
    backup_set = locate_backup_set(backup_root, timestamp=TS)
    with pytest.raises(DataError, match="does not match its manifest") as caught:
        restore_backup_set(empty_db, "public", backup_set, RestoreFlags(truncate_before_restore=True))
    if keep_stored_digest:
        assert f"{path.name} (decompressed) does not match its manifest" in caught.value.message
    assert contents(empty_db) == original


def test_a_compressed_file_that_is_not_zstd_restores_nothing(empty_db, backup_root):
    make_store(empty_db, LANGCHAIN_POSTGRES)
    original = contents(empty_db)
    result = back_up(empty_db, backup_root, Compression(ZSTD))
    path = result.table(EMBEDDING_TABLE).path
    data = bytearray(path.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = b"\x00" * 64  # same size: only the content tells
    path.write_bytes(bytes(data))
    backup_set = locate_backup_set(backup_root, timestamp=TS)
    with pytest.raises(DataError, match="does not match its manifest|cannot be decompressed as zstd \\("):
        restore_backup_set(empty_db, "public", backup_set, RestoreFlags(truncate_before_restore=True))
    assert contents(empty_db) == original


def test_unknown_codecs_and_levels_are_refused_with_the_choices():
    with pytest.raises(InvalidParams, match=r"Compression 'lz4' is not known: choose one of none, zstd, gzip\."):
        Compression("lz4")
    with pytest.raises(InvalidParams, match=r"Compression level 22 is not valid for zstd: use 1 to 19 \(default 1\)\."):
        Compression(ZSTD, 22)
