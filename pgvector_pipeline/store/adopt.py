"""Adopting a set of the old system: record its sizes, checksums and row counts in a manifest of kind
"adopted", so damage done to it after it was found is caught like damage to any other set. The manifest is read
from the set's files through any store's SetReader; each store writes it its own way (BackupStore.adopt)."""

import csv
import hashlib
import io
from typing import TYPE_CHECKING

from pgvector_pipeline.errors import DataError
from pgvector_pipeline.store.backup_set_info import STATUS_LEGACY, BackupSetInfo, SetReader
from pgvector_pipeline.store.codecs import NONE
from pgvector_pipeline.store.legacy import legacy_csv_reader
from pgvector_pipeline.store.manifest import KIND_ADOPTED, MANIFEST_FORMAT, Manifest, ManifestColumn, ManifestTable

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

_READ_CHUNK = 1 << 20


class _HashingReader(io.RawIOBase):
    """A binary file that hashes and counts every byte read through it."""

    def __init__(self, file: io.RawIOBase):
        self._file = file
        self.digest = hashlib.sha256()
        self.bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: "WriteableBuffer") -> int:
        with memoryview(buffer) as view:
            data = self._file.read(len(view))
            self.digest.update(data)
            self.bytes += len(data)
            view[: len(data)] = data
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
