"""Copying a backup set from one store to another (a local directory, S3), every checksum verified.

Each table's file is streamed once from the source to the target as stored (compressed files stay
compressed), while the bytes are checked against the manifest twice over: the stored file's size and
sha256, and the CSV's inside it (decompressed on the way). The target set is written like a backup
(claimed, files streamed, the same manifest published last) and then read back from the target and
checked again, so a copy that lists as complete is a copy proven equal to the source (one that is not is marked
damaged, as is a source found damaged: see store.damage). An old-system set is
adopted in the source first (as the discovery sensor does), so that it has checksums to verify against.

Encrypted sets (store.keys): a set copied to a store that encrypts to other recipients is re-encrypted to them when
this host holds an identity of the set's recipients (its content checked on the way, as a restore checks it); without
one its files, sealed manifest and clear index are copied as they are stored (only the stored bytes can be checked),
so a set never loses its encryption. A set in clear copied to a store that encrypts is encrypted to that store's
recipients.
No Dagster, no SQL.
"""

import io
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING

from pgvector_pipeline.errors import DataError, InvalidParams
from pgvector_pipeline.sizes import human_size
from pgvector_pipeline.store.age_streams import DecryptingReader
from pgvector_pipeline.store.backup_set_info import STATUS_LEGACY, BackupSetInfo, SetReader
from pgvector_pipeline.store.codecs import Compression
from pgvector_pipeline.store.damage import damage_marked, read_back_published
from pgvector_pipeline.store.files import DecodedReader, VerifiedReader, verified_csv
from pgvector_pipeline.store.interface import BackupStore, SetWriter, TableWriter
from pgvector_pipeline.store.keys import Identities, fingerprints_text
from pgvector_pipeline.store.manifest import (
    MANIFEST_FORMAT_ENCRYPTED,
    IndexTable,
    Manifest,
    ManifestEncryption,
    ManifestTable,
)
from pgvector_pipeline.store.sealing import MAX_SEALED_MANIFEST_BYTES, identities_for, open_sealed

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
    assert backup_set.store is not None
    clock = time.monotonic()
    identities = _reencrypting(backup_set, target, log)
    tables = backup_set.tables
    log(
        f"Copying set {backup_set.timestamp} ({human_size(backup_set.total_bytes)}) to {target.location(backup_set.task)}."
    )
    with (
        damage_marked(backup_set, log),
        backup_set.store.read_set(backup_set, tables) as held,
        target.new_set(backup_set.task, backup_set.timestamp, create_task_dir=True) as writer,
    ):
        if backup_set.sealed is not None and identities is None:  # an encrypted set copied as it is stored
            sealed = held.sealed_manifest(MAX_SEALED_MANIFEST_BYTES)
            written: dict[str, ManifestTable | IndexTable] = {
                table: _copy_as_stored(held, writer, table, backup_set, log) for table in tables
            }
            writer.publish_sealed(backup_set.sealed, sealed)
        else:
            manifest = backup_set.manifest
            assert manifest is not None
            copied = {
                table: _copy_file(held, writer, table, manifest.tables[table], manifest.set_format, identities, log)
                for table in tables
            }
            target_manifest = _target_manifest(manifest, copied, writer.encrypted_to)
            writer.publish(target_manifest)
            written = dict(target_manifest.tables)
        finding = read_back_published(writer, written)
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
        {table: entry.file_bytes for table, entry in written.items()},
        time.monotonic() - clock,
    )


def _with_manifest(backup_set: BackupSetInfo, log: Callable[[str], None]) -> BackupSetInfo:
    """The set with a manifest (or an encrypted set's index) to verify against: adopted first when it is an old-system
    set."""
    if backup_set.status == STATUS_LEGACY:
        assert backup_set.store is not None
        backup_set.manifest = backup_set.store.adopt(backup_set)
        backup_set.has_manifest = True
        log(f"Adopted old-system set {backup_set.timestamp} (its checksums are recorded in its manifest now).")
    if not backup_set.complete or (backup_set.manifest is None and backup_set.sealed is None):
        raise InvalidParams(
            f"Set {backup_set.timestamp} in {backup_set.location} is {backup_set.status}: only complete sets are "
            f"copied. {backup_set.problem or ''}".rstrip()
        )
    return backup_set


def _reencrypting(backup_set: BackupSetInfo, target: BackupStore, log: Callable[[str], None]) -> Identities | None:
    """For an encrypted set: the identities that re-encrypt it to `target`'s recipients (its manifest opened), or None
    when it is copied as it is stored (the target encrypts to the same recipients, or to none, or this host holds no
    identity of the set's recipients)."""
    if backup_set.sealed is None:
        return None
    assert backup_set.store is not None
    wanted = target.keys.recipients.fingerprints if target.keys.recipients else ()
    if not wanted or sorted(wanted) == sorted(backup_set.recipients):
        log(f"Set {backup_set.timestamp} is encrypted: its files are copied as they are stored.")
        return None
    try:
        identities = identities_for(backup_set, f"Set {backup_set.timestamp} in {backup_set.location}")
        with damage_marked(backup_set, log):
            open_sealed(backup_set)
    except InvalidParams as refused:
        log(
            f"Set {backup_set.timestamp} is encrypted to {fingerprints_text(backup_set.recipients)} and "
            f"{target.where} encrypts new sets to {fingerprints_text(wanted)}, but it cannot be re-encrypted here "
            f"({refused.message}): its files are copied as they are stored, encrypted to the recipients they were. "
            f"Copy it where the identity is to re-encrypt it."
        )
        return None
    log(
        f"Set {backup_set.timestamp} is re-encrypted from {fingerprints_text(backup_set.recipients)} to "
        f"{fingerprints_text(wanted)}, the recipients of {target.where}."
    )
    return identities


def _copy_file(
    held: SetReader,
    writer: SetWriter,
    table: str,
    entry: ManifestTable,
    set_format: str,
    identities: Identities | None,
    log: Callable[[str], None],
) -> TableWriter:
    """Stream one file into the target, checking the stored bytes and the CSV inside them as a restore does (the CSV
    is decoded and checked, then dropped): as it is stored (a target that encrypts encrypts it to its recipients), or,
    an encrypted file with `identities`, decrypted on the way and encrypted again by the target. The table's writer,
    finished."""
    reencrypt = entry.encrypted and identities is not None
    sink = writer.open_table(table, compression=Compression.stored_as(entry.codec), set_format=set_format)
    try:
        if reencrypt:
            assert identities is not None
            stored = VerifiedReader(held.file(table), entry.file, entry.file_bytes, entry.file_sha256)
            plain = _TeeLayer(DecryptingReader(stored, identities, entry.file), sink)
            reader: io.RawIOBase = DecodedReader(plain, entry.codec, entry.bytes, entry.sha256)
        else:
            reader = verified_csv(_Tee(held.file(table), sink), entry.file, entry)
        with reader as csv:
            while csv.read(_CHUNK):
                pass
        sink.finish()
    except OSError as exc:
        raise sink.failed(exc, f"copying {entry.file}") from exc
    log(
        f"Copied {entry.file}: {human_size(entry.file_bytes)}, sha256 {entry.file_sha256[:12]}… verified"
        + (f"; stored as {sink.name}, {human_size(sink.stored_bytes)}." if sink.name != entry.file else ".")
    )
    return sink


def _copy_as_stored(
    held: SetReader, writer: SetWriter, table: str, backup_set: BackupSetInfo, log: Callable[[str], None]
) -> IndexTable:
    """Stream one file of an encrypted set into the target as it is stored, its stored bytes checked against the set's
    clear index (the content inside is checked where an identity reads it)."""
    assert backup_set.sealed is not None
    entry = backup_set.sealed.tables[table]
    compression = Compression.stored_as(entry.codec, encrypted=True)
    sink = writer.open_table(table, compression=compression, set_format=backup_set.sealed.set_format)
    try:
        with VerifiedReader(_Tee(held.file(table), sink), entry.file, entry.file_bytes, entry.file_sha256) as stored:
            while stored.read(_CHUNK):
                pass
        sink.finish()
    except OSError as exc:
        raise sink.failed(exc, f"copying {entry.file}") from exc
    log(f"Copied {entry.file} as stored: {human_size(entry.file_bytes)}, sha256 {entry.file_sha256[:12]}… verified.")
    return entry


def _target_manifest(manifest: Manifest, copied: dict[str, TableWriter], encrypted_to: tuple[str, ...]) -> Manifest:
    """The manifest of the copy: the source's, with each file as the target stores it (its name, size and sha256) and,
    when the target encrypts, the recipients it encrypted it to (format 5)."""
    document = manifest.as_document()
    for table, sink in copied.items():
        document["tables"][table].update(
            file=sink.name, stored_bytes=sink.stored_bytes, stored_sha256=sink.stored_sha256
        )
    if encrypted_to:
        document["format"] = MANIFEST_FORMAT_ENCRYPTED
        document["encryption"] = ManifestEncryption(recipients=list(encrypted_to)).model_dump()
    try:
        return Manifest.model_validate(document)
    except ValueError as exc:  # a fault of this code, not of the set: say so plainly
        raise DataError(f"The manifest of the copy could not be made ({exc}). Nothing was published.") from exc


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


class _TeeLayer(_Tee):
    """A _Tee over a checking reader (a DecryptingReader), left as that reader is (see store.files)."""

    def __init__(self, file: DecryptingReader, sink: TableWriter):
        super().__init__(file, sink)
        self.name = file.name

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._file.__exit__(exc_type, exc, tb)
