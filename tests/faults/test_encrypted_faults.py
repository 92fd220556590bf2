"""Encrypted sets (issue 35) when the storage fails: a disk that fills up while the encryption's thread writes."""

import threading

import pytest

from pgvector_pipeline.errors import StorageError
from pgvector_pipeline.operations.backup import BackupOptions, back_up_database
from pgvector_pipeline.store.codecs import NONE, Compression
from pgvector_pipeline.store.layout import LOG_FILE_NAME
from pgvector_pipeline.store.local import LocalBackupStore
from pgvector_pipeline.testing.db import execute
from pgvector_pipeline.testing.langchain_tables import insert_sample_store
from tests.encryption_keys import keys_of, new_key_pair


def test_a_full_disk_while_encrypting_fails_once_clearly_and_leaves_nothing(small_disk, store_db, tmp_path):
    """The file is written on the encryption's thread: its ENOSPC reaches the export as the OSError it is."""
    execute(
        store_db,
        lambda cur: insert_sample_store(cur, "public", collections=1, embeddings_per_collection=5000, dimension=64),
    )
    keys_dir = tmp_path / "keys"
    keys_dir.mkdir()
    key = new_key_pair(keys_dir, "current")
    store = LocalBackupStore(small_disk, keys=keys_of(to=(key,)))

    with pytest.raises(StorageError) as caught:
        back_up_database(store_db, "public", store, "global", None, BackupOptions(compression=Compression(NONE)))

    message = caught.value.message
    assert f"The disk holding {small_disk / 'vector_bak'} (file system at {small_disk}) is full" in message
    assert ".csv.age.tmp" in message
    assert sorted(p.name for p in (small_disk / "vector_bak").iterdir()) == [LOG_FILE_NAME]
    assert not [t for t in threading.enumerate() if t.name.startswith("age encrypt")]
