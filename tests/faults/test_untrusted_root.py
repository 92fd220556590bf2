"""Whatever is planted in the backup root (symlinks, FIFOs, directories named like files) is never followed,
opened, written through or chmod-ed, and no listing, backup or restore hangs on it."""

import os
import stat
import threading

import pytest

from pgvector_pipeline.contract import RestoreFlags
from pgvector_pipeline.errors import DataError
from pgvector_pipeline.operations.backup import back_up_database
from pgvector_pipeline.operations.restore import restore_backup_set
from pgvector_pipeline.store.layout import GLOBAL_TASK_KEY, LOG_FILE_NAME
from pgvector_pipeline.store.local import LocalBackupStore, list_backup_sets, locate_backup_set
from pgvector_pipeline.store.retention import RetentionPolicy, apply_retention
from pgvector_pipeline.testing.db import query
from tests.helpers import RecordingLog, retain_newest, set_files
from tests.stores import make_store

OLD = "20261120_100000"
TS = "20261125_160000"
NEXT = "20261125_160100"
SECRET = "TOPSECRET-first-line"
GIVE_UP_S = 30


@pytest.fixture
def store(empty_db):
    from pgvector_pipeline.names import LANGCHAIN_POSTGRES

    make_store(empty_db, LANGCHAIN_POSTGRES, dimension=3)
    return empty_db


@pytest.fixture
def outside(tmp_path):
    directory = tmp_path / "outside"
    directory.mkdir()
    return directory


def finishes(work):
    """`work()`'s result, or an AssertionError when it is still running after GIVE_UP_S (a hang)."""
    outcome: dict = {}

    def run():
        try:
            outcome["result"] = work()
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(GIVE_UP_S)
    assert not thread.is_alive(), f"hung for {GIVE_UP_S} s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def test_a_lock_file_that_is_a_symlink_is_never_followed_or_chmod_ed(store, backup_root, outside):
    binary = outside / "passwd"
    binary.write_text("#!/bin/sh\n")
    os.chmod(binary, 0o4755)
    directory = backup_root / "vector_bak"
    directory.mkdir()
    (directory / f"vector_backup_{OLD}.lock").symlink_to(binary)
    (directory / f"vector_backup_{OLD}.json.lock").symlink_to(outside / "created_by_open")  # dangling

    back_up_database(store, "public", LocalBackupStore(backup_root), GLOBAL_TASK_KEY, TS)

    assert stat.S_IMODE(binary.stat().st_mode) == 0o4755 and binary.read_text() == "#!/bin/sh\n"
    assert sorted(p.name for p in outside.iterdir()) == ["passwd"]
    assert (directory / f"vector_backup_{OLD}.lock").is_symlink()
    statuses = {s.timestamp: (s.status, s.problem) for s in list_backup_sets(backup_root)}
    assert statuses[TS] == ("complete", None)
    assert statuses[OLD][0] == "damaged" and "is a symbolic link, not a regular file" in statuses[OLD][1]


def test_a_log_that_is_a_symlink_is_never_written_through(store, backup_root, outside):
    target = outside / "elsewhere.txt"
    target.write_text("not a log\n")
    directory = backup_root / "vector_bak"
    directory.mkdir()
    (directory / LOG_FILE_NAME).symlink_to(target)
    log = RecordingLog()

    back_up_database(store, "public", LocalBackupStore(backup_root), GLOBAL_TASK_KEY, TS, log=log)
    retain_newest(backup_root, 1, log)

    assert target.read_text() == "not a log\n"
    assert any("Could not append to" in w and "not a regular file" in w for w in log.warnings), log.warnings


def test_a_task_directory_swapped_for_a_symlink_after_the_claim_does_not_redirect_the_set(
    store, backup_root, outside, tmp_path
):
    (backup_root / "task_x").mkdir()

    def swap(timestamp):
        (backup_root / "task_x").rename(tmp_path / "moved")
        (backup_root / "task_x").symlink_to(outside)

    back_up_database(store, "public", LocalBackupStore(backup_root), "task_x", TS, on_claim=swap)

    assert list(outside.iterdir()) == []
    written = sorted(p.name for p in (tmp_path / "moved" / "vector_bak").iterdir())
    assert f"vector_backup_{TS}.json" in written


def test_a_csv_swapped_for_a_symlink_after_listing_is_not_read(store, backup_root, outside):
    result = back_up_database(store, "public", LocalBackupStore(backup_root), GLOBAL_TASK_KEY, TS)
    backup_set = locate_backup_set(backup_root, timestamp=TS)
    secret = outside / "secret.txt"
    secret.write_text(SECRET + "\nmore\n")
    csv = set_files(backup_set)["langchain_pg_embedding"]
    csv.unlink()
    csv.symlink_to(secret)

    with pytest.raises(DataError) as failure:
        restore_backup_set(store, "public", backup_set, RestoreFlags(truncate_before_restore=True))

    assert "is a symbolic link, not a regular file" in failure.value.message
    assert SECRET not in failure.value.message
    assert (
        query(store, "SELECT count(*) FROM langchain_pg_embedding")[0][0] == result.table("langchain_pg_embedding").rows
    )


@pytest.mark.parametrize("planted", [f"vector_backup_{OLD}.json", LOG_FILE_NAME, f"langchain_pg_embedding_{OLD}.csv"])
def test_a_fifo_never_hangs_listing_or_backups(planted, store, backup_root):
    directory = backup_root / "vector_bak"
    directory.mkdir()
    os.mkfifo(directory / planted)
    if planted != LOG_FILE_NAME:
        (directory / f"langchain_pg_collection_{OLD}.csv").write_text("uuid,name,cmetadata\n")

    sets = finishes(lambda: list_backup_sets(backup_root))
    finishes(lambda: back_up_database(store, "public", LocalBackupStore(backup_root), GLOBAL_TASK_KEY, TS))

    if planted != LOG_FILE_NAME:
        [old] = [s for s in sets if s.timestamp == OLD]
        assert old.status == "damaged" and "is a FIFO (named pipe), not a regular file" in old.problem
    assert [s.status for s in finishes(lambda: list_backup_sets(backup_root)) if s.timestamp == TS] == ["complete"]


def test_a_lock_name_that_is_a_directory_does_not_break_backups(store, backup_root):
    directory = backup_root / "vector_bak"
    (directory / f"vector_backup_{OLD}.lock").mkdir(parents=True)
    (directory / f"vector_backup_{NEXT}.lock").mkdir()

    back_up_database(store, "public", LocalBackupStore(backup_root), GLOBAL_TASK_KEY, TS)
    claimed = back_up_database(store, "public", LocalBackupStore(backup_root), GLOBAL_TASK_KEY, None)

    assert claimed.timestamp != NEXT
    assert {s.timestamp: s.status for s in list_backup_sets(backup_root)}[TS] == "complete"


def test_a_planted_csv_is_never_quoted_in_messages(store, backup_root):
    directory = backup_root / "vector_bak"
    directory.mkdir()
    (directory / f"langchain_pg_collection_{OLD}.csv").write_text("uuid,name,cmetadata\n")
    (directory / f"langchain_pg_embedding_{OLD}.csv").write_text(f"{SECRET} with spaces,id\nx,y\n")

    with pytest.raises(DataError) as failure:
        restore_backup_set(
            store, "public", locate_backup_set(backup_root, timestamp=OLD), RestoreFlags(allow_legacy=True)
        )

    assert "is not a list of column names: 1 of its 2 fields are not plain identifiers" in failure.value.message
    assert SECRET not in failure.value.message


def test_retention_of_a_set_whose_file_became_a_symlink_removes_the_link_only(store, backup_root, outside):
    back_up_database(store, "public", LocalBackupStore(backup_root), GLOBAL_TASK_KEY, OLD)
    back_up_database(store, "public", LocalBackupStore(backup_root), GLOBAL_TASK_KEY, TS)
    sets = list_backup_sets(backup_root)
    precious = outside / "precious.txt"
    precious.write_text("keep me\n")
    old_csv = backup_root / "vector_bak" / f"langchain_pg_embedding_{OLD}.csv.zst"
    old_csv.unlink()
    old_csv.symlink_to(precious)

    result = apply_retention(sets, RetentionPolicy(keep_newest=1), dry_run=False, log_info=print, warn=print)

    assert [s.timestamp for s in result.deleted] == [OLD]
    assert not old_csv.is_symlink() and precious.read_text() == "keep me\n"
    assert [s.timestamp for s in list_backup_sets(backup_root)] == [TS]


@pytest.mark.parametrize("planted", [LOG_FILE_NAME, f"vector_backup_{OLD}.json"])
def test_a_device_named_like_a_log_or_manifest_is_never_read(planted, store, backup_root):
    directory = backup_root / "vector_bak"
    directory.mkdir()
    try:
        os.mknod(directory / planted, stat.S_IFCHR | 0o600, os.makedev(1, 5))  # what /dev/zero is
    except PermissionError:
        pytest.skip("creating a device node needs root")
    for table in ("langchain_pg_collection", "langchain_pg_embedding"):
        (directory / f"{table}_{OLD}.csv").write_text("id\n")
    log = RecordingLog()

    sets = finishes(lambda: list_backup_sets(backup_root))
    finishes(lambda: back_up_database(store, "public", LocalBackupStore(backup_root), GLOBAL_TASK_KEY, TS, log=log))

    if planted == LOG_FILE_NAME:
        assert any("is a character device, not a regular file" in w for w in log.warnings), log.warnings
    else:
        [old] = [s for s in sets if s.timestamp == OLD]
        assert old.status == "damaged" and "is a character device, not a regular file" in old.problem
