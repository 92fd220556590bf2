"""Backup runs killed with SIGKILL: their leftovers are listed, removed at once by the next run into the
directory (the same timestamp can be retried), and logged; a live writer's files are never touched."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pgvector_pipeline.operations.backup import back_up_database
from pgvector_pipeline.store.backup_set import SetLock
from pgvector_pipeline.store.codecs import DEFAULT_COMPRESSION
from pgvector_pipeline.store.layout import GLOBAL_TASK_KEY, LOG_FILE_NAME
from pgvector_pipeline.store.local import LocalBackupStore, list_backup_sets
from pgvector_pipeline.store.locations import open_location
from pgvector_pipeline.testing.db import execute
from pgvector_pipeline.testing.langchain_tables import insert_sample_store

TS = "20261124_140000"
REPO_ROOT = Path(__file__).resolve().parents[2]

# Runs a backup; with "commit" it stops for good inside publish, after the CSVs were renamed and
# before the manifest was, so the kill lands mid-commit.
CHILD = """
import sys, time
from pathlib import Path
from pgvector_pipeline.operations.backup import back_up_database
from pgvector_pipeline.store.local import LocalBackupStore
from pgvector_pipeline.store.directory import Directory

if sys.argv[4] == "commit":
    real_fsync = Directory.fsync
    def stall_after_csvs(directory):
        if list(directory.path.glob("vector_backup_*.json.tmp")):
            print("STALLED", flush=True)
            time.sleep(600)
        real_fsync(directory)
    Directory.fsync = stall_after_csvs
back_up_database(sys.argv[1], "public", LocalBackupStore(Path(sys.argv[2])), "global", sys.argv[3])
"""


# The suffix of files the default compression writes.
STORED = DEFAULT_COMPRESSION.suffix


def start_backup(dsn: str, root: Path, moment: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, dsn, str(root), TS, moment], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True
    )


def wait_for(condition, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.mark.parametrize("moment", ["export", "commit"])
def test_killed_backup_leaves_nothing_that_blocks_a_retry(store_db, backup_root, moment):
    execute(
        store_db,
        lambda cur: insert_sample_store(cur, "public", collections=1, embeddings_per_collection=20000, dimension=64),
    )
    directory = backup_root / "vector_bak"
    child = start_backup(store_db, backup_root, moment)
    partial = directory / f"langchain_pg_embedding_{TS}.csv{STORED}.tmp"
    if moment == "export":
        wait_for(lambda: partial.exists() and partial.stat().st_size > 1_000_000, "a partial embedding CSV")
    else:
        wait_for(lambda: child.stdout.readline().strip() == "STALLED", "the commit to stall")
    os.kill(child.pid, signal.SIGKILL)
    child.wait()

    [unfinished] = list_backup_sets(backup_root)
    assert (unfinished.timestamp, unfinished.status, unfinished.complete) == (TS, "unfinished", False)
    assert unfinished.total_bytes > 1_000_000
    leftovers = sorted(p.name for p in directory.iterdir())
    assert f"vector_backup_{TS}.lock" in leftovers

    result = back_up_database(store_db, "public", LocalBackupStore(backup_root), GLOBAL_TASK_KEY, TS)

    assert result.table("langchain_pg_embedding").rows == 20000
    [listed] = list_backup_sets(backup_root)
    assert (listed.timestamp, listed.status) == (TS, "complete")
    assert sorted(p.name for p in directory.iterdir()) == sorted(
        [
            LOG_FILE_NAME,
            f"langchain_pg_collection_{TS}.csv{STORED}",
            f"langchain_pg_embedding_{TS}.csv{STORED}",
            f"vector_backup_{TS}.json",
        ]
    )
    log = (directory / LOG_FILE_NAME).read_text()
    assert f"backup {TS} INTERRUPTED (found by a later backup into {directory})" in log
    assert log.index("INTERRUPTED") < log.index(f"backup {TS} OK")


def test_a_live_writers_files_are_never_removed(store_db, backup_root):
    directory = backup_root / "vector_bak"
    directory.mkdir()
    live_ts = "20261124_135900"
    lock = SetLock.try_acquire(open_location(backup_root, GLOBAL_TASK_KEY), live_ts, 0o600)
    assert lock is not None
    partial = directory / f"langchain_pg_embedding_{live_ts}.csv.tmp"
    partial.write_bytes(b"still being written")
    old = time.time() - 7200  # far older than any age rule would allow
    os.utime(partial, (old, old))
    try:
        back_up_database(store_db, "public", LocalBackupStore(backup_root), GLOBAL_TASK_KEY, TS)
        assert partial.read_bytes() == b"still being written"
        assert (directory / f"vector_backup_{live_ts}.lock").exists()
        statuses = {s.timestamp: s.status for s in list_backup_sets(backup_root)}
        assert statuses == {TS: "complete", live_ts: "unfinished"}
        with pytest.raises(Exception, match=f"Another run is writing set {live_ts}"):
            back_up_database(store_db, "public", LocalBackupStore(backup_root), GLOBAL_TASK_KEY, live_ts)
    finally:
        lock.release()


# A session of this tool that runs a long statement, as an index build does: killed with SIGKILL while it runs.
LONG_STATEMENT = """
import sys
from pgvector_pipeline.postgres.connection import connect
conn = connect(sys.argv[1], application_name="pgvector_pipeline_killed")
cur = conn.cursor()
print("RUNNING", flush=True)
cur.execute("SELECT pg_catalog.pg_sleep(120)")
"""


def test_a_killed_clients_server_session_ends_within_seconds(store_db):
    """PostgreSQL notices a dead client only when it next talks to it; our sessions ask it to look every second
    (client_connection_check_interval), so an index build of a killed restore stops holding writers off."""
    child = subprocess.Popen(
        [sys.executable, "-c", LONG_STATEMENT, store_db], stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "RUNNING"
    sessions = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgvector_pipeline_killed'"
    deadline = time.monotonic() + 10
    while execute(store_db, lambda cur: cur.execute(sessions) or cur.fetchone()[0]) == 0:
        assert time.monotonic() < deadline
        time.sleep(0.05)

    child.send_signal(signal.SIGKILL)
    child.wait()
    killed_at = time.monotonic()
    while execute(store_db, lambda cur: cur.execute(sessions) or cur.fetchone()[0]) != 0:
        assert time.monotonic() - killed_at < 15, "the dead client's session went on running its statement"
        time.sleep(0.2)
