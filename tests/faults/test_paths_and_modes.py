"""Backups and listings never follow a symlink out of the root; backup files are not world-readable."""

import os
import stat

import dagster as dg
import pytest

from pgvector_pipeline.contract import REQUEST_BACKUP_JOB, request_run_config
from pgvector_pipeline.definitions import defs
from pgvector_pipeline.errors import InvalidParams
from pgvector_pipeline.operations.backup import back_up_database
from pgvector_pipeline.resources import BackupStoreResource
from pgvector_pipeline.store.layout import GLOBAL_TASK_KEY
from pgvector_pipeline.store.local import LocalBackupStore, list_backup_sets
from tests.helpers import DSN_ENV, resources_config

TS = "20261124_180000"


@pytest.fixture
def outside(tmp_path):
    directory = tmp_path / "outside"
    (directory / "vector_bak").mkdir(parents=True)
    return directory


def files_under(directory) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())


@pytest.mark.parametrize("link", ["task_dir", "vector_bak", "global"])
def test_backup_never_writes_through_a_symlink_out_of_the_root(link, store_db, backup_root, outside):
    if link == "task_dir":
        (backup_root / "task_out").symlink_to(outside)
        task = "task_out"
    elif link == "vector_bak":
        (backup_root / "task_out").mkdir()
        (backup_root / "task_out" / "vector_bak").symlink_to(outside / "vector_bak")
        task = "task_out"
    else:
        (backup_root / "vector_bak").symlink_to(outside / "vector_bak")
        task = GLOBAL_TASK_KEY
    with pytest.raises(InvalidParams, match="is a symbolic link, not a directory: it is not followed"):
        back_up_database(store_db, "public", LocalBackupStore(backup_root), task, TS)
    assert files_under(outside) == []


def test_listing_skips_directories_and_files_that_lead_out(backup_root, outside):
    (outside / "vector_bak" / f"langchain_pg_collection_{TS}.csv").write_text("uuid,name,cmetadata\n")
    (outside / "vector_bak" / f"langchain_pg_embedding_{TS}.csv").write_text("id\n")
    (backup_root / "task_out").symlink_to(outside)
    (backup_root / "vector_bak").mkdir()
    (backup_root / "vector_bak" / f"langchain_pg_embedding_{TS}.csv").symlink_to(
        outside / "vector_bak" / f"langchain_pg_embedding_{TS}.csv"
    )
    (backup_root / "vector_bak" / f"langchain_pg_collection_{TS}.csv").write_text("uuid,name,cmetadata\n")

    sets = list_backup_sets(backup_root)

    assert [(s.task, s.status) for s in sets] == [(GLOBAL_TASK_KEY, "damaged")]
    assert sets[0].problem.endswith(
        f"langchain_pg_embedding_{TS}.csv is a symbolic link, not a regular file: it is not read."
    )


@pytest.mark.parametrize("mode", [0o600, 0o640])
def test_backup_files_get_the_configured_mode(mode, store_db, backup_root):
    old_umask = os.umask(0)  # the mode must not depend on the umask either way
    try:
        result = back_up_database(store_db, "public", LocalBackupStore(backup_root, mode), GLOBAL_TASK_KEY, TS)
    finally:
        os.umask(old_umask)
    written = [t.path for t in result.tables] + [result.manifest_path, result.log_path]
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in written} == {p.name: mode for p in written}


def test_the_file_mode_is_set_in_the_environment_and_checked(store_db, backup_root, monkeypatch):
    monkeypatch.setenv(DSN_ENV, store_db)
    monkeypatch.setenv("PGVECTOR_BACKUP_FILE_MODE", "0640")
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def(REQUEST_BACKUP_JOB).execute_in_process(
            instance=instance, run_config={**request_run_config(), **resources_config()}
        )
    assert result.success
    written = [p for p in (backup_root / "vector_bak").rglob("*") if p.is_file()]
    assert len(written) == 4 and {stat.S_IMODE(p.stat().st_mode) for p in written} == {0o640}
    for bad in ["0666", "0644", "rw-r--r--", "600x", "0o640"]:
        monkeypatch.setenv("PGVECTOR_BACKUP_FILE_MODE", bad)
        with pytest.raises(InvalidParams) as refused:
            BackupStoreResource().store()
        assert refused.value.message == (
            f"PGVECTOR_BACKUP_FILE_MODE is 0600 (owner only, the default) or 0640 (owner and group), not {bad!r}."
        )
