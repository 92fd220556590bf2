"""Object storage failing under a backup or restore, on a real S3 server (SeaweedFS): killed mid-upload and
mid-restore, connections cut during a part, wrong credentials, a missing bucket, claims racing."""

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from pgvector_pipeline.contract import RestoreFlags
from pgvector_pipeline.errors import DataError, InvalidParams, ResourceNotFound, StorageError
from pgvector_pipeline.names import EMBEDDING_TABLE
from pgvector_pipeline.operations.backup import BackupOptions, back_up_database
from pgvector_pipeline.operations.restore import restore_backup_set
from pgvector_pipeline.store.codecs import UNCOMPRESSED
from pgvector_pipeline.store.layout import lock_name
from pgvector_pipeline.store.retention import remove_interrupted_everywhere
from pgvector_pipeline.store.s3 import S3BackupStore
from pgvector_pipeline.store.s3_client import MAX_ATTEMPTS, S3Options, S3Root, make_client
from pgvector_pipeline.store.s3_lease import Lease
from pgvector_pipeline.store.s3_upload import MIN_PART_SIZE
from pgvector_pipeline.testing.db import query
from pgvector_pipeline.testing.fixtures import new_bucket
from pgvector_pipeline.testing.seaweed import ACCESS_KEY, seaweedfs_server
from pgvector_pipeline.testing.webserver import REPO_ROOT
from tests.faults.s3_stores import FAST, requests_of, store_on, uploads
from tests.faults.tcp_proxy import CuttingProxy
from tests.faulty_stores import Faulty
from tests.helpers import RecordingLog

PLAIN = BackupOptions(compression=UNCOMPRESSED)


@pytest.fixture(scope="module")
def fault_server(tmp_path_factory):
    """An S3 server of this module's own: these tests kill and restart it."""
    with seaweedfs_server(tmp_path_factory.mktemp("s3_faults")) as server:
        yield server


@pytest.fixture
def fault_bucket(fault_server) -> str:
    """A new bucket on the module's server, started again first if a test left it dead."""
    if fault_server.process.poll() is not None:
        fault_server.restart()
    return new_bucket(fault_server)


def test_server_killed_mid_upload_leaves_no_complete_set_and_the_next_run_cleans_up(fault_server, fault_bucket, big_db):
    store = store_on(fault_server, fault_bucket)

    def kill_midway(table: str, writes: int) -> None:
        if table == EMBEDDING_TABLE and writes == 1200:  # about 12 MB in: two parts uploaded, the third filling
            fault_server.kill()

    with pytest.raises(StorageError, match="could not be reached or stopped answering") as failed:
        back_up_database(big_db, "public", Faulty(store, on_write=kill_midway), "global", None, PLAIN)
    assert failed.value.can_retry
    fault_server.restart()
    [dead] = store.list_sets()
    assert dead.status == "unfinished" and not dead.complete
    assert uploads(fault_server, fault_bucket) != []  # the abort could not reach the dead server

    time.sleep(FAST.stale_after_s + 0.5)
    log = RecordingLog()
    retried = back_up_database(big_db, "public", store, "global", None, PLAIN, log=log)
    [removed] = [w for w in log.warnings if w.startswith("Removed the leftovers")]
    assert f"set {dead.timestamp}," in removed and "(unfinished upload)" in removed
    assert uploads(fault_server, fault_bucket) == []
    assert [(s.timestamp, s.status) for s in store.list_sets()] == [(retried.timestamp, "complete")]
    entries = [k["Key"] for k in store.objects(store.location_key("global", "vector_backup_log/"))]
    assert len(entries) == 2  # the interruption, then the new set


def test_server_killed_mid_restore_leaves_the_target_unchanged(fault_server, fault_bucket, big_db):
    store = store_on(fault_server, fault_bucket)
    made = back_up_database(big_db, "public", store, "global", None, PLAIN)
    before = query(big_db, "SELECT count(*), sum(length(document)) FROM langchain_pg_embedding")

    def kill_midway(table: str, reads: int) -> None:
        if table == EMBEDDING_TABLE and reads == 5:
            fault_server.kill()

    listed = store.locate(timestamp=made.timestamp)
    faulty = Faulty(store, on_read=kill_midway)

    with pytest.raises(StorageError, match="could not be reached or stopped answering"):
        restore_backup_set(
            big_db, "public", dataclasses.replace(listed, store=faulty), RestoreFlags(truncate_before_restore=True)
        )
    assert query(big_db, "SELECT count(*), sum(length(document)) FROM langchain_pg_embedding") == before
    fault_server.restart()
    again = restore_backup_set(
        big_db, "public", once_readable(store, made.timestamp), RestoreFlags(truncate_before_restore=True)
    )
    assert [t.rows_restored for t in again.tables] == [1, 2400]


def once_readable(store: S3BackupStore, timestamp: str):
    """The set, once the restarted server serves its objects again (its volumes come back a little after it
    answers: until then reads fail with a StorageError, which is what a listing then says)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return store.locate(timestamp=timestamp)
        except StorageError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_a_connection_cut_during_a_part_is_retried(fault_server, fault_bucket, big_db):
    proxy = CuttingProxy(fault_server.endpoint_url)
    try:
        store = store_on(fault_server, fault_bucket, endpoint=proxy.url)
        proxy.cut_next_after_bytes = 3 << 20  # inside the first part's body
        made = back_up_database(big_db, "public", store, "global", None, PLAIN)
        assert proxy.cuts == 1
        restored = restore_backup_set(
            big_db,
            "public",
            store.locate(timestamp=made.timestamp),
            RestoreFlags(truncate_before_restore=True, verify_only=True),
        )
        assert [t.rows_restored for t in restored.tables] == [1, 2400]

        proxy.cut_every_connection = True
        sent = requests_of(store)
        with pytest.raises(StorageError, match=f"after up to {MAX_ATTEMPTS} attempts") as failed:
            store.list_sets()
        # Bounded, no retry storm: botocore's attempts (one more may be sent where a kept-alive connection was
        # found cut).
        assert failed.value.can_retry and MAX_ATTEMPTS <= len(sent) <= MAX_ATTEMPTS + 1
    finally:
        proxy.close()


def test_wrong_credentials_fail_at_once_with_a_clear_error(s3_server, s3_bucket):
    store = store_on(s3_server, s3_bucket, aws_access_key_id=ACCESS_KEY, aws_secret_access_key="not-the-secret")
    sent = requests_of(store)
    with pytest.raises(InvalidParams, match="S3 refused the request") as refused:
        store.list_sets()
    assert "not-the-secret" not in refused.value.message and not refused.value.can_retry
    assert len(sent) == 1


def test_a_missing_bucket_is_named_and_not_retried(s3_server):
    store = store_on(s3_server, "no-such-bucket-here")
    sent = requests_of(store)
    with pytest.raises(ResourceNotFound, match="The bucket of s3://no-such-bucket-here/backups/ does not exist"):
        store.list_sets()
    assert len(sent) == 1


def test_claims_race_and_exactly_one_wins(s3_server, s3_bucket):
    store = store_on(s3_server, s3_bucket)
    key = store.location_key("global", lock_name("20261201_120000"))
    start = threading.Barrier(6)
    won: list = []

    def claim() -> None:
        start.wait()
        won.append(Lease.put(store, key, exclusive=True))

    threads = [threading.Thread(target=claim) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [lease for lease in won if lease is not None]
    assert len(winners) == 1
    winners[0].release()


def test_a_reader_is_refused_a_set_being_deleted(s3_server, s3_bucket, store_db):
    store = store_on(s3_server, s3_bucket)
    made = back_up_database(store_db, "public", store, "global", None)
    listed = store.locate(timestamp=made.timestamp)
    deleting = Lease.put(store, store.location_key("global", lock_name(made.timestamp)), exclusive=True)
    try:
        with pytest.raises(DataError, match="being deleted"):
            store.read_set(listed, list(listed.table_files)).__enter__()
    finally:
        deleting.release()
    assert [k for k in store.objects(store.location_key("global")) if k["Key"].endswith(".hold")] == []


def test_the_resource_builds_the_client_from_the_aws_variables(s3_env, s3_bucket, monkeypatch):
    from pgvector_pipeline.resources.backup_store import BackupStoreResource

    monkeypatch.setenv("PGVECTOR_BACKUP_ROOT", f"s3://{s3_bucket}/team/backups")
    store = BackupStoreResource().store()
    assert store.where == f"s3://{s3_bucket}/team/backups" and store.list_sets() == []
    assert make_client().meta.endpoint_url == s3_env["AWS_ENDPOINT_URL"]
    for bad, words in [
        ("s3://KEY:hunter2@bucket/x", "must not carry credentials"),
        ("s3://Bad_Bucket/x", "is not a bucket name"),
        (f"s3://{s3_bucket}/a/../b", "may hold only"),
    ]:
        with pytest.raises(InvalidParams, match=words) as refused:
            S3Root.parse(bad)
        assert "hunter2" not in refused.value.message


class IgnoresConditionalWrites:
    """An S3 client of a server that ignores If-None-Match on PUT (older S3-compatible servers): the real server
    behind it overwrites where it should refuse."""

    def __init__(self, client):
        self._client = client

    def put_object(self, **request):
        request.pop("IfNoneMatch", None)
        return self._client.put_object(**request)

    def __getattr__(self, name):
        return getattr(self._client, name)


def test_a_server_that_ignores_conditional_writes_is_refused_before_anything_is_written(s3_server, s3_bucket, store_db):
    store = S3BackupStore(IgnoresConditionalWrites(s3_server.client()), S3Root(s3_bucket, "backups"), FAST)
    with pytest.raises(StorageError, match="ignores If-None-Match on PUT, so it cannot make a claim atomic"):
        back_up_database(store_db, "public", store, "global", None)
    assert store.list_sets() == []
    [entry] = s3_server.client().list_objects_v2(Bucket=s3_bucket)["Contents"]  # the failure, in the log
    assert "/vector_bak/vector_backup_log/" in entry["Key"]


KILLED_CHILD = """
import sys, time
from pgvector_pipeline.operations.backup import BackupOptions, back_up_database
from pgvector_pipeline.store.codecs import UNCOMPRESSED
from pgvector_pipeline.store.retention import remove_interrupted_everywhere
from pgvector_pipeline.store.s3 import S3BackupStore
from pgvector_pipeline.store.s3_client import S3Options, S3Root, make_client
from tests.faulty_stores import Faulty

def stall(table, writes):
    if table == "langchain_pg_embedding" and writes == 1200:  # two parts uploaded, the third filling
        print("stalled", flush=True)
        time.sleep(3600)

store = S3BackupStore(make_client(), S3Root(sys.argv[2], "backups"), S3Options(part_size=5 << 20, refresh_s=0.2, stale_after_s=2))
back_up_database(sys.argv[1], "public", Faulty(store, on_write=stall), "global", None, BackupOptions(compression=UNCOMPRESSED))
"""


def test_a_killed_backup_process_is_cleaned_up_by_retention_at_once(fault_server, fault_bucket, big_db):
    """While the backup process lives its claim is kept; once it is killed, a run on the same machine knows its owner
    is gone and removes its leftovers at once, without waiting for the claim to go stale."""
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_CHILD, big_db, fault_bucket],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, **fault_server.env()},
    )
    store = store_on(fault_server, fault_bucket, options=S3Options(part_size=MIN_PART_SIZE))
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "stalled"
        assert remove_interrupted_everywhere(store, print) == []  # its owner lives
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    [dead] = store.list_sets()
    assert dead.status == "unfinished" and uploads(fault_server, fault_bucket) != []

    said: list[str] = []
    [removed] = remove_interrupted_everywhere(store, said.append)  # its claim is fresh, but its owner is gone
    assert (
        removed.timestamp == dead.timestamp
        and f"set {dead.timestamp} in s3://{fault_bucket}/backups/vector_bak" in said[0]
    )
    assert store.list_sets() == [] and uploads(fault_server, fault_bucket) == []
