"""Adopting a set of the old system: record its sizes, checksums and row counts in a manifest of kind
"adopted", so damage done to it after it was found is caught like damage to any other set."""

import csv
import hashlib
import io
import os
from pathlib import Path

from pgvector_pipeline.errors import DataError
from pgvector_pipeline.store.files import (
    DEFAULT_FILE_MODE,
    fsync_dir,
    remove_quietly,
    storage_error,
    write_json_durably,
)
from pgvector_pipeline.store.listing import STATUS_LEGACY, BackupSetInfo
from pgvector_pipeline.store.manifest import (
    KIND_ADOPTED,
    MANIFEST_FORMAT,
    Manifest,
    read_manifest,
)

_READ_CHUNK = 1 << 20


class _HashingReader(io.RawIOBase):
    """A binary file that hashes and counts every byte read through it."""

    def __init__(self, file):
        self._file = file
        self.digest = hashlib.sha256()
        self.bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._file.read(len(buffer))
        self.digest.update(data)
        self.bytes += len(data)
        buffer[: len(data)] = data
        return len(data)


def _describe_csv(path: Path) -> dict:
    """bytes, sha256, header columns and row count of an old-system CSV, in one streaming pass."""
    with open(path, "rb") as raw:
        hashing = _HashingReader(raw)
        text = io.TextIOWrapper(io.BufferedReader(hashing, _READ_CHUNK), encoding="utf-8", newline="")
        try:
            reader = csv.reader(text)
            header = next(reader, None)
            rows = sum(1 for _ in reader)
        except (csv.Error, UnicodeDecodeError) as exc:
            raise DataError(f"{path.name} cannot be read as UTF-8 CSV ({exc}); the set was not adopted.") from None
    if not header:
        raise DataError(f"{path.name} has no header line; the set was not adopted.")
    return {
        "file": path.name,
        "rows": rows,
        "bytes": hashing.bytes,
        "sha256": hashing.digest.hexdigest(),
        "columns": [{"name": name, "type": "unknown", "not_null": False} for name in header],
    }


def adopt_legacy_set(backup_set: BackupSetInfo, mode: int = DEFAULT_FILE_MODE) -> Manifest:
    """Write the adopted manifest of a legacy set (status 'legacy') and return it.

    Written under a name no set file has, then hard-linked into place: the link fails if a manifest
    appeared meanwhile, and a crash leaves no file that a backup's cleanup would mistake for a set.
    """
    if backup_set.status != STATUS_LEGACY:
        raise DataError(
            f"Set {backup_set.timestamp} in {backup_set.directory} is {backup_set.status}, not a legacy set."
        )
    document = {
        "format": MANIFEST_FORMAT,
        "kind": KIND_ADOPTED,
        "task_id": backup_set.task,
        "timestamp": backup_set.timestamp,
        "tables": {table: _describe_csv(path) for table, path in sorted(backup_set.files.items())},
    }
    partial = backup_set.directory / f".adopting_{backup_set.manifest_path.name}.{os.getpid()}"
    try:
        remove_quietly(partial)
        write_json_durably(partial, document, mode)
        os.link(partial, backup_set.manifest_path)
        fsync_dir(backup_set.directory)
    except FileExistsError:
        raise DataError(
            f"Set {backup_set.timestamp} in {backup_set.directory} got a manifest while it was adopted."
        ) from None
    except OSError as exc:
        raise storage_error(exc, backup_set.manifest_path, "adopting an old-system set") from None
    finally:
        remove_quietly(partial)
    return read_manifest(backup_set.manifest_path, backup_set.timestamp)
