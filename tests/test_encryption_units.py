"""Encrypted sets (issue 35): the keys as the deployment gives them, the bridges between our streams and pyrage's, file
names and the clear index, what a listed encrypted set says (list, metadata), and retention and a dead writer's
leftovers in both stores."""

import io
import json
import threading
import time

import pyrage
import pytest

from pgvector_pipeline.entry_points.cli import set_table
from pgvector_pipeline.errors import DataError, FilesDamaged, InvalidParams
from pgvector_pipeline.names import EMBEDDING_TABLE
from pgvector_pipeline.operations.backup import back_up_database
from pgvector_pipeline.settings import StoreSettings, keys_from_env
from pgvector_pipeline.store.age_streams import CHUNK, QUEUE_DEPTH, AgeEncryptor, DecryptingReader
from pgvector_pipeline.store.keys import (
    IDENTITY_FILE_ENV,
    NO_KEYS,
    RECIPIENTS_ENV,
    RECIPIENTS_FILE_ENV,
    SetKeys,
    load_identities,
    parse_recipients,
)
from pgvector_pipeline.store.layout import parse_set_file_name, sealed_manifest_name, table_file_name
from pgvector_pipeline.store.manifest import parse_manifest
from pgvector_pipeline.store.retention import RetentionPolicy, apply_retention
from pgvector_pipeline.store.roots import store_at
from pgvector_pipeline.testing.langchain_tables import fill_sample_store
from tests.encryption_keys import KeyPair, keys_of, new_key_pair
from tests.helpers import RecordingLog


@pytest.fixture
def keys_dir(tmp_path):
    directory = tmp_path / "keys"
    directory.mkdir()
    return directory


@pytest.fixture
def key(keys_dir) -> KeyPair:
    return new_key_pair(keys_dir, "current")


# --- keys from the deployment -------------------------------------------------------------------------------------


def test_recipients_come_from_the_variable_or_a_file_and_identities_from_files(monkeypatch, keys_dir, key):
    other = new_key_pair(keys_dir, "other")
    for name in (RECIPIENTS_ENV, RECIPIENTS_FILE_ENV, IDENTITY_FILE_ENV):
        monkeypatch.delenv(name, raising=False)
    assert keys_from_env() is NO_KEYS and StoreSettings.from_env().keys is NO_KEYS

    monkeypatch.setenv(RECIPIENTS_ENV, f" {key.recipient},\n{other.recipient}  {key.recipient} ")
    keys = keys_from_env()
    assert keys.recipients is not None and keys.recipients.keys == (key.recipient, other.recipient)
    assert keys.recipients.fingerprints == (key.fingerprint, other.fingerprint)
    assert repr(keys.recipients) == f"Recipients({key.fingerprint}, {other.fingerprint})"
    assert keys.identity_files == ()

    listed = keys_dir / "recipients.txt"
    listed.write_text(f"# the backup keys\n{key.recipient}\n\n{other.recipient}\n")
    monkeypatch.setenv(RECIPIENTS_FILE_ENV, str(listed))
    with pytest.raises(InvalidParams, match=f"{RECIPIENTS_ENV} and {RECIPIENTS_FILE_ENV} are both set"):
        keys_from_env()
    monkeypatch.delenv(RECIPIENTS_ENV)
    monkeypatch.setenv(IDENTITY_FILE_ENV, f"{key.identity_file}, {other.identity_file}")
    keys = keys_from_env()
    assert keys.recipients.fingerprints == (key.fingerprint, other.fingerprint)
    assert keys.identity_files == (key.identity_file, other.identity_file)
    assert keys.identities("The set", [other.fingerprint]).fingerprints == (key.fingerprint, other.fingerprint)


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "holds no recipient: give one or more age public keys (age1…)."),
        ("age1notakey", "Recipient 1 of PGVECTOR_BACKUP_RECIPIENTS is not an age X25519 public key"),
        ("{good} ssh-ed25519", "Recipient 2 of PGVECTOR_BACKUP_RECIPIENTS is not an age X25519 public key"),
        ("{secret}", "Recipient 1 of PGVECTOR_BACKUP_RECIPIENTS is not an age X25519 public key"),
    ],
)
def test_a_recipient_that_is_not_one_is_refused_without_its_text(key, text, message):
    given = text.format(good=key.recipient, secret=key.secret)
    if not given:
        with pytest.raises(InvalidParams, match="holds no recipient"):
            parse_recipients("  # nothing\n", RECIPIENTS_ENV)
        return
    with pytest.raises(InvalidParams) as caught:
        parse_recipients(given, RECIPIENTS_ENV)
    assert message in caught.value.message
    assert key.secret not in caught.value.message and "ssh-ed25519" not in caught.value.message


def test_an_identity_file_that_is_no_key_file_is_refused_by_line_number(keys_dir, key):
    broken = keys_dir / "broken.txt"
    broken.write_text(f"# comment\n{key.secret}\nAGE-SECRET-KEY-1NOTAKEY\n")
    broken.chmod(0o600)
    with pytest.raises(InvalidParams) as caught:
        load_identities((broken,))
    assert caught.value.message == (
        f"Line 3 of the identity file {broken} is not an age X25519 identity (AGE-SECRET-KEY-1…, as age-keygen writes "
        f"it; plugin and ssh keys are not supported). Its text is not shown."
    )
    empty = keys_dir / "empty.txt"
    empty.write_text("# nothing here\n")
    empty.chmod(0o600)
    with pytest.raises(InvalidParams, match="holds no identity"):
        load_identities((empty,))
    with pytest.raises(InvalidParams, match="cannot be read: No such file or directory"):
        load_identities((keys_dir / "missing.txt",))
    with pytest.raises(InvalidParams, match="is not a regular file"):
        load_identities((keys_dir,))


# --- the bridges --------------------------------------------------------------------------------------------------


def test_the_encryptor_streams_with_a_bounded_queue_and_its_output_decrypts(key):
    identity = pyrage.x25519.Identity.from_str(key.secret)
    out: list[bytes] = []
    encryptor = AgeEncryptor(parse_recipients(key.recipient, "test"), out.append, "t")
    rows = [f"{n},row {n}\n".encode() * 50 for n in range(5000)]
    for row in rows:
        encryptor.write(row)
    encryptor.finish()
    assert pyrage.decrypt(b"".join(out), [identity]) == b"".join(rows)
    assert max(len(part) for part in out) <= (64 << 10) + 16  # age's chunks, handed on as they come
    assert CHUNK * QUEUE_DEPTH <= 2 << 20  # what may wait between the threads


def test_an_error_on_either_side_reaches_the_other_and_nothing_hangs(key):
    recipients = parse_recipients(key.recipient, "test")

    def full_disk(_: bytes) -> None:
        raise OSError(28, "No space left on device")

    encryptor = AgeEncryptor(recipients, full_disk, "t")
    with pytest.raises(OSError, match="No space left"):  # the very exception, raised where the writer writes
        for _ in range(100):
            encryptor.write(b"x" * CHUNK)
        encryptor.finish()

    slow_consumer: list[bytes] = []
    encryptor = AgeEncryptor(recipients, lambda part: (time.sleep(0.01), slow_consumer.append(part)), "t")
    encryptor.write(b"y" * CHUNK * 3)
    started = time.monotonic()
    encryptor.abort()  # a writer that fails stops the encryption: its thread ends
    assert time.monotonic() - started < 5
    assert not [t for t in threading.enumerate() if t.name.startswith("age encrypt")]

    ciphertext = pyrage.encrypt(b"z" * (5 << 20), [pyrage.x25519.Recipient.from_str(key.recipient)])
    identities = SetKeys(None, (key.identity_file,)).identities("t", [key.fingerprint])

    class Source(io.RawIOBase):
        def __init__(self, data: bytes, fail_at: int | None = None):
            super().__init__()
            self._data, self._position, self._fail_at, self.left = data, 0, fail_at, None

        def readable(self) -> bool:
            return True

        def readinto(self, buffer) -> int:
            if self._fail_at is not None and self._position >= self._fail_at:
                raise DataError("the connection dropped")
            count = min(len(buffer), len(self._data) - self._position)
            buffer[:count] = self._data[self._position : self._position + count]
            self._position += count
            return count

        def __exit__(self, *exc_info) -> None:
            self.left = exc_info

    # The source's own error, as itself.
    with pytest.raises(DataError, match="the connection dropped"):
        with DecryptingReader(Source(ciphertext, fail_at=1 << 20), identities, "f") as reader:
            while reader.read(1 << 16):
                pass
    # A consumer that stops: the decryption stops, the source is left with the consumer's error.
    source = Source(ciphertext)
    with pytest.raises(ValueError, match="the consumer stopped"):
        with DecryptingReader(source, identities, "f") as reader:
            reader.read(10)
            raise ValueError("the consumer stopped")
    assert source.left[0] is ValueError
    # Bytes that are no age file.
    with pytest.raises(FilesDamaged, match="f fails age authentication"):
        with DecryptingReader(Source(b"not age at all" * 1000), identities, "f") as reader:
            reader.read()
    time.sleep(0.5)
    assert not [t for t in threading.enumerate() if t.name.startswith("age decrypt")]


# --- names and documents ------------------------------------------------------------------------------------------


def test_encrypted_file_names_and_the_sealed_manifest_name_parse():
    name = table_file_name(EMBEDDING_TABLE, "20261124_101500", "zstd", "binary", encrypted=True)
    assert name == "langchain_pg_embedding_20261124_101500.pgcopy.zst.age"
    parsed = parse_set_file_name(name)
    assert (parsed.kind, parsed.table, parsed.codec, parsed.set_format, parsed.encrypted) == (
        "table",
        EMBEDDING_TABLE,
        "zstd",
        "binary",
        True,
    )
    assert parse_set_file_name(name + ".tmp").tmp
    assert parse_set_file_name(sealed_manifest_name("20261124_101500")).kind == "sealed_manifest"
    assert parse_set_file_name("vector_backup_20261124_101500.json.age.tmp").tmp
    assert parse_set_file_name("langchain_pg_embedding_20261124_101500.csv.age.zst") is None


def test_a_clear_index_that_records_more_than_it_may_is_refused():
    index = {
        "format": "pgvector-pipeline-backup/5",
        "kind": "sealed",
        "task_id": "global",
        "timestamp": "20261124_101500",
        "encryption": {"recipients": ["0123456789abcdef"]},
        "manifest": {"file": "vector_backup_20261124_101500.json.age", "stored_bytes": 10, "stored_sha256": "0" * 64},
        "tables": {
            "t": {
                "file": "t_20261124_101500.csv.zst.age",
                "rows": 1,
                "codec": "zstd",
                "stored_bytes": 1,
                "stored_sha256": "0" * 64,
            }
        },
    }
    assert parse_manifest(json.dumps(index).encode(), "here", "20261124_101500").tables["t"].rows == 1
    for change in (
        {"collections": {"embeddings": {"secret collection": 1}}},
        {"tables": {"t": {**index["tables"]["t"], "columns": []}}},
        {"tables": {"t": {**index["tables"]["t"], "file": "t_20261124_101500.csv.zst"}}},
        {"manifest": {**index["manifest"], "file": "elsewhere.json.age"}},
        {"encryption": {"recipients": []}},
    ):
        with pytest.raises(DataError, match="cannot be read as a manifest"):
            parse_manifest(json.dumps({**index, **change}).encode(), "here", "20261124_101500")


def test_list_shows_how_an_encrypted_set_is_stored():
    sets = [
        {
            "task_id": "global",
            "timestamp": "20261124_101500",
            "status": "complete",
            "size": "4.2 MB",
            "format": set_format,
            "compression": "zstd",
            "tables": "langchain_pg_collection (3 rows)",
            "collections": "",
            "encrypted": True,
            "recipients": "0123456789abcdef",
        }
        for set_format in ("binary", "csv")
    ]
    header, *rows = set_table(sets, __import__("datetime").datetime(2026, 11, 24, 12, 15))
    start, end = header.index("STORED AS"), header.index("SOURCE")
    assert [row[start:end].rstrip() for row in rows] == [
        "binary zstd + age to 0123456789abcdef",
        "csv zstd + age to 0123456789abcdef",
    ]
    assert all(row.endswith("langchain_pg_collection (3 rows)") for row in rows)


# --- in the stores ------------------------------------------------------------------------------------------------


def test_discovered_encrypted_sets_say_so_in_their_metadata(store_db, tmp_path, key):
    from pgvector_pipeline.sensors.discovery import discovered_metadata

    fill_sample_store(store_db, collections=1, embeddings_per_collection=10, dimension=4)
    store = store_at(str(tmp_path / "backups"), keys=keys_of(to=(key,)))
    result = back_up_database(store_db, "public", store, "global", None)
    metadata = discovered_metadata(store.locate(timestamp=result.timestamp), EMBEDDING_TABLE)
    assert (metadata["encrypted"], metadata["recipients"], metadata["dagster/row_count"]) == (
        True,
        key.fingerprint,
        10,
    )
    assert metadata["sha256"] == result.table(EMBEDDING_TABLE).entry.file_sha256
    assert "collections" not in metadata and "dagster/column_schema" not in metadata


def test_retention_removes_every_file_of_an_encrypted_set(store_db, key, any_root):
    fill_sample_store(store_db, collections=1, embeddings_per_collection=10, dimension=4)
    store = store_at(any_root, keys=keys_of(to=(key,)))
    first = back_up_database(store_db, "public", store, "global", None)
    while (second := back_up_database(store_db, "public", store, "global", None)).timestamp == first.timestamp:
        pass
    names = store.list_sets()[-1].file_names()
    assert names[-2:] == [sealed_manifest_name(first.timestamp), f"vector_backup_{first.timestamp}.json"]

    log = RecordingLog()
    done = apply_retention(
        store.list_sets(), RetentionPolicy(keep_newest=1), dry_run=False, log_info=log.info, warn=log.warning
    )

    assert [d.backup_set.timestamp for d in done.decisions if d.delete] == [first.timestamp]
    assert [s.timestamp for s in store.list_sets()] == [second.timestamp]
    if hasattr(store, "client"):
        # (log entries, one object each under vector_backup_log/, name the sets they record: they stay)
        left = [name for name, _ in store.location_names("global") if first.timestamp in name and "/" not in name]
    else:
        left = [p.name for p in (tmp_path_of(any_root)).iterdir() if first.timestamp in p.name]
    assert left == []


def test_a_dead_writers_leftovers_of_an_encrypted_set_are_removed(store_db, tmp_path, key):
    """A writer that died after sealing its manifest, before publishing its index."""
    fill_sample_store(store_db, collections=1, embeddings_per_collection=10, dimension=4)
    store = store_at(str(tmp_path / "backups"), keys=keys_of(to=(key,)))
    back_up_database(store_db, "public", store, "global", None)
    directory = tmp_path / "backups" / "vector_bak"
    dead = [
        table_file_name(EMBEDDING_TABLE, "20261124_101500", "zstd", encrypted=True),
        sealed_manifest_name("20261124_101500") + ".tmp",
        "vector_backup_20261124_101500.lock",
    ]
    for name in dead:
        (directory / name).write_bytes(b"x")

    removed = store.remove_interrupted("global")

    assert [(r.timestamp, sorted(r.files)) for r in removed] == [("20261124_101500", sorted(dead[:2]))]
    assert not [p.name for p in directory.iterdir() if "20261124_101500" in p.name]
    assert [s.status for s in store.list_sets()] == ["complete"]


def tmp_path_of(root: str):
    from pathlib import Path

    return Path(root) / "vector_bak"


def test_check_says_whom_sets_are_encrypted_to_and_refuses_an_unusable_identity(keys_dir, key):
    from pgvector_pipeline.operations.check import encryption_check

    clear = encryption_check(NO_KEYS)
    assert clear.ok and clear.detail == (
        f"New sets are written in clear ({RECIPIENTS_ENV} is not set); this host holds no identity: encrypted sets "
        f"are restored where one is ({IDENTITY_FILE_ENV})."
    )
    both = encryption_check(keys_of(to=(key,), read_with=(key,)))
    assert both.ok and both.data == {"recipients": [key.fingerprint], "identities": [key.fingerprint]}
    assert both.detail == (
        f"New sets are age-encrypted to the recipients {key.fingerprint}; this host reads sets encrypted to "
        f"{key.fingerprint} ({IDENTITY_FILE_ENV})."
    )
    key.identity_file.chmod(0o640)
    with pytest.raises(InvalidParams, match="chmod 600"):
        encryption_check(keys_of(read_with=(key,)))
