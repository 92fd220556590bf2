"""Encrypted sets (issue 35): every stored file age-encrypted after compression, the manifest sealed beside a clear
index, round trips in every codec and both formats on both stores, and what a host without the identity can do."""

import hashlib
import json

import pyrage
import pytest

from pgvector_pipeline.contract import RestoreFlags
from pgvector_pipeline.names import COLLECTION_TABLE, EMBEDDING_TABLE, LANGCHAIN_POSTGRES
from pgvector_pipeline.operations.backup import BackupOptions, back_up_database
from pgvector_pipeline.operations.restore import restore_backup_set
from pgvector_pipeline.set_formats import BINARY, CSV
from pgvector_pipeline.store.age_streams import AGE_MAGIC
from pgvector_pipeline.store.backup_set_info import set_record
from pgvector_pipeline.store.codecs import GZIP, NONE, ZSTD, Compression
from pgvector_pipeline.store.keys import SetKeys
from pgvector_pipeline.store.local import LocalBackupStore
from pgvector_pipeline.store.roots import store_at
from pgvector_pipeline.store.s3 import S3BackupStore
from pgvector_pipeline.store.s3_client import S3Root
from pgvector_pipeline.testing.db import execute
from tests.catalog_fingerprint import contents
from tests.encryption_keys import KeyPair, keys_of, new_key_pair
from tests.stores import make_store

SWAP = RestoreFlags(truncate_before_restore=True)


@pytest.fixture
def key(tmp_path) -> KeyPair:
    keys = tmp_path / "keys"
    keys.mkdir(exist_ok=True)
    return new_key_pair(keys, "current")


def store_with(kind: str, root, keys: SetKeys, request):
    """A local store at `root`, or a store on a new bucket of the session's S3 server, with `keys`."""
    if kind == "local":
        return LocalBackupStore(root, keys=keys)
    server = request.getfixturevalue("s3_server")
    return S3BackupStore(server.client(), S3Root(request.getfixturevalue("s3_bucket"), "backups"), keys=keys)


def stored_bytes(store, backup_set, name: str) -> bytes:
    if isinstance(store, S3BackupStore):
        key = store.location_key(backup_set.task, name)
        return store.client.get_object(Bucket=store.root.bucket, Key=key)["Body"].read()
    return (store.set_directory(backup_set) / name).read_bytes()


@pytest.mark.parametrize("kind", ["local", "s3"])
@pytest.mark.parametrize("set_format", [CSV, BINARY])
@pytest.mark.parametrize("codec", [NONE, ZSTD, GZIP])
def test_an_encrypted_set_round_trips_in_every_codec_and_format(
    request, store_db, tmp_path, key, kind, set_format, codec
):
    make_store(store_db, LANGCHAIN_POSTGRES, create_tables=False)
    before = contents(store_db)
    store = store_with(kind, tmp_path / "backups", keys_of(to=(key,), read_with=(key,)), request)
    options = BackupOptions(compression=Compression(codec), set_format=set_format)
    result = back_up_database(store_db, "public", store, "global", None, options)

    backup_set = store.locate(timestamp=result.timestamp)
    assert (backup_set.status, backup_set.encrypted, backup_set.recipients) == ("complete", True, [key.fingerprint])
    assert backup_set.manifest is None  # listed from the clear index: nothing of the content is read
    extension = {CSV: "csv", BINARY: "pgcopy"}[set_format] + {NONE: "", ZSTD: ".zst", GZIP: ".gz"}[codec]
    for table, name in backup_set.table_files.items():
        assert name == f"{table}_{result.timestamp}.{extension}.age"
        data = stored_bytes(store, backup_set, name)
        assert data.startswith(AGE_MAGIC)
        entry = backup_set.sealed.tables[table]
        assert (entry.stored_bytes, entry.stored_sha256) == (len(data), hashlib.sha256(data).hexdigest())
    index = json.loads(stored_bytes(store, backup_set, f"vector_backup_{result.timestamp}.json"))
    assert index["format"] == "pgvector-pipeline-backup/5" and index["kind"] == "sealed"
    assert index["encryption"] == {"recipients": [key.fingerprint]}
    # Nothing of the data in clear: no collection names, columns, DDL, row filters, source.
    text = json.dumps(index)
    for word in ("tricky", "CREATE", "columns", "collections", "embedding vector", "source", "dsn"):
        assert word not in text
    sealed = stored_bytes(store, backup_set, f"vector_backup_{result.timestamp}.json.age")
    manifest = json.loads(pyrage.decrypt(sealed, [pyrage.x25519.Identity.from_str(key.secret)]))
    assert manifest["encryption"] == {"recipients": [key.fingerprint]}
    assert "tricky" in manifest["collections"]["embeddings"]

    execute(store_db, lambda cur: cur.execute("DELETE FROM langchain_pg_embedding"))
    restored = restore_backup_set(store_db, "public", store.locate(timestamp=result.timestamp), SWAP)
    assert restored.rows_restored == sum(t.rows for t in result.tables)
    assert contents(store_db) == before


def test_list_says_a_set_is_encrypted_and_to_which_fingerprints(store_db, tmp_path, key):
    make_store(store_db, LANGCHAIN_POSTGRES, create_tables=False)
    backups = tmp_path / "backups"
    back_up_database(store_db, "public", LocalBackupStore(backups, keys=keys_of(to=(key,))), "global", None)
    back_up_database(store_db, "public", LocalBackupStore(backups), "global", None)
    encrypted, clear = sorted(store_at(str(backups)).list_sets(), key=lambda s: not s.encrypted)
    record = set_record(encrypted)
    assert (record["status"], record["encrypted"], record["recipients"]) == ("complete", True, key.fingerprint)
    assert (set_record(clear)["encrypted"], set_record(clear)["recipients"]) == (False, "")
    assert encrypted.rows(EMBEDDING_TABLE) == clear.rows(EMBEDDING_TABLE)
    assert encrypted.rows(COLLECTION_TABLE) == clear.rows(COLLECTION_TABLE)
