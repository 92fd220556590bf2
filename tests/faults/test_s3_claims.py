"""Claims on object storage when their run is cut off, fails or is killed, on a real S3 server (SeaweedFS): a claim
taken over by another run is never re-created nor published over (issue 31, item 5), and a failed or killed copy
or backup does not block the same set for the claim's stale time (item 9)."""

import dataclasses
import os
import signal
import subprocess
import sys
import time

import pytest

from pgvector_pipeline.errors import DataError, StorageError
from pgvector_pipeline.names import EMBEDDING_TABLE
from pgvector_pipeline.operations.backup import BackupOptions, back_up_database
from pgvector_pipeline.operations.copy import copy_set
from pgvector_pipeline.store.codecs import UNCOMPRESSED
from pgvector_pipeline.store.layout import lock_name, manifest_name
from pgvector_pipeline.store.local import LocalBackupStore
from pgvector_pipeline.store.s3 import S3BackupStore
from pgvector_pipeline.store.s3_client import S3Options
from pgvector_pipeline.store.s3_upload import MIN_PART_SIZE
from pgvector_pipeline.testing.webserver import REPO_ROOT
from tests.faults.s3_stores import FAST, objects, store_on, uploads
from tests.faults.tcp_proxy import CuttingProxy
from tests.faulty_stores import Faulty

PLAIN = BackupOptions(compression=UNCOMPRESSED)
# Claims go stale after the default 10 minutes here: a retry must not have to wait for that.
SLOW_STALE = S3Options(part_size=MIN_PART_SIZE)
TS = "20261201_120000"


@pytest.fixture
def proxy(s3_server):
    cutting = CuttingProxy(s3_server.endpoint_url)
    yield cutting
    cutting.close()


class IgnoresIfMatch:
    """An S3 client of a server that ignores If-Match on PUT (it honours If-None-Match): the real server behind it
    overwrites, or creates, where it should refuse."""

    def __init__(self, client):
        self._client = client

    def put_object(self, **request):
        request.pop("IfMatch", None)
        return self._client.put_object(**request)

    def __getattr__(self, name):
        return getattr(self._client, name)


@pytest.mark.parametrize("if_match", ["honoured", "ignored"])
def test_a_claim_taken_over_while_its_run_was_cut_off_is_never_recreated_nor_published(
    s3_server, s3_bucket, store_db, proxy, if_match
):
    """Backup A is cut off from S3 after its last upload, for longer than a claim lives; backup B takes A's claim for
    a dead run's and removes A's files; then A's network comes back before A publishes."""
    cut_off = store_on(s3_server, s3_bucket, endpoint=proxy.url)
    if if_match == "ignored":
        cut_off = S3BackupStore(IgnoresIfMatch(cut_off.client), cut_off.root, FAST)
    other = store_on(s3_server, s3_bucket)
    removed = []

    def cut_off_then_cleaned_up(timestamp: str) -> None:
        proxy.cut_every_connection = True
        time.sleep(FAST.stale_after_s + 0.5)  # A's claim is not refreshed: stale for everybody else
        removed.extend(other.remove_interrupted("global"))
        proxy.cut_every_connection = False
        time.sleep(10 * FAST.refresh_s)  # A's claim is refreshed (or not) meanwhile

    with pytest.raises(StorageError, match="is not published") as lost:
        back_up_database(store_db, "public", Faulty(cut_off, before_publish=cut_off_then_cleaned_up), "global", None)
    [leftovers] = removed
    assert len(leftovers.files) == 2 and lost.value.can_retry
    assert f"set {leftovers.timestamp} in s3://{s3_bucket}/backups/vector_bak" in lost.value.message
    # Nothing of the set is left: no manifest over missing files, no claim re-created, nothing listed.
    location = other.location_key("global")
    assert [key for key in objects(s3_server, s3_bucket) if "vector_backup_log/" not in key] == []
    assert other.head(location + manifest_name(leftovers.timestamp)) is None
    assert other.head(location + lock_name(leftovers.timestamp)) is None
    assert other.list_sets() == []


def test_a_copy_cut_off_from_s3_can_be_copied_again_at_once(s3_server, s3_bucket, big_db, tmp_path, proxy):
    local = LocalBackupStore(tmp_path / "backups")
    made = back_up_database(big_db, "public", local, "global", None, PLAIN)
    source = local.locate(timestamp=made.timestamp)
    offsite = store_on(s3_server, s3_bucket, endpoint=proxy.url, options=SLOW_STALE)

    def cut(table: str, reads: int) -> None:
        if table == EMBEDDING_TABLE and reads == 12:  # about 12 MB read: two parts sent, the third filling
            proxy.cut_every_connection = True

    with pytest.raises(StorageError, match="could not be reached or stopped answering"):
        copy_set(dataclasses.replace(source, store=Faulty(local, on_read=cut)), offsite)
    proxy.cut_every_connection = False

    copied = copy_set(local.locate(timestamp=made.timestamp), offsite)
    assert copied.total_bytes == source.total_bytes
    assert [(s.timestamp, s.status) for s in offsite.list_sets()] == [(made.timestamp, "complete")]
    assert uploads(s3_server, s3_bucket) == []  # the failed copy's upload was aborted by the retry
    assert not [key for key in objects(s3_server, s3_bucket) if key.endswith(".lock")]


KILLED_COPY = """
import sys, time
from pgvector_pipeline.operations.copy import copy_set
from pgvector_pipeline.store.local import LocalBackupStore
from pgvector_pipeline.store.s3 import S3BackupStore
from pgvector_pipeline.store.s3_client import S3Options, S3Root, make_client
from tests.faulty_stores import Faulty

def stall(table, reads):
    if table == "langchain_pg_embedding" and reads == 12:  # two parts sent, the third filling
        print("stalled", flush=True)
        time.sleep(3600)

local = LocalBackupStore(sys.argv[1])
source = local.locate(timestamp=sys.argv[3])
source.store = Faulty(local, on_read=stall)
copy_set(source, S3BackupStore(make_client(), S3Root(sys.argv[2], "backups"), S3Options(part_size=5 << 20)))
"""


def test_a_killed_copy_can_be_copied_again_at_once(s3_server, s3_bucket, big_db, tmp_path):
    root = tmp_path / "backups"
    made = back_up_database(big_db, "public", LocalBackupStore(root), "global", None, PLAIN)
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_COPY, str(root), s3_bucket, made.timestamp],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, **s3_server.env()},
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "stalled"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    offsite = store_on(s3_server, s3_bucket, options=SLOW_STALE)
    [dead] = offsite.list_sets()
    assert dead.status == "unfinished" and uploads(s3_server, s3_bucket) != []

    copy_set(LocalBackupStore(root).locate(timestamp=made.timestamp), offsite)
    assert [(s.timestamp, s.status) for s in offsite.list_sets()] == [(made.timestamp, "complete")]
    assert uploads(s3_server, s3_bucket) == []


def test_a_backup_cut_off_from_s3_can_be_taken_again_at_once(s3_server, s3_bucket, big_db, proxy):
    store = store_on(s3_server, s3_bucket, endpoint=proxy.url, options=SLOW_STALE)

    def cut(table: str, writes: int) -> None:
        if table == EMBEDDING_TABLE and writes == 1200:  # about 12 MB in: two parts sent, the third filling
            proxy.cut_every_connection = True

    with pytest.raises(StorageError, match="could not be reached or stopped answering"):
        back_up_database(big_db, "public", Faulty(store, on_write=cut), "global", TS, PLAIN)
    proxy.cut_every_connection = False

    again = back_up_database(big_db, "public", store, "global", TS, PLAIN)
    assert again.timestamp == TS and [(s.timestamp, s.status) for s in store.list_sets()] == [(TS, "complete")]
    assert uploads(s3_server, s3_bucket) == []


def test_a_claim_whose_set_cannot_be_checked_is_released(s3_server, s3_bucket, store_db):
    """The claim is put, then the listing that checks the set is new fails: the claim goes with the failure."""
    from botocore.exceptions import EndpointConnectionError

    store = store_on(s3_server, s3_bucket, options=SLOW_STALE)
    claimed: list[str] = []

    def note_claim(params, **_) -> None:
        if params.get("Key", "").endswith(".lock"):
            claimed.append(params["Key"])

    def fail_after_claim(**_) -> None:
        if claimed and len(claimed) == 1:
            claimed.append("listing failed")
            raise EndpointConnectionError(endpoint_url=s3_server.endpoint_url)

    store.client.meta.events.register("provide-client-params.s3.PutObject", note_claim)
    store.client.meta.events.register("before-call.s3.ListObjectsV2", fail_after_claim)
    with pytest.raises(StorageError, match="could not be reached or stopped answering"):
        back_up_database(store_db, "public", store, "global", TS)
    assert claimed[-1] == "listing failed"
    time.sleep(0.5)
    assert not [key for key in objects(s3_server, s3_bucket) if key.endswith(".lock")]
    assert back_up_database(store_db, "public", store, "global", TS).timestamp == TS


def test_an_old_system_set_that_loses_a_file_while_it_is_adopted_gets_no_manifest(s3_server, s3_bucket, store_db):
    """Adoption publishes a manifest too: a file deleted after it was read, before the manifest is put, stops it."""
    store = store_on(s3_server, s3_bucket, options=SLOW_STALE)  # no hold refresh while the files are read
    made = back_up_database(store_db, "public", store, "global", None, PLAIN)
    for key in objects(s3_server, s3_bucket):  # as the old system left its sets: plain CSVs only
        if key.endswith(".json") or "vector_backup_log/" in key:
            s3_server.client().delete_object(Bucket=s3_bucket, Key=key)
    legacy = store.locate(timestamp=made.timestamp)
    assert legacy.status == "legacy"
    embedding = store.location_key("global", legacy.table_files[EMBEDDING_TABLE])
    seen: list[str] = []

    def delete_once_read(params, model, **_) -> None:
        """Deletes the embedding file at the first call after the call that read it."""
        if model.name == "GetObject" and params.get("Key") == embedding and "IfMatch" in params:
            seen.append("read")
        elif seen == ["read"]:
            seen.append("deleted")
            s3_server.client().delete_object(Bucket=s3_bucket, Key=embedding)

    store.client.meta.events.register("provide-client-params.s3", delete_once_read)
    with pytest.raises(DataError, match=f"{legacy.table_files[EMBEDDING_TABLE]} was gone"):
        store.adopt(legacy)
    assert seen == ["read", "deleted"]
    assert store.head(store.location_key("global", manifest_name(made.timestamp))) is None
