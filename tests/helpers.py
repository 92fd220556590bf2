"""Helpers shared by test modules: Dagster runs in process, and a log that records what it is told."""

import csv
import gzip
import io
import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import zstandard

from pgvector_pipeline.assets.backup import ASSET_BY_TABLE
from pgvector_pipeline.contract import BACKUP_JOB, DEFAULT_DSN_ENV, backup_run_config
from pgvector_pipeline.definitions import defs
from pgvector_pipeline.operations.backup import BackupOptions
from pgvector_pipeline.partitions import register_backup_partition
from pgvector_pipeline.store.codecs import UNCOMPRESSED
from pgvector_pipeline.store.layout import new_timestamp
from pgvector_pipeline.store.local import LocalBackupStore
from pgvector_pipeline.store.roots import BACKUP_ROOT_ENV

# The database comes from an environment variable named in run config: no DSN or password in config.
DSN_ENV = DEFAULT_DSN_ENV
# Backups whose files are the plain CSVs, for tests that change a file's bytes or read them as the old system would.
PLAIN_CSV = BackupOptions(compression=UNCOMPRESSED)


def csv_of(path: Path) -> bytes:
    """The CSV a set's file holds, decompressed by its suffix (.csv, .csv.zst, .csv.gz)."""
    data = Path(path).read_bytes()
    if path.name.endswith(".zst"):
        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    return gzip.decompress(data) if path.name.endswith(".gz") else data


def read_csv_rows(path: Path) -> list[dict]:
    """The rows of a set's file (any codec) as dicts by header name."""
    return list(csv.DictReader(io.StringIO(csv_of(path).decode("utf-8"), newline="")))


def local_store(backup_set) -> LocalBackupStore:
    """The local store a listed set is in: where its files are is the store's business (BackupSetInfo.location)."""
    assert isinstance(backup_set.store, LocalBackupStore), f"a set of a local store, not of {backup_set.store!r}"
    return backup_set.store


def set_directory(backup_set) -> Path:
    """The directory of a set of a local store."""
    return local_store(backup_set).set_directory(backup_set)


def set_files(backup_set) -> dict[str, Path]:
    """The files of a set of a local store, by table."""
    return local_store(backup_set).set_files(backup_set)


def manifest_path(backup_set) -> Path:
    """The manifest of a set of a local store."""
    return local_store(backup_set).manifest_path(backup_set)


def recent_timestamp() -> str:
    """A set timestamp a backup run accepts (runs refuse sets stamped far from the time they run)."""
    return new_timestamp()


def recent_timestamps(count: int) -> list[str]:
    """`count` distinct timestamps of the last seconds, from one reading of the clock."""
    now = datetime.now()
    return [new_timestamp(now - timedelta(seconds=n)) for n in range(count)]


def flip_a_digit(data: bytes) -> bytes:
    """CSV bytes with one digit of a vector changed: still valid CSV, same size, another value."""
    position = data.index(b"0.", len(data) // 2) + 2
    digit = data[position : position + 1]
    return data[:position] + (b"1" if digit != b"1" else b"2") + data[position + 1 :]


def resources_config(dsn: dict | str | None = None) -> dict:
    """Run config of the pgvector resource; `dsn` is the dsn config ({"env": VAR} by default, or a literal).
    The backup root comes from PGVECTOR_BACKUP_ROOT (the backup_root fixture sets it)."""
    return {"resources": {"pgvector": {"config": {"dsn": dsn if dsn is not None else {"env": DSN_ENV}}}}}


def backup_materializations(result) -> dict:
    """The materializations of the two backup assets in a run's result, by asset key (a backup run also
    materializes the inventory)."""
    backup_assets = set(ASSET_BY_TABLE.values())
    return {
        e.asset_key: e.materialization
        for e in result.get_asset_materialization_events()
        if e.asset_key in backup_assets
    }


def run_backup_job(instance, backup_root, dsn=None, *, partition_key=None, tags=None, **backup_config):
    """vector_backup_job in process with `backup_root` as PGVECTOR_BACKUP_ROOT, not raising on failure."""
    saved = os.environ.get(BACKUP_ROOT_ENV)
    os.environ[BACKUP_ROOT_ENV] = str(backup_root)
    try:
        return defs.resolve_job_def(BACKUP_JOB).execute_in_process(
            instance=instance,
            partition_key=partition_key,
            tags=tags,
            run_config={**backup_run_config(**backup_config), **resources_config(dsn)},
            raise_on_error=False,
        )
    finally:
        if saved is None:
            os.environ.pop(BACKUP_ROOT_ENV, None)
        else:
            os.environ[BACKUP_ROOT_ENV] = saved


def run_backup(instance, backup_root, task: str, timestamp: str, **backup_config):
    """Register the set's partition, then back it up through vector_backup_job."""
    key = register_backup_partition(instance, task, timestamp)
    return run_backup_job(instance, backup_root, partition_key=key, **backup_config)


class RecordingLog:
    """A Log that keeps what it was told (the pipeline's functions take any object with info/warning)."""

    def __init__(self):
        self.infos: list[str] = []
        self.warnings: list[str] = []

    def info(self, msg: str) -> None:
        self.infos.append(msg)

    def warning(self, msg: str) -> None:
        self.warnings.append(msg)


def retain_newest(backup_root, keep: int, log: "RecordingLog"):
    """apply_retention (not a dry run) keeping the newest `keep` sets per location, logging into `log`."""
    from pgvector_pipeline.store.local import list_backup_sets
    from pgvector_pipeline.store.retention import RetentionPolicy, apply_retention

    return apply_retention(
        list_backup_sets(backup_root),
        RetentionPolicy(keep_newest=keep),
        dry_run=False,
        log_info=log.info,
        warn=log.warning,
    )


def rewrite_csv_keeping_manifest_consistent(backup_set, table: str, transform) -> None:
    """Change a CSV and update its manifest entry, as if the set had been written that way."""
    import hashlib
    import json

    path = set_files(backup_set)[table]
    data = transform(path.read_bytes())
    path.write_bytes(data)
    manifest = json.loads(manifest_path(backup_set).read_text())
    digest = hashlib.sha256(data).hexdigest()
    manifest["tables"][table].update(bytes=len(data), sha256=digest, stored_bytes=len(data), stored_sha256=digest)
    manifest_path(backup_set).write_text(json.dumps(manifest))
    backup_set.manifest = backup_set.store.locate(task_id=backup_set.task, timestamp=backup_set.timestamp).manifest


def direct(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """`pgvector-pipeline --direct ARGS` in a fresh process, with only `env` added to a clean environment."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PGVECTOR_", "DAGSTER_"))}
    return subprocess.run(
        [sys.executable, "-m", "pgvector_pipeline.entry_points.cli", "--port", "9", "--direct", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
