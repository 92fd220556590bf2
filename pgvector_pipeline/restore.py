"""Restore a backup set into a database: verify everything first, then load in one transaction.
Plain Python: the Dagster resource calls this, and so can any other tool."""

import csv
import io
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from pgvector_pipeline.backup import Log
from pgvector_pipeline.errors import DataError, InvalidParams, ResourceNotFound
from pgvector_pipeline.postgres.catalog import BACKUP_TABLES
from pgvector_pipeline.postgres.connection import connect, redact_dsn
from pgvector_pipeline.postgres.restore import TableLoad, TableRestoreStats, restore_tables
from pgvector_pipeline.store.files import sha256_file
from pgvector_pipeline.store.legacy import JsonRepairingCsvStream
from pgvector_pipeline.store.listing import BackupSetInfo


@dataclass(frozen=True)
class RestoreResult:
    backup_set: BackupSetInfo
    target: str
    tables: list[TableRestoreStats]
    created: list[str]
    verify_only: bool
    duration_s: float


def check_restore_tables(tables: list[str]) -> list[str]:
    unknown = [t for t in tables if t not in BACKUP_TABLES]
    if unknown or not tables:
        raise InvalidParams(f"Cannot restore {unknown or 'no tables'}: choose one or both of {list(BACKUP_TABLES)}.")
    return [t for t in BACKUP_TABLES if t in tables]


def restore_backup_set(
    dsn: str,
    schema: str,
    backup_set: BackupSetInfo,
    *,
    tables: list[str] = BACKUP_TABLES,
    truncate_before_restore: bool = False,
    verify_only: bool = False,
    create_missing: bool = False,
    log: Log | None = None,
) -> RestoreResult:
    """Restore `tables` of the set. With `verify_only` the whole load runs and is then rolled back."""
    log = log or logging.getLogger(__name__)
    clock = time.monotonic()
    tables = check_restore_tables(list(tables))
    _check_set_files(backup_set, tables)
    if backup_set.manifest:
        _verify_checksums(backup_set, tables, log)
    else:
        log.warning(
            f"Set {backup_set.timestamp} in {backup_set.directory} has no manifest (made by the old system): "
            f"no checksums to verify; JSON columns written as Python reprs are converted while loading."
        )
    if create_missing and not backup_set.manifest:
        raise InvalidParams(
            "create_missing needs the table DDL from a manifest, and this set has none. Create the tables in "
            "the target first (LangChain creates them on first use), then restore without create_missing."
        )
    loads = [_table_load(backup_set, table) for table in tables]
    ddl = (
        {t: (entry["create_table"], entry["indexes"]) for t, entry in backup_set.manifest["tables"].items()}
        if create_missing
        else None
    )
    conn = connect(dsn)
    try:
        stats, created = restore_tables(
            conn, schema, loads, truncate=truncate_before_restore, table_ddl=ddl, commit=not verify_only, log=log.info
        )
    finally:
        conn.close()
    outcome = "verified (rolled back, nothing changed)" if verify_only else "restored"
    log.info(f"Set {backup_set.timestamp} {outcome}: " + ", ".join(f"{s.table} {s.rows_restored:,} rows" for s in stats))
    return RestoreResult(backup_set, redact_dsn(dsn), stats, created, verify_only, time.monotonic() - clock)


def _check_set_files(backup_set: BackupSetInfo, tables: list[str]) -> None:
    if backup_set.interrupted:
        raise DataError(
            f"Set {backup_set.timestamp} in {backup_set.directory} was never finished (a .tmp file of it is "
            f"present). Restore another set."
        )
    if backup_set.manifest_error:
        # Restoring it as a legacy set would skip the checksum verification its manifest promises.
        raise DataError(f"{backup_set.manifest_error} Restore another set.")
    missing = [t for t in tables if t not in backup_set.files]
    if missing:
        raise ResourceNotFound(
            f"Set {backup_set.timestamp} in {backup_set.directory} has no CSV for {missing}. Restore only the "
            f"tables it has ({sorted(backup_set.files) or 'none'}) or pick a complete set."
        )


def _verify_checksums(backup_set: BackupSetInfo, tables: list[str], log: Log) -> None:
    for table in tables:
        entry = backup_set.manifest["tables"][table]
        path = backup_set.files[table]
        size = path.stat().st_size
        if size != entry["bytes"] or sha256_file(path) != entry["sha256"]:
            raise DataError(
                f"{path.name} does not match its manifest (expected {entry['bytes']} bytes, sha256 "
                f"{entry['sha256'][:12]}…; found {size} bytes). The file was changed or damaged after the "
                f"backup: restore another set."
            )
        log.info(f"{path.name}: size and sha256 match the manifest.")


def _read_header(path: Path) -> list[str]:
    with open(path, "rb") as file:
        line = file.readline()
    header = next(csv.reader(io.StringIO(line.decode("utf-8"), newline="")), [])
    if not header:
        raise DataError(f"{path} has no CSV header line. The file is empty or damaged.")
    return header


def _table_load(backup_set: BackupSetInfo, table: str) -> TableLoad:
    path = backup_set.files[table]
    if backup_set.manifest:
        return TableLoad(table, _read_header(path), lambda: open(path, "rb"), backup_set.rows(table))
    return TableLoad(table, _read_header(path), lambda: _LegacyFile(path), None)


class _LegacyFile:
    """The legacy CSV opened through the JSON-repairing stream, closable like a file."""

    def __init__(self, path: Path):
        self._file = open(path, "rb")
        self._stream = JsonRepairingCsvStream(self._file)

    def read(self, size: int = -1) -> bytes:
        return self._stream.read(size)

    def __enter__(self) -> "_LegacyFile":
        return self

    def __exit__(self, *exc_info) -> None:
        self._file.close()
