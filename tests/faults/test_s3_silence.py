"""An S3 endpoint that stops answering fails the run within a minute, with STORAGE_ERROR (can_retry), whatever the
run was doing (issue 31, item 12): every call is bounded (connect and read timeouts, a few attempts), and the
clean-up after such a failure does not wait on the silent endpoint again. The clients here are the deployment's
own (make_client, the standard AWS variables), pointed at a proxy that stalls or at a server that never answers."""

import dataclasses
import json
import time

import pytest

from pgvector_pipeline.contract import RestoreFlags
from pgvector_pipeline.errors import StorageError
from pgvector_pipeline.names import EMBEDDING_TABLE
from pgvector_pipeline.operations.backup import BackupOptions, back_up_database
from pgvector_pipeline.operations.restore import restore_backup_set
from pgvector_pipeline.store.codecs import UNCOMPRESSED
from pgvector_pipeline.store.s3 import S3BackupStore
from pgvector_pipeline.store.s3_client import S3Options, S3Root, make_client
from pgvector_pipeline.store.s3_upload import MIN_PART_SIZE
from pgvector_pipeline.testing.db import query
from tests.faults.s3_stores import store_on
from tests.faults.tcp_proxy import CuttingProxy, SilentServer
from tests.faulty_stores import Faulty
from tests.helpers import direct

PLAIN = BackupOptions(compression=UNCOMPRESSED)
# What the README promises for an endpoint that stops answering: the run fails within a minute.
A_MINUTE = 60


@pytest.fixture
def stalling(s3_server, s3_env):
    """A proxy in front of the session's S3 server that can stall, and the store of a new bucket through it with
    the deployment's client."""
    proxy = CuttingProxy(s3_server.endpoint_url)
    yield proxy
    proxy.resume()
    proxy.close()


def through(proxy: CuttingProxy, bucket: str) -> S3BackupStore:
    return S3BackupStore(make_client(proxy.url), S3Root(bucket, "backups"), S3Options(part_size=MIN_PART_SIZE))


def test_a_silent_endpoint_fails_a_direct_listing_within_a_minute(s3_server):
    silent = SilentServer()
    try:
        start = time.monotonic()
        listed = direct(
            "--root",
            "s3://any-bucket/backups",
            "list",
            "--json",
            env={**s3_server.env(), "AWS_ENDPOINT_URL": silent.url},
        )
        took = time.monotonic() - start
    finally:
        silent.close()
    failure = json.loads(listed.stdout)
    assert (failure["status"], failure["error_type"], failure["can_retry"]) == ("FAILURE", "STORAGE_ERROR", True)
    assert failure["error_message"].startswith(
        "S3 at s3://any-bucket/backups/ could not be reached or stopped answering while listing"
    )
    assert listed.returncode == 1 and took < A_MINUTE, took


def test_a_backup_whose_endpoint_stops_answering_mid_upload_fails_within_a_minute(s3_bucket, big_db, stalling):
    stalled_at: list[float] = []

    def stall(table: str, writes: int) -> None:
        if table == EMBEDDING_TABLE and writes == 1200:  # about 12 MB in: two parts sent, the third filling
            stalled_at.append(time.monotonic())
            stalling.stall()

    with pytest.raises(StorageError, match="could not be reached or stopped answering") as failed:
        back_up_database(big_db, "public", Faulty(through(stalling, s3_bucket), on_write=stall), "global", None, PLAIN)
    took = time.monotonic() - stalled_at[0]
    assert failed.value.can_retry and took < A_MINUTE, took


def test_a_restore_whose_endpoint_stops_answering_mid_stream_fails_within_a_minute(
    s3_server, s3_bucket, big_db, stalling
):
    made = back_up_database(big_db, "public", store_on(s3_server, s3_bucket), "global", None, PLAIN)
    before = query(big_db, "SELECT count(*), sum(length(document)) FROM langchain_pg_embedding")
    store = through(stalling, s3_bucket)
    stalled_at: list[float] = []

    def stall(table: str, reads: int) -> None:
        if table == EMBEDDING_TABLE and reads == 5:
            stalled_at.append(time.monotonic())
            stalling.stall()

    listed = store.locate(timestamp=made.timestamp)
    with pytest.raises(StorageError, match="could not be reached or stopped answering") as failed:
        restore_backup_set(
            big_db,
            "public",
            dataclasses.replace(listed, store=Faulty(store, on_read=stall)),
            RestoreFlags(truncate_before_restore=True),
        )
    took = time.monotonic() - stalled_at[0]
    assert failed.value.can_retry and took < A_MINUTE, took
    assert query(big_db, "SELECT count(*), sum(length(document)) FROM langchain_pg_embedding") == before
