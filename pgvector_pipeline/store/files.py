"""Crash-safe file writing: stream into NAME.tmp, fsync, rename, fsync the directory.

Files are created with an explicit mode (0600 by default): backups hold the whole vector store.
"""

import errno
import hashlib
import io
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from pgvector_pipeline.errors import DataError, InvalidParams, StorageError
from pgvector_pipeline.sizes import human_size
from pgvector_pipeline.store.layout import tmp_name

DEFAULT_FILE_MODE = 0o600
ALLOWED_FILE_MODES = (0o600, 0o640)
_PROGRESS_INTERVAL_S = 5.0
_READ_CHUNK = 1 << 20
# A StreamingFileWriter starts the write-back of its file every this many bytes.
_WRITEBACK_BYTES = 32 << 20


def check_file_mode(mode: int) -> int:
    """`mode` if it is an allowed mode for backup files; InvalidParams otherwise."""
    if mode not in ALLOWED_FILE_MODES:
        raise InvalidParams(
            f"File mode {mode:#o} is not allowed for backup files: use 0600 (owner only, the default) or "
            f"0640 (owner and group)."
        )
    return mode


def tmp_path(path: Path) -> Path:
    """PATH.tmp, where PATH is written before it is published."""
    return path.with_name(tmp_name(path.name))


def create_exclusive(path: Path, mode: int) -> int:
    """A new file opened for writing with exactly `mode` (the umask cannot widen or narrow it)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    os.fchmod(fd, mode)
    return fd


def fsync_dir(directory: Path) -> None:
    """Make renames and unlinks in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_quietly(path: Path) -> int:
    """Delete `path` if it is there; returns the bytes freed. Cleanup must never raise over the real error."""
    try:
        size = path.lstat().st_size
        path.unlink()
        return size
    except OSError:
        return 0


def mount_point(path: Path) -> Path:
    """The mount point of the file system holding `path`."""
    path = Path(path).resolve()
    while not os.path.ismount(path):
        path = path.parent
    return path


def free_bytes(directory: Path) -> tuple[int, int]:
    """(free for unprivileged writers, total) bytes of the file system holding `directory`."""
    stats = os.statvfs(directory)
    return stats.f_bavail * stats.f_frsize, stats.f_blocks * stats.f_frsize


def storage_error(exc: OSError, path: Path, doing: str, set_bytes_estimate: int | None = None) -> StorageError:
    """A clear error for a failed write into the backup root; for a full disk, says how much is missing."""
    directory = Path(path).parent
    try:
        disk = mount_point(directory)
        free, total = free_bytes(directory)
    except OSError:
        return StorageError(f"Cannot write {path} while {doing}: {exc.strerror or exc}. Check the backup root.")
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        needs = ""
        if set_bytes_estimate is not None:
            needs = (
                f"; the set needs about {human_size(set_bytes_estimate)} in all (estimated from what was "
                f"written), about {human_size(max(set_bytes_estimate - free, 0))} more than is free"
            )
        return StorageError(
            f"The disk holding {directory} (file system at {disk}) is full: writing {path.name} failed while "
            f"{doing}. {human_size(free)} of {human_size(total)} are free now that the partial files are "
            f"removed{needs}. Free space there or point the backup root at a larger disk, then start a new "
            f"backup."
        )
    return StorageError(
        f"Cannot write {path} while {doing}: {exc.strerror or exc}. Check the permissions and the disk "
        f"holding the backup root (file system at {disk}, {human_size(free)} free)."
    )


class StreamingFileWriter:
    """A COPY sink that writes to PATH.tmp while hashing and counting; `publish` renames it to PATH.

    psycopg2 calls `write` once per CSV line for COPY TO, so `writes` counts the header plus the rows
    independently of what the server reports.
    """

    def __init__(self, path: Path, mode: int, progress: Callable[[int, int], None] | None = None):
        self.path = Path(path)
        self.tmp = tmp_path(self.path)
        self._file = os.fdopen(create_exclusive(self.tmp, mode), "wb", buffering=_READ_CHUNK)
        self._hash = hashlib.sha256()
        self.bytes = 0
        self.writes = 0
        self._progress = progress
        self._last_progress = time.monotonic()
        self._written_back = 0

    def write(self, data: bytes) -> int:
        self._file.write(data)
        self._hash.update(data)
        self.bytes += len(data)
        self.writes += 1
        if self.bytes - self._written_back >= _WRITEBACK_BYTES:
            self._start_writeback()
        if self._progress and time.monotonic() - self._last_progress >= _PROGRESS_INTERVAL_S:
            self._last_progress = time.monotonic()
            self._progress(self.writes, self.bytes)
        return len(data)

    def _start_writeback(self) -> None:
        """Have the kernel start writing what is written so far, without waiting for it.

        POSIX_FADV_DONTNEED starts the write-back of dirty pages of the range and drops the clean ones: the
        final fsync then waits only for the tail instead of the whole file, and a backup does not push the
        database's pages out of the page cache.
        """
        self._file.flush()
        if hasattr(os, "posix_fadvise"):  # Linux and most Unixes; elsewhere fsync does all the work at the end
            os.posix_fadvise(self._file.fileno(), 0, self.bytes, os.POSIX_FADV_DONTNEED)
        self._written_back = self.bytes

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def flush_to_disk(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()

    def publish(self) -> None:
        os.replace(self.tmp, self.path)

    def discard(self) -> int:
        """Close (a full disk makes the final flush fail: ignored) and delete the .tmp; returns bytes freed."""
        try:
            self._file.close()
        except OSError:
            pass  # the buffer could not be flushed; the file descriptor is closed all the same
        return remove_quietly(self.tmp)


def write_json_durably(path: Path, document: dict, mode: int) -> None:
    """Create `path` (it must not exist) holding `document`, fsynced; nothing stays there on error."""
    try:
        with os.fdopen(create_exclusive(path, mode), "w", encoding="utf-8") as file:
            json.dump(document, file, indent=2)
            file.write("\n")
            file.flush()
            os.fsync(file.fileno())
    except BaseException:
        remove_quietly(path)
        raise


def sha256_file(path: Path) -> str:
    """The sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(_READ_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class VerifiedReader(io.RawIOBase):
    """A published file read once, for loading, and checked against its recorded size and sha256 as it is read.

    The bytes hashed are the bytes handed on, so a file that changes between any earlier check and the
    load cannot load unnoticed, and the file is read once. A context manager: leaving it reads whatever
    the consumer left unread and raises DataError when size or sha256 differ, also when the consumer
    failed (a damaged file is reported as damaged, not as the bad row the damage made). The consumer's
    work must stay undone until leaving succeeds: restore loads inside a transaction it commits later.
    """

    def __init__(self, path: Path, expected_bytes: int, expected_sha256: str):
        super().__init__()
        self.path = Path(path)
        self._expected = (expected_bytes, expected_sha256)
        self._file = open(self.path, "rb", buffering=0)
        self._hash = hashlib.sha256()
        self._bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        count = self._file.readinto(buffer) or 0
        with memoryview(buffer) as view:
            self._hash.update(view[:count])
        self._bytes += count
        return count

    def __enter__(self) -> "VerifiedReader":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            # An interrupt (BaseException) ends the run: no point reading on.
            if exc is None or isinstance(exc, Exception):
                while self.read(_READ_CHUNK):
                    pass
                self._check(exc)
        finally:
            self._file.close()
            self.close()

    def _check(self, exc: BaseException | None) -> None:
        expected_bytes, expected_sha256 = self._expected
        found = self._hash.hexdigest()
        if (self._bytes, found) != (expected_bytes, expected_sha256):
            raise DataError(
                f"{self.path.name} does not match its manifest: the sha256 of its bytes is {found[:12]}… "
                f"({self._bytes} bytes), the manifest records {expected_sha256[:12]}… ({expected_bytes} bytes). "
                f"The file was changed or damaged after the backup, and nothing it held was kept: restore "
                f"another set."
            ) from exc
