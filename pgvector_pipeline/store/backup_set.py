"""Writing one backup set so that it either exists whole, with its manifest, or not at all.

A writer owns its set through an exclusive `flock` on `vector_backup_{ts}.lock`, held from the claim
until the set is published or removed. The kernel drops the lock when the process dies, however it
dies, so the next run into the directory can tell a dead writer's leftovers (lock free) from a live
writer's files (lock held) at once, without guessing from file ages.
"""

import os
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from pgvector_pipeline.errors import StorageError
from pgvector_pipeline.set_formats import CSV
from pgvector_pipeline.store.claims import SetTaken, claim_new_timestamp
from pgvector_pipeline.store.codecs import UNCOMPRESSED, Compression
from pgvector_pipeline.store.damage import mark_in_directory
from pgvector_pipeline.store.directory import Directory, UnsafeEntry, try_flock
from pgvector_pipeline.store.files import (
    DEFAULT_FILE_MODE,
    StreamingFileWriter,
    storage_error,
    write_bytes_durably,
)
from pgvector_pipeline.store.interface import InterruptedSet
from pgvector_pipeline.store.keys import NO_KEYS, SetKeys
from pgvector_pipeline.store.layout import (
    TMP_SUFFIX,
    lock_name,
    manifest_name,
    parse_set_file_name,
    sealed_manifest_name,
    table_file_name,
    tmp_name,
    validate_timestamp,
)
from pgvector_pipeline.store.manifest import Manifest, SealedIndex
from pgvector_pipeline.store.sealing import published_documents


class SetLock:
    """The exclusive lock on one set's lock file; `None` from `try_acquire` means a live run holds it."""

    def __init__(self, directory: Directory, name: str, fd: int):
        self.directory = directory
        self.name = name
        self._fd = fd

    @classmethod
    def try_acquire(cls, directory: Directory, timestamp: str, mode: int) -> "SetLock | None":
        """The set's lock, or None when a live run holds it (never waits). UnsafeEntry when the lock's name is
        taken by anything but a regular file (never followed, never chmod-ed)."""
        name = lock_name(timestamp)
        while True:
            fd = directory.open_or_create(name, os.O_RDWR, mode)
            if not try_flock(fd, exclusive=True):
                os.close(fd)
                return None
            # The previous owner unlinks the file before closing it: a lock on an unlinked file is void.
            try:
                current = directory.lstat(name)
                mine = os.fstat(fd)
                if (current.st_dev, current.st_ino) == (mine.st_dev, mine.st_ino):
                    return cls(directory, name, fd)
            except FileNotFoundError:
                pass
            os.close(fd)

    def release(self) -> None:
        """Remove the lock file, then drop the lock (in that order: nobody may lock a file that is going away)."""
        self.directory.unlink_quietly(self.name)
        os.close(self._fd)

    def __enter__(self) -> "SetLock":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def _set_files(directory: Directory, timestamp: str) -> list[str]:
    return [
        entry.name
        for entry in directory.entries()
        if (parsed := parse_set_file_name(entry.name)) and parsed.timestamp == timestamp
    ]


def remove_interrupted_sets(directory: Directory, mode: int = DEFAULT_FILE_MODE) -> list[InterruptedSet]:
    """Delete the files of every set in `directory` whose writer is gone; never those of a live writer.

    A set of ours is unfinished while its lock file or a .tmp of it exists. Each candidate is cleaned
    under its own lock, so a writer that is alive (holds the lock) is skipped. Without a lock file (sets
    of older versions) the published CSVs go only when a manifest .tmp shows the commit had begun:
    CSVs alone are a legacy set and stay. Entries that are not regular files (a FIFO or directory named
    like a lock) are left alone: listing reports them.
    """
    candidates: dict[str, set[str]] = {}
    for entry in directory.entries():
        parsed = parse_set_file_name(entry.name)
        if parsed and (parsed.tmp or parsed.kind == "lock") and entry.is_file:
            candidates.setdefault(parsed.timestamp, set()).add(entry.name)
    removed = []
    for timestamp, markers in sorted(candidates.items()):
        try:
            lock = SetLock.try_acquire(directory, timestamp, mode)
        except UnsafeEntry:
            continue
        if lock is None:
            continue  # a live run is writing it
        with lock:
            files = [name for name in _set_files(directory, timestamp) if name != lock.name]
            published = manifest_name(timestamp) in files
            ours = lock_name(timestamp) in markers or tmp_name(manifest_name(timestamp)) in markers
            doomed = [name for name in files if name.endswith(TMP_SUFFIX) or (ours and not published)]
            freed = sum(directory.unlink_quietly(name) for name in doomed)
        if doomed:
            removed.append(InterruptedSet(timestamp, sorted(doomed), freed))
    if removed:
        directory.fsync()
    return removed


class BackupSetWriter:
    """The files of one set (one timestamp in one vector_bak directory) while they are being written.

    A context manager: entering removes dead writers' leftovers in the directory and claims the set:
    the given timestamp (SetTaken while another run writes it, or once it exists) or, with timestamp
    None, the current second or the next free one. The claim is the set's flock plus a check that no
    file of it exists, so two starts never get the same set, whichever way they were started. CSVs
    stream into .tmp files; `publish` writes the manifest as .tmp, renames the CSVs, then the manifest.
    Leaving without `publish` removes every file of the set; leaving always releases the claim. Write
    failures become StorageError. Every file is created in the directory opened once (see
    store.directory): nothing is written through a path another process could swap.
    """

    def __init__(
        self,
        directory: Directory,
        timestamp: str | None,
        mode: int = DEFAULT_FILE_MODE,
        on_interrupted: Callable[[InterruptedSet], None] | None = None,
        keys: SetKeys = NO_KEYS,
    ):
        self.directory = directory
        self.timestamp = None if timestamp is None else validate_timestamp(timestamp)
        self.mode = mode
        self.keys = keys
        self.writers: dict[str, StreamingFileWriter] = {}
        self.published = False
        self._on_interrupted = on_interrupted
        self._lock: SetLock | None = None

    @property
    def manifest_name(self) -> str:
        assert self.timestamp is not None, "claimed on entering"
        return manifest_name(self.timestamp)

    @property
    def manifest_path(self) -> Path:
        return self.directory.path / self.manifest_name

    @property
    def location(self) -> str:
        """The directory the set is written into (for messages and metadata)."""
        return str(self.directory.path)

    def __enter__(self) -> "BackupSetWriter":
        try:
            for interrupted in remove_interrupted_sets(self.directory, self.mode):
                if self._on_interrupted:
                    self._on_interrupted(interrupted)
        except OSError as exc:
            raise storage_error(
                exc, self.directory, str(exc.filename or ""), "removing leftovers of interrupted backups"
            ) from exc
        if self.timestamp is not None:
            self._claim(self.timestamp)
        else:
            claim_new_timestamp(self._claim, str(self.directory.path))
        return self

    def _claim(self, timestamp: str) -> None:
        try:
            lock = SetLock.try_acquire(self.directory, timestamp, self.mode)
        except UnsafeEntry as exc:
            raise SetTaken(
                f"Set {timestamp} cannot be claimed in {self.directory.path}: {exc.strerror}. Request a new backup "
                f"(without a timestamp), or remove that entry."
            ) from None
        except OSError as exc:
            raise storage_error(exc, self.directory, lock_name(timestamp), "claiming the backup set") from exc
        if lock is None:
            raise SetTaken(
                f"Another run is writing set {timestamp} in {self.directory.path} right now. Each start gets its own "
                f"set: request a new backup (without a timestamp) instead of repeating this one."
            )
        existing = sorted(name for name in _set_files(self.directory, timestamp) if name != lock.name)
        if existing:
            lock.release()
            raise SetTaken(
                f"A backup set with timestamp {timestamp} already exists in {self.directory.path} "
                f"({', '.join(existing)}). Backups never overwrite: request a new backup."
            )
        self.timestamp, self._lock = timestamp, lock

    def open_table(
        self,
        table: str,
        progress: Callable[[int, int], None] | None = None,
        compression: Compression = UNCOMPRESSED,
        set_format: str = CSV,
    ) -> StreamingFileWriter:
        assert self.timestamp is not None, "claimed on entering"
        recipients = None if compression.preencrypted else self.keys.recipients
        encrypted = compression.preencrypted or recipients is not None
        name = table_file_name(table, self.timestamp, compression.codec, set_format, encrypted)
        try:
            writer = StreamingFileWriter(self.directory, name, self.mode, progress, compression, recipients)
        except OSError as exc:
            raise storage_error(exc, self.directory, tmp_name(name), f"creating the file of {table}") from exc
        self.writers[table] = writer
        return writer

    def reread_sha256(self, table: str) -> str:
        """The sha256 of a published table file as stored, read back from the disk."""
        name = self.writers[table].name
        try:
            return self.directory.sha256(name)
        except OSError as exc:
            raise StorageError(
                f"Cannot read back {self.directory.path / name}: {exc.strerror or exc}. Check the disk holding the "
                f"backup root."
            ) from exc

    def mark_damaged(self, reason: str) -> str:
        """Mark the published set damaged (store.damage), its lock still held."""
        assert self.published and self.timestamp is not None
        return mark_in_directory(self.directory, self.timestamp, reason, self.mode)

    @property
    def encrypted_to(self) -> tuple[str, ...]:
        """The fingerprints of the recipients the files of this set are encrypted to (none: written in clear)."""
        return self.keys.recipients.fingerprints if self.keys.recipients else ()

    def publish(self, manifest: Manifest) -> str:
        """Make the set visible: manifest .tmp, CSVs renamed, manifest renamed, each step durable. An encrypted set's
        manifest is sealed first, and its clear index takes the manifest's place (store.sealing)."""
        return self._publish(*published_documents(manifest, self.keys))

    def publish_sealed(self, index: SealedIndex, sealed: bytes) -> str:
        """Publish an encrypted set whose files were copied as they are stored, with its clear index and sealed
        manifest as they are stored."""
        return self._publish(index.as_bytes(), sealed)

    def _publish(self, document: bytes, sealed: bytes | None) -> str:
        manifest_tmp = tmp_name(self.manifest_name)
        assert self.timestamp is not None
        sealed_name = sealed_manifest_name(self.timestamp)
        try:
            if sealed is not None:
                write_bytes_durably(self.directory, tmp_name(sealed_name), sealed, self.mode)
            write_bytes_durably(self.directory, manifest_tmp, document, self.mode)
            for writer in self.writers.values():
                writer.publish()
            if sealed is not None:
                self.directory.rename(tmp_name(sealed_name), sealed_name)
            self.directory.fsync()
            self.directory.rename(manifest_tmp, self.manifest_name)
            self.published = True
            self.directory.fsync()
        except OSError as exc:
            raise storage_error(exc, self.directory, self.manifest_name, "publishing the backup set") from exc
        return str(self.manifest_path)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._lock is not None
        try:
            if not self.published:
                self._remove_files()
        finally:
            self._lock.release()

    def _remove_files(self) -> None:
        """Remove everything of this set: used when anything failed before the manifest was published."""
        for writer in self.writers.values():
            writer.discard()
            self.directory.unlink_quietly(writer.name)
        assert self.timestamp is not None
        self.directory.unlink_quietly(tmp_name(sealed_manifest_name(self.timestamp)))
        self.directory.unlink_quietly(sealed_manifest_name(self.timestamp))
        self.directory.unlink_quietly(tmp_name(self.manifest_name))
        try:
            self.directory.fsync()
        except OSError:
            pass  # the files are unlinked; a lost directory fsync only risks their names reappearing
