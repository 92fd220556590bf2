"""Encrypted sets (issue 35): every stored file age-encrypted after compression, the manifest sealed beside a clear
index, round trips in every codec and both formats on both stores, and what a host without the identity can do."""

import hashlib
import json

import pyrage
import pytest

from pgvector_pipeline.contract import RestoreFlags
from pgvector_pipeline.errors import DataError, InvalidParams
from pgvector_pipeline.names import COLLECTION_TABLE, EMBEDDING_TABLE, LANGCHAIN_POSTGRES
from pgvector_pipeline.operations.backup import BackupOptions, back_up_database
from pgvector_pipeline.operations.restore import restore_backup_set
from pgvector_pipeline.operations.set_checks import check_written_set
from pgvector_pipeline.set_formats import BINARY, CSV
from pgvector_pipeline.store.age_streams import AGE_MAGIC
from pgvector_pipeline.store.backup_set_info import set_record
from pgvector_pipeline.store.codecs import GZIP, NONE, ZSTD, Compression
from pgvector_pipeline.store.keys import IDENTITY_FILE_ENV, SetKeys
from pgvector_pipeline.store.local import LocalBackupStore
from pgvector_pipeline.store.roots import store_at
from pgvector_pipeline.store.s3 import S3BackupStore
from pgvector_pipeline.store.s3_client import S3Root
from pgvector_pipeline.testing.db import execute
from pgvector_pipeline.testing.langchain_tables import fill_sample_store
from tests.catalog_fingerprint import contents
from tests.encryption_keys import KeyPair, keys_of, new_key_pair
from tests.faulty_stores import flip_a_byte
from tests.helpers import RecordingLog
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
    assert (index["set_format"], backup_set.set_format) == (set_format, set_format)
    # Nothing of the data in clear: no collection names, columns, DDL, row filters, source.
    text = json.dumps(index)
    for word in ("tricky", "CREATE", "columns", "collections", "embedding vector", "source", "dsn"):
        assert word not in text
    sealed = stored_bytes(store, backup_set, f"vector_backup_{result.timestamp}.json.age")
    manifest = json.loads(pyrage.decrypt(sealed, [pyrage.x25519.Identity.from_str(key.secret)]))
    assert manifest["encryption"] == {"recipients": [key.fingerprint]}
    assert "tricky" in manifest["collections"]["embeddings"]
    assert manifest["set_format"] == set_format
    # The backup run's own checks (check_written_set) read the stored bytes against the index, without the manifest.
    checks, _ = check_written_set(store, result, RecordingLog())
    assert [(c.name, c.passed) for c in checks if not c.passed] == []

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
    record, clear_record = set_record(encrypted, str(backups)), set_record(clear, str(backups))
    assert (record["status"], record["encrypted"], record["recipients"]) == ("complete", True, key.fingerprint)
    assert (clear_record["encrypted"], clear_record["recipients"]) == (False, "")
    # What the clear index says: the format, how long the backup took; nothing of the source or the collections.
    assert (record["format"], record["duration_s"]) == ("csv", encrypted.sealed.duration_s)
    assert record["duration_s"] is not None and record["taken_at"] is not None
    assert (record["source_database"], record["collection_names"]) == (None, None)
    assert record["table_names"] == clear_record["table_names"]
    assert encrypted.rows(EMBEDDING_TABLE) == clear.rows(EMBEDDING_TABLE)
    assert encrypted.rows(COLLECTION_TABLE) == clear.rows(COLLECTION_TABLE)


# --- what fails, and how ------------------------------------------------------------------------------------------


def encrypted_set(store_db, root, key, codec=ZSTD, set_format=CSV, large=False):
    """A store of the tricky rows (`large`: of 4,000 random vectors, files of several age chunks) backed up into an
    encrypted set of a local store at `root` that reads with `key`."""
    if large:
        fill_sample_store(store_db, embeddings_per_collection=2000, dimension=64)
    else:
        make_store(store_db, LANGCHAIN_POSTGRES, create_tables=False)
    store = LocalBackupStore(root, keys=keys_of(to=(key,), read_with=(key,)))
    options = BackupOptions(compression=Compression(codec), set_format=set_format)
    result = back_up_database(store_db, "public", store, "global", None, options)
    return store, result.timestamp


def reseal(store: LocalBackupStore, timestamp: str, key: KeyPair, table: str, data: bytes) -> None:
    """Replace a table's file of an encrypted set with `data`, and make the set's index and sealed manifest record its
    size and sha256, as anyone with write access to the store and the public key can: only age's authentication is
    left to catch the change."""
    backup_set = store.locate(timestamp=timestamp)
    directory = store.set_directory(backup_set)
    (directory / backup_set.table_files[table]).write_bytes(data)
    identity = pyrage.x25519.Identity.from_str(key.secret)
    sealed_path = directory / f"vector_backup_{timestamp}.json.age"
    manifest = json.loads(pyrage.decrypt(sealed_path.read_bytes(), [identity]))
    manifest["tables"][table].update(stored_bytes=len(data), stored_sha256=hashlib.sha256(data).hexdigest())
    sealed = pyrage.encrypt((json.dumps(manifest, indent=2) + "\n").encode(), [identity.to_public()])
    sealed_path.write_bytes(sealed)
    index_path = directory / f"vector_backup_{timestamp}.json"
    index = json.loads(index_path.read_text())
    index["tables"][table].update(stored_bytes=len(data), stored_sha256=hashlib.sha256(data).hexdigest())
    index["manifest"].update(stored_bytes=len(sealed), stored_sha256=hashlib.sha256(sealed).hexdigest())
    index_path.write_text(json.dumps(index, indent=2) + "\n")


@pytest.mark.parametrize("large", [False, True], ids=["caught-by-the-header-check", "caught-while-loading"])
@pytest.mark.parametrize("set_format", [CSV, BINARY])
def test_a_changed_byte_fails_authentication_and_nothing_is_loaded(store_db, tmp_path, key, set_format, large):
    store, timestamp = encrypted_set(store_db, tmp_path / "backups", key, set_format=set_format, large=large)
    before = contents(store_db)
    name = store.locate(timestamp=timestamp).table_files[EMBEDDING_TABLE]
    path = store.set_directory(store.locate(timestamp=timestamp)) / name
    reseal(store, timestamp, key, EMBEDDING_TABLE, flip_a_byte(path.read_bytes()))

    with pytest.raises(DataError) as caught:
        restore_backup_set(store_db, "public", store.locate(timestamp=timestamp), SWAP)
    assert caught.value.error_type == "DATA_ERROR"
    assert f"{name} fails age authentication" in caught.value.message
    assert contents(store_db) == before  # the restore is one transaction: nothing was loaded
    assert store.locate(timestamp=timestamp).status == "damaged"


def test_a_changed_byte_the_index_does_not_know_of_is_caught_by_its_sha256(store_db, tmp_path, key):
    store, timestamp = encrypted_set(store_db, tmp_path / "backups", key, large=True)
    before = contents(store_db)
    backup_set = store.locate(timestamp=timestamp)
    path = store.set_directory(backup_set) / backup_set.table_files[EMBEDDING_TABLE]
    path.write_bytes(flip_a_byte(path.read_bytes()))

    with pytest.raises(DataError) as caught:
        restore_backup_set(store_db, "public", store.locate(timestamp=timestamp), SWAP)
    # The stored bytes' own check speaks first: the changed file is the cause of the failed authentication.
    assert f"{path.name} does not match its manifest: the sha256" in caught.value.message
    assert f"{path.name} fails age authentication" in str(caught.value.__cause__.__cause__)
    assert contents(store_db) == before


def test_a_file_cut_at_a_chunk_boundary_fails_authentication(store_db, tmp_path, key):
    """age marks its last chunk: a file cut after a whole chunk is still caught, even with digests to match."""
    store, timestamp = encrypted_set(store_db, tmp_path / "backups", key, codec=NONE, large=True)
    before = contents(store_db)
    backup_set = store.locate(timestamp=timestamp)
    path = store.set_directory(backup_set) / backup_set.table_files[EMBEDDING_TABLE]
    data = path.read_bytes()
    header = data.index(b"\n---") + 1
    header += data[header:].index(b"\n") + 1 + 16  # the header's MAC line, then the payload's 16-byte nonce
    assert len(data) > header + (64 << 10) + 16, "the file holds more than one chunk"
    reseal(store, timestamp, key, EMBEDDING_TABLE, data[: header + (64 << 10) + 16])

    with pytest.raises(DataError, match=f"{path.name} fails age authentication"):
        restore_backup_set(store_db, "public", store.locate(timestamp=timestamp), SWAP)
    assert contents(store_db) == before


def test_a_truncated_file_is_refused_before_connecting(store_db, tmp_path, key):
    store, timestamp = encrypted_set(store_db, tmp_path / "backups", key)
    backup_set = store.locate(timestamp=timestamp)
    path = store.set_directory(backup_set) / backup_set.table_files[EMBEDDING_TABLE]
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match=f"{path.name} does not match its manifest \\(expected"):
        restore_backup_set("host=/nonexistent dbname=never", "public", store.locate(timestamp=timestamp), SWAP)


def test_without_the_identity_a_restore_fails_before_anything_naming_the_recipients(store_db, tmp_path, key):
    other = new_key_pair(tmp_path / "keys", "other")
    store, timestamp = encrypted_set(store_db, tmp_path / "backups", key)
    before = contents(store_db)
    for keys, says in [
        (keys_of(to=(key,)), f"this host holds no identity to read it: set {IDENTITY_FILE_ENV}"),
        (keys_of(read_with=(other,)), f"none of the identities in {IDENTITY_FILE_ENV} ({other.identity_file}"),
    ]:
        reader = LocalBackupStore(tmp_path / "backups", keys=keys)
        with pytest.raises(InvalidParams) as caught:
            # An unreachable database: the refusal comes before any connection.
            restore_backup_set("host=/nonexistent dbname=never", "public", reader.locate(timestamp=timestamp), SWAP)
        message = caught.value.message
        assert f"encrypted to the age recipients with fingerprints {key.fingerprint}" in message
        assert says in message and "Nothing was changed." in message
        assert key.recipient not in message and other.recipient not in message
    assert contents(store_db) == before
    assert LocalBackupStore(tmp_path / "backups").locate(timestamp=timestamp).status == "complete"


def test_rotation_new_sets_go_to_the_new_key_and_old_sets_restore_with_the_old_one(store_db, tmp_path, key):
    new = new_key_pair(tmp_path / "keys", "new")
    root = tmp_path / "backups"
    make_store(store_db, LANGCHAIN_POSTGRES, create_tables=False)
    before = contents(store_db)
    old_set = back_up_database(store_db, "public", LocalBackupStore(root, keys=keys_of(to=(key,))), "global", None)
    rotated = LocalBackupStore(root, keys=keys_of(to=(new,), read_with=(key, new)))
    new_set = back_up_database(store_db, "public", rotated, "global", None)
    assert rotated.locate(timestamp=old_set.timestamp).recipients == [key.fingerprint]
    assert rotated.locate(timestamp=new_set.timestamp).recipients == [new.fingerprint]
    for timestamp in (old_set.timestamp, new_set.timestamp):
        execute(store_db, lambda cur: cur.execute("DELETE FROM langchain_pg_embedding"))
        restore_backup_set(store_db, "public", rotated.locate(timestamp=timestamp), SWAP)
        assert contents(store_db) == before
    # Two identities in one file read both as well.
    both = tmp_path / "keys" / "both.txt"
    both.write_text(key.identity_file.read_text() + new.identity_file.read_text())
    both.chmod(0o600)
    one_file = LocalBackupStore(root, keys=SetKeys(None, (both,)))
    for timestamp in (old_set.timestamp, new_set.timestamp):
        restore_backup_set(
            store_db,
            "public",
            one_file.locate(timestamp=timestamp),
            RestoreFlags(truncate_before_restore=True, verify_only=True),
        )


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620])
def test_an_identity_file_others_may_read_is_refused(store_db, tmp_path, key, mode):
    store, timestamp = encrypted_set(store_db, tmp_path / "backups", key)
    key.identity_file.chmod(mode)
    reader = LocalBackupStore(tmp_path / "backups", keys=keys_of(read_with=(key,)))
    with pytest.raises(InvalidParams) as caught:
        restore_backup_set(store_db, "public", reader.locate(timestamp=timestamp), SWAP)
    assert caught.value.message == (
        f"The identity file {key.identity_file} ({IDENTITY_FILE_ENV}) is open to others (mode {mode:04o}): a "
        f"private key must be readable by its owner only. Run `chmod 600 {key.identity_file}`."
    )


@pytest.mark.parametrize("encrypted", [False, True], ids=["in-clear", "encrypted"])
def test_a_zstd_binary_set_of_incompressible_vectors_restores(store_db, tmp_path, key, encrypted):
    """zstd decodes whole blocks (up to 128 KiB of content): random floats barely compress, so the first block of a
    binary set's file takes more than the 64 KiB a header check once read of it, and the check found no header."""
    fill_sample_store(store_db, collections=1, embeddings_per_collection=1000, dimension=384)
    before = contents(store_db)
    keys = keys_of(to=(key,), read_with=(key,)) if encrypted else SetKeys()
    store = LocalBackupStore(tmp_path / "backups", keys=keys)
    result = back_up_database(store_db, "public", store, "global", None, BackupOptions(set_format=BINARY))
    execute(store_db, lambda cur: cur.execute("DELETE FROM langchain_pg_embedding"))

    restore_backup_set(store_db, "public", store.locate(timestamp=result.timestamp), SWAP)

    assert contents(store_db) == before


def test_the_log_beside_an_encrypted_set_names_no_collection(store_db, tmp_path, key):
    """Collection names are the store's data: a per-collection backup's log entry names them only for sets in
    clear."""
    make_store(store_db, LANGCHAIN_POSTGRES, create_tables=False)
    root = tmp_path / "backups"
    options = BackupOptions(collections=("tricky",))
    back_up_database(store_db, "public", LocalBackupStore(root, keys=keys_of(to=(key,))), "global", None, options)
    log = (root / "vector_bak" / "vector_backup_log.txt").read_text()
    assert "tricky" not in log and ".csv.zst.age" in log
    back_up_database(store_db, "public", LocalBackupStore(root), "global", None, options)
    assert "collections: 'tricky'" in (root / "vector_bak" / "vector_backup_log.txt").read_text()
