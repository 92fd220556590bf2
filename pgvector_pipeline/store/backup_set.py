"""Writing one backup set so that it either exists whole, with its manifest, or not at all.

A writer owns its set through an exclusive `flock` on `vector_backup_{ts}.lock`, held from the claim
until the set is published or removed. The kernel drops the lock when the process dies, however it
dies, so the next run into the directory can tell a dead writer's leftovers (lock free) from a live
writer's files (lock held) at once, without guessing from file ages.
"""

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pgvector_pipeline.errors import InvalidParams
from pgvector_pipeline.store.files import (
    DEFAULT_FILE_MODE,
    StreamingFileWriter,
    fsync_dir,
    remove_quietly,
    storage_error,
    tmp_path,
    write_json_durably,
)
from pgvector_pipeline.store.layout import (
    csv_name,
    lock_name,
    manifest_name,
    new_timestamp,
    parse_set_file_name,
    validate_timestamp,
)

# Claiming a new set tries this many seconds before giving up.
CLAIM_ATTEMPTS = 30


class SetLock:
    """The exclusive lock on one set's lock file; `None` from `try_acquire` means a live run holds it."""

    def __init__(self, path: Path, fd: int):
        self.path = path
        self._fd = fd

    @classmethod
    def try_acquire(cls, directory: Path, timestamp: str, mode: int) -> "SetLock | None":
        """The set's lock, or None when a live run holds it (never waits)."""
        path = Path(directory) / lock_name(timestamp)
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, mode)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return None
            # The previous owner unlinks the file before closing it: a lock on an unlinked file is void.
            try:
                current = os.stat(path)
                mine = os.fstat(fd)
                if (current.st_dev, current.st_ino) == (mine.st_dev, mine.st_ino):
                    os.fchmod(fd, mode)
                    return cls(path, fd)
            except FileNotFoundError:
                pass
            os.close(fd)

    def release(self) -> None:
        """Remove the lock file, then drop the lock (in that order: nobody may lock a file that is going away)."""
        remove_quietly(self.path)
        os.close(self._fd)


@dataclass(frozen=True)
class InterruptedSet:
    """Leftovers of a run that ended without finishing its set, removed by a later run."""

    timestamp: str
    files: list[str]
    bytes: int


def _set_files(directory: Path, timestamp: str) -> list[Path]:
    with os.scandir(directory) as entries:
        return [
            Path(entry.path)
            for entry in entries
            if (parsed := parse_set_file_name(entry.name)) and parsed.timestamp == timestamp
        ]


def remove_interrupted_sets(directory: Path, mode: int = DEFAULT_FILE_MODE) -> list[InterruptedSet]:
    """Delete the files of every set in `directory` whose writer is gone; never those of a live writer.

    A set of ours is unfinished while its lock file or a .tmp of it exists. Each candidate is cleaned
    under its own lock, so a writer that is alive (holds the lock) is skipped. Without a lock file (sets
    of older versions) the published CSVs go only when a manifest .tmp shows the commit had begun:
    CSVs alone are a legacy set and stay.
    """
    candidates: dict[str, set[str]] = {}
    with os.scandir(directory) as entries:
        for entry in entries:
            parsed = parse_set_file_name(entry.name)
            if parsed and (parsed.tmp or parsed.kind == "lock"):
                candidates.setdefault(parsed.timestamp, set()).add(entry.name)
    removed = []
    for timestamp, markers in sorted(candidates.items()):
        lock = SetLock.try_acquire(directory, timestamp, mode)
        if lock is None:
            continue  # a live run is writing it
        try:
            files = [p for p in _set_files(directory, timestamp) if p != lock.path]
            published = (Path(directory) / manifest_name(timestamp)) in files
            ours = lock_name(timestamp) in markers or tmp_path(Path(manifest_name(timestamp))).name in markers
            doomed = [p for p in files if p.name.endswith(".tmp") or (ours and not published)]
            freed = sum(remove_quietly(p) for p in doomed)
        finally:
            lock.release()
        if doomed:
            removed.append(InterruptedSet(timestamp, sorted(p.name for p in doomed), freed))
    if removed:
        fsync_dir(directory)
    return removed


class SetTaken(InvalidParams):
    """The timestamp is taken in that directory: another run is writing the set, or it exists."""


class BackupSetWriter:
    """The files of one set (one timestamp in one vector_bak directory) while they are being written.

    A context manager: entering removes dead writers' leftovers in the directory and claims the set:
    the given timestamp (SetTaken while another run writes it, or once it exists) or, with timestamp
    None, the current second or the next free one. The claim is the set's flock plus a check that no
    file of it exists, so two starts never get the same set, whichever way they were started. CSVs
    stream into .tmp files; `publish` writes the manifest as .tmp, renames the CSVs, then the manifest.
    Leaving without `publish` removes every file of the set; leaving always releases the claim. Write
    failures become StorageError.
    """

    def __init__(
        self,
        directory: Path,
        timestamp: str | None,
        mode: int = DEFAULT_FILE_MODE,
        on_interrupted: Callable[[InterruptedSet], None] | None = None,
    ):
        self.directory = Path(directory)
        self.timestamp = None if timestamp is None else validate_timestamp(timestamp)
        self.mode = mode
        self.writers: dict[str, StreamingFileWriter] = {}
        self.published = False
        self._on_interrupted = on_interrupted
        self._lock: SetLock | None = None

    @property
    def manifest_path(self) -> Path:
        assert self.timestamp is not None, "claimed on entering"
        return self.directory / manifest_name(self.timestamp)

    def __enter__(self) -> "BackupSetWriter":
        try:
            for interrupted in remove_interrupted_sets(self.directory, self.mode):
                if self._on_interrupted:
                    self._on_interrupted(interrupted)
        except OSError as exc:
            where = Path(exc.filename) if exc.filename else self.directory
            raise storage_error(exc, where, "removing leftovers of interrupted backups") from exc
        if self.timestamp is not None:
            self._claim(self.timestamp)
            return self
        for _ in range(CLAIM_ATTEMPTS):
            try:
                self._claim(new_timestamp())
                return self
            except SetTaken:
                time.sleep(1.001 - time.time() % 1)  # into the next second
        raise InvalidParams(
            f"No free timestamp in {self.directory} for {CLAIM_ATTEMPTS} s: every second was taken by another "
            f"backup. Check what keeps starting backups there."
        )

    def _claim(self, timestamp: str) -> None:
        try:
            lock = SetLock.try_acquire(self.directory, timestamp, self.mode)
        except OSError as exc:
            raise storage_error(exc, self.directory / lock_name(timestamp), "claiming the backup set") from exc
        if lock is None:
            raise SetTaken(
                f"Another run is writing set {timestamp} in {self.directory} right now. Each start gets its own "
                f"set: request a new backup (without a timestamp) instead of repeating this one."
            )
        existing = sorted(p.name for p in _set_files(self.directory, timestamp) if p != lock.path)
        if existing:
            lock.release()
            raise SetTaken(
                f"A backup set with timestamp {timestamp} already exists in {self.directory} "
                f"({', '.join(existing)}). Backups never overwrite: request a new backup."
            )
        self.timestamp, self._lock = timestamp, lock

    def open_table(self, table: str, progress: Callable[[int, int], None] | None = None) -> StreamingFileWriter:
        assert self.timestamp is not None, "claimed on entering"
        path = self.directory / csv_name(table, self.timestamp)
        try:
            writer = StreamingFileWriter(path, self.mode, progress)
        except OSError as exc:
            raise storage_error(exc, tmp_path(path), f"creating the file of {table}") from exc
        self.writers[table] = writer
        return writer

    def publish(self, manifest: dict) -> Path:
        """Make the set visible: manifest .tmp, CSVs renamed, manifest renamed, each step durable."""
        manifest_tmp = tmp_path(self.manifest_path)
        try:
            write_json_durably(manifest_tmp, manifest, self.mode)
            for writer in self.writers.values():
                writer.publish()
            fsync_dir(self.directory)
            manifest_tmp.replace(self.manifest_path)
            self.published = True
            fsync_dir(self.directory)
        except OSError as exc:
            raise storage_error(exc, self.manifest_path, "publishing the backup set") from exc
        return self.manifest_path

    def __exit__(self, exc_type, exc, tb) -> None:
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
        for path in self._own_files():
            remove_quietly(path)
        try:
            fsync_dir(self.directory)
        except OSError:
            pass  # the files are unlinked; a lost directory fsync only risks their names reappearing

    def _own_files(self) -> Iterator[Path]:
        yield tmp_path(self.manifest_path)
        for writer in self.writers.values():
            yield writer.path
