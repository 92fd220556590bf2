"""Fault fixtures: a proxy that drops connections mid-COMMIT, a small real disk that fills up."""

import subprocess
import uuid

import pytest

from tests.faults.proxy import DroppingProxy


@pytest.fixture
def proxy(store_db):
    """A DroppingProxy in front of the store database; `proxy.dsn` connects through it."""
    dropping = DroppingProxy(store_db)
    yield dropping
    dropping.close()


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs mounted for this test: a real file system that runs out of space (needs root)."""
    mount = tmp_path / f"disk_{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


class RecordingLog:
    """A Log that keeps what it was told (the pipeline's functions take any object with info/warning)."""

    def __init__(self):
        self.infos: list[str] = []
        self.warnings: list[str] = []

    def info(self, msg: str) -> None:
        self.infos.append(msg)

    def warning(self, msg: str) -> None:
        self.warnings.append(msg)


def run_backup_job(instance, backup_root, dsn, *, partition_key=None, tags=None, **backup_config):
    """vector_backup_job in process; `dsn` is the resource's dsn config ({"env": VAR}, or a literal)."""
    from pgvector_pipeline.definitions import defs
    from pgvector_pipeline.jobs.backup import BACKUP_JOB_NAME, backup_run_config

    return defs.resolve_job_def(BACKUP_JOB_NAME).execute_in_process(
        instance=instance,
        partition_key=partition_key,
        tags=tags,
        run_config={
            **backup_run_config(**backup_config),
            "resources": {
                "pgvector": {"config": {"dsn": dsn}},
                "backup_store": {"config": {"root": str(backup_root)}},
            },
        },
        raise_on_error=False,
    )
