"""Every start gets its own set: claims are atomic in the target directory; refusals are clear and logged. An S3
claim's owner is known gone when its process on this machine is."""

import subprocess
import sys
import threading

import pytest

from pgvector_pipeline.errors import InvalidParams
from pgvector_pipeline.operations.backup import back_up_database
from pgvector_pipeline.store.backup_set import SetLock
from pgvector_pipeline.store.layout import GLOBAL_TASK_KEY, LOG_FILE_NAME
from pgvector_pipeline.store.local import LocalBackupStore, list_backup_sets
from pgvector_pipeline.store.locations import open_location
from pgvector_pipeline.store.s3_lease import LeaseState, owner_gone, this_process
from pgvector_pipeline.testing.db import execute
from pgvector_pipeline.testing.langchain_tables import insert_sample_store

TS = "20261124_210000"
STARTS = 4


def test_backups_started_at_once_claim_distinct_complete_sets(store_db, backup_root):
    execute(
        store_db,
        lambda cur: insert_sample_store(cur, "public", collections=1, embeddings_per_collection=300, dimension=8),
    )
    barrier = threading.Barrier(STARTS)
    results, errors = [], []

    def start() -> None:
        barrier.wait()
        try:
            results.append(back_up_database(store_db, "public", LocalBackupStore(backup_root), GLOBAL_TASK_KEY, None))
        except Exception as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(STARTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    assert len({r.timestamp for r in results}) == STARTS
    sets = list_backup_sets(backup_root)
    assert sorted(s.timestamp for s in sets) == sorted(r.timestamp for r in results)
    assert all(s.status == "complete" and s.rows("langchain_pg_embedding") == 300 for s in sets)


def test_the_loser_of_a_race_for_a_named_set_is_told_why_and_it_is_logged(store_db, backup_root):
    directory = backup_root / "vector_bak"
    directory.mkdir()
    winner = SetLock.try_acquire(open_location(backup_root, GLOBAL_TASK_KEY), TS, 0o600)  # another run holds the set
    try:
        with pytest.raises(InvalidParams) as failure:
            back_up_database(store_db, "public", LocalBackupStore(backup_root), GLOBAL_TASK_KEY, TS)
    finally:
        winner.release()
    assert failure.value.message.startswith(f"Another run is writing set {TS} in {directory} right now.")
    assert not failure.value.can_retry
    log = (directory / LOG_FILE_NAME).read_text()
    assert f"backup {TS} FAILED (task global" in log and "Another run is writing set" in log


def test_refusing_an_existing_set_is_logged(store_db, backup_root):
    back_up_database(store_db, "public", LocalBackupStore(backup_root), GLOBAL_TASK_KEY, TS)
    with pytest.raises(InvalidParams, match="already exists"):
        back_up_database(store_db, "public", LocalBackupStore(backup_root), GLOBAL_TASK_KEY, TS)
    log = (backup_root / "vector_bak" / LOG_FILE_NAME).read_text()
    assert log.count(f"backup {TS} OK") == 1 and log.count(f"backup {TS} FAILED") == 1
    assert "Backups never overwrite" in log


# An S3 claim names the process that owns it (store.s3_lease): a run on the same machine knows at once when that
# process is gone. Real processes here: one that lives, one that has ended.
OWN_IDENTITY = "from pgvector_pipeline.store.s3_lease import this_process; print(this_process(), flush=True)"


def claim_of(process: str | None, token: str = "t") -> LeaseState:
    return LeaseState('"etag"', None, {"token": token, "process": process})


def test_a_claims_owner_is_gone_only_when_its_process_on_this_machine_is():
    ended = subprocess.run([sys.executable, "-c", OWN_IDENTITY], capture_output=True, text=True, check=True)
    living = subprocess.Popen(
        [sys.executable, "-c", OWN_IDENTITY + "; import time; time.sleep(60)"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert living.stdout is not None
        assert not owner_gone(claim_of(living.stdout.readline().strip()))
        assert owner_gone(claim_of(ended.stdout.strip()))
    finally:
        living.kill()
        living.wait()
    mine = this_process()
    assert mine is not None
    boot, namespace, pid, start = mine.split(":")
    another_boot = "0" * 8 + boot[8:]
    # Another machine, another container (pid namespace), a body that is not ours: cannot tell, so not gone.
    for process in (f"{another_boot}:{namespace}:{pid}:{start}", f"{boot}:1:{pid}:{start}", "pid 1", None):
        assert not owner_gone(claim_of(process))
    # This very process: gone only for a lease it does not hold (one held is in the live leases, tested on S3).
    assert owner_gone(claim_of(mine, token="not-a-lease-of-this-process"))
