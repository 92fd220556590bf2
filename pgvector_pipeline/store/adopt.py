"""Adopting a set of the old system: record its sizes, checksums and row counts in a manifest of kind
"adopted", so damage done to it after it was found is caught like damage to any other set."""

import csv
import hashlib
import io
import os

from pgvector_pipeline.errors import DataError
from pgvector_pipeline.store.codecs import NONE
from pgvector_pipeline.store.directory import Directory
from pgvector_pipeline.store.files import DEFAULT_FILE_MODE, storage_error, write_json_durably
from pgvector_pipeline.store.interface import SetReader
from pgvector_pipeline.store.layout import manifest_name
from pgvector_pipeline.store.legacy import legacy_csv_reader
from pgvector_pipeline.store.listing import STATUS_LEGACY, BackupSetInfo
from pgvector_pipeline.store.manifest import (
    KIND_ADOPTED,
    MANIFEST_FORMAT,
    Manifest,
    ManifestColumn,
    ManifestTable,
    read_manifest,
)
from pgvector_pipeline.store.reading import HeldSet

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


def _describe_csv(raw: io.RawIOBase, name: str) -> ManifestTable:
    """bytes, sha256, header columns and row count of an old-system CSV, in one streaming pass."""
    hashing = _HashingReader(raw)
    text = io.TextIOWrapper(io.BufferedReader(hashing, _READ_CHUNK), encoding="utf-8", newline="")
    try:
        reader = legacy_csv_reader(text)
        header = next(reader, None)
        rows = sum(1 for _ in reader)
    except (csv.Error, UnicodeDecodeError) as exc:
        raise DataError(f"{name} cannot be read as UTF-8 CSV ({exc}); the set was not adopted.") from None
    if not header:
        raise DataError(f"{name} has no header line; the set was not adopted.")
    digest = hashing.digest.hexdigest()
    return ManifestTable(
        file=name,
        rows=rows,
        bytes=hashing.bytes,
        sha256=digest,
        # The old system wrote plain CSVs: the file is the CSV.
        codec=NONE,
        stored_bytes=hashing.bytes,
        stored_sha256=digest,
        columns=[ManifestColumn(name=column, type="unknown", not_null=False) for column in header],
    )


def adopted_manifest(held: SetReader, backup_set: BackupSetInfo) -> Manifest:
    """The adopted manifest of a legacy set (status 'legacy'), read from its files held by `held` (any store)."""
    if backup_set.status != STATUS_LEGACY:
        raise DataError(
            f"Set {backup_set.timestamp} in {backup_set.location} is {backup_set.status}, not a legacy set."
        )
    return Manifest(
        format=MANIFEST_FORMAT,
        kind=KIND_ADOPTED,
        task_id=backup_set.task,
        timestamp=backup_set.timestamp,
        tables={
            table: _describe_csv(held.file(table), backup_set.table_files[table])
            for table in sorted(backup_set.table_files)
        },
    )


def adopt_legacy_set(reader: HeldSet, mode: int = DEFAULT_FILE_MODE) -> Manifest:
    """Write the adopted manifest of a legacy set in a local store, read from its held files, and return it."""
    backup_set = reader.backup_set
    with reader as held:
        assert held.location is not None
        manifest = adopted_manifest(held, backup_set)
        _write_adopted(held.location, backup_set, manifest.as_document(), mode)
        return read_manifest(held.location, backup_set.timestamp)


def _write_adopted(location: Directory, backup_set: BackupSetInfo, document: dict, mode: int) -> None:
    """Written under a name no set file has, then hard-linked into place: the link fails if a manifest
    appeared meanwhile, and a crash leaves no file that a backup's cleanup would mistake for a set."""
    target = manifest_name(backup_set.timestamp)
    partial = f".adopting_{target}.{os.getpid()}"
    try:
        location.unlink_quietly(partial)
        write_json_durably(location, partial, document, mode)
        location.link(partial, target)
        location.fsync()
    except FileExistsError:
        raise DataError(
            f"Set {backup_set.timestamp} in {backup_set.location} got a manifest while it was adopted."
        ) from None
    except OSError as exc:
        raise storage_error(exc, location, target, "adopting an old-system set") from None
    finally:
        location.unlink_quietly(partial)
