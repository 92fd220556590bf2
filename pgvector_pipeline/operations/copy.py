"""Copying a backup set from one store to another (a local directory, S3), every checksum verified.

Each table's file is streamed once from the source to the target as stored (compressed files stay
compressed), while the bytes are checked against the manifest twice over: the stored file's size and
sha256, and the CSV's inside it (decompressed on the way). The target set is written like a backup
(claimed, files streamed, the same manifest published last) and then read back from the target and
checked again, so a copy that lists as complete is a copy proven equal to the source (one that is not is marked
damaged, as is a source found damaged: see store.damage). An old-system set is
adopted in the source first (as the discovery sensor does), so that it has checksums to verify against.
No Dagster, no SQL.
"""

import io
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pgvector_pipeline.errors import DataError, InvalidParams
from pgvector_pipeline.sizes import human_size
from pgvector_pipeline.store.backup_set_info import STATUS_LEGACY, BackupSetInfo, SetReader
from pgvector_pipeline.store.codecs import Compression
from pgvector_pipeline.store.damage import damage_marked, read_back_published
from pgvector_pipeline.store.files import verified_csv
from pgvector_pipeline.store.interface import BackupStore, SetWriter, TableWriter
from pgvector_pipeline.store.manifest import ManifestTable

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

_CHUNK = 1 << 20


@dataclass(frozen=True)
class CopyResult:
    """A set copied and verified: where from, where to, how much."""

    task: str
    timestamp: str
    source: str
    target: str
    stored_bytes: dict[str, int]  # by table
    duration_s: float

    @property
    def total_bytes(self) -> int:
        return sum(self.stored_bytes.values())


def copy_set(
    backup_set: BackupSetInfo, target: BackupStore, *, log: Callable[[str], None] = lambda _: None
) -> CopyResult:
    """Copy a complete set (or an old-system one, adopted first) into `target` under the same task and
    timestamp; InvalidParams when the target already has that set, DataError when a byte differs anywhere."""
    backup_set = _with_manifest(backup_set, log)
    assert backup_set.store is not None and backup_set.manifest is not None
    clock = time.monotonic()
    manifest = backup_set.manifest
    tables = backup_set.tables
    log(
        f"Copying set {backup_set.timestamp} ({human_size(backup_set.total_bytes)}) to {target.location(backup_set.task)}."
    )
    with (
        damage_marked(backup_set, log),
        backup_set.store.read_set(backup_set, tables) as held,
        target.new_set(backup_set.task, backup_set.timestamp, create_task_dir=True) as writer,
    ):
        for table in tables:
            _copy_file(held, writer, table, manifest.tables[table], manifest.set_format, log)
        writer.publish(manifest)
        finding = read_back_published(writer, {table: manifest.tables[table] for table in tables})
        if finding is not None:
            raise DataError(
                f"The copy of set {backup_set.timestamp} was published in {writer.location}, but {finding} Check the "
                f"target storage; delete the damaged copy (retention deletes it as it does old sets) before copying "
                f"the set again."
            )
    log(f"Copied and verified set {backup_set.timestamp}: {writer.location}.")
    return CopyResult(
        backup_set.task,
        backup_set.timestamp,
        backup_set.location,
        writer.location,
        {table: manifest.tables[table].file_bytes for table in tables},
        time.monotonic() - clock,
    )


def _with_manifest(backup_set: BackupSetInfo, log: Callable[[str], None]) -> BackupSetInfo:
    """The set with a manifest to verify against: adopted first when it is an old-system set."""
    if backup_set.status == STATUS_LEGACY:
        assert backup_set.store is not None
        backup_set.manifest = backup_set.store.adopt(backup_set)
        backup_set.has_manifest = True
        log(f"Adopted old-system set {backup_set.timestamp} (its checksums are recorded in its manifest now).")
    if not backup_set.complete or backup_set.manifest is None:
        raise InvalidParams(
            f"Set {backup_set.timestamp} in {backup_set.location} is {backup_set.status}: only complete sets are "
            f"copied. {backup_set.problem or ''}".rstrip()
        )
    return backup_set


def _copy_file(
    held: SetReader, writer: SetWriter, table: str, entry: ManifestTable, set_format: str, log: Callable[[str], None]
) -> None:
    """Stream one file as stored into the target, checking the stored bytes and the CSV inside them as a restore
    does (the CSV is decoded and checked, then dropped)."""
    sink = writer.open_table(table, compression=Compression.stored_as(entry.codec), set_format=set_format)
    try:
        with verified_csv(_Tee(held.file(table), sink), entry.file, entry) as csv:
            while csv.read(_CHUNK):
                pass
        sink.finish()
    except OSError as exc:
        raise sink.failed(exc, f"copying {entry.file}") from exc
    log(f"Copied {entry.file}: {human_size(entry.file_bytes)}, sha256 {entry.file_sha256[:12]}… verified.")


class _Tee(io.RawIOBase):
    """A stored file read through: every byte read from it is also written to `sink`, as it was stored."""

    def __init__(self, file: io.RawIOBase, sink: TableWriter):
        super().__init__()
        self._file, self._sink = file, sink

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: "WriteableBuffer") -> int:
        count = self._file.readinto(buffer) or 0
        if count:
            with memoryview(buffer) as view:
                self._sink.write(bytes(view[:count]))
        return count
