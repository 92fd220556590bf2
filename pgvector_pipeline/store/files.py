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
from pgvector_pipeline.store.directory import Directory, UnsafeEntry
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


def mount_point(path: Path) -> Path:
    """The mount point of the file system holding `path` (for messages)."""
    path = Path(path).resolve()
    while not os.path.ismount(path):
        path = path.parent
    return path


def storage_error(
    exc: OSError, directory: Directory, name: str, doing: str, set_bytes_estimate: int | None = None
) -> StorageError:
    """A clear error for a failed write of `name` in `directory`; for a full disk, says how much is missing."""
    path = directory.path / name
    if isinstance(exc, UnsafeEntry):
        return StorageError(
            f"Cannot write {path} while {doing}: {exc.strerror}. Nothing under the backup root is followed or "
            f"written through a link; remove that entry."
        )
    directory_path = directory.path
    try:
        disk = mount_point(directory_path)
        free, total = directory.free_bytes()
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
            f"The disk holding {directory_path} (file system at {disk}) is full: writing {path.name} failed while "
            f"{doing}. {human_size(free)} of {human_size(total)} are free now that the partial files are "
            f"removed{needs}. Free space there or point the backup root at a larger disk, then start a new "
            f"backup."
        )
    return StorageError(
        f"Cannot write {path} while {doing}: {exc.strerror or exc}. Check the permissions and the disk "
        f"holding the backup root (file system at {disk}, {human_size(free)} free)."
    )


class StreamingFileWriter:
    """A COPY sink that writes NAME.tmp in `directory` while hashing and counting; `publish` renames it to NAME.

    psycopg2 calls `write` once per CSV line for COPY TO, so `writes` counts the header plus the rows
    independently of what the server reports.
    """

    def __init__(self, directory: Directory, name: str, mode: int, progress: Callable[[int, int], None] | None = None):
        self.directory = directory
        self.name = name
        self.tmp_name = tmp_name(name)
        self._file = os.fdopen(directory.create(self.tmp_name, mode), "wb", buffering=_READ_CHUNK)
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

    @property
    def path(self) -> Path:
        """Where the file is published (for messages and metadata)."""
        return self.directory.path / self.name

    def publish(self) -> None:
        self.directory.rename(self.tmp_name, self.name)

    def failed(self, exc: OSError, doing: str, set_bytes_estimate: int | None = None) -> StorageError:
        """Discard the partial file (first, so the free space reported is real) and say what failed."""
        self.discard()
        return storage_error(exc, self.directory, self.tmp_name, doing, set_bytes_estimate)

    def discard(self) -> int:
        """Close (a full disk makes the final flush fail: ignored) and delete the .tmp; returns bytes freed."""
        try:
            self._file.close()
        except OSError:
            pass  # the buffer could not be flushed; the file descriptor is closed all the same
        return self.directory.unlink_quietly(self.tmp_name)


def write_json_durably(directory: Directory, name: str, document: dict, mode: int) -> None:
    """Create `name` in `directory` (it must not exist) holding `document`, fsynced; nothing stays on error."""
    try:
        with os.fdopen(directory.create(name, mode), "w", encoding="utf-8") as file:
            json.dump(document, file, indent=2)
            file.write("\n")
            file.flush()
            os.fsync(file.fileno())
    except FileExistsError:
        raise
    except BaseException:
        directory.unlink_quietly(name)
        raise


class VerifiedReader(io.RawIOBase):
    """A published file read once, for loading, and checked against its recorded size and sha256 as it is read.

    The bytes hashed are the bytes handed on, so a file that changes between any earlier check and the
    load cannot load unnoticed, and the file is read once. A context manager: leaving it reads whatever
    the consumer left unread and raises DataError when size or sha256 differ, also when the consumer
    failed (a damaged file is reported as damaged, not as the bad row the damage made). The consumer's
    work must stay undone until leaving succeeds: restore loads inside a transaction it commits later.
    """

    def __init__(self, file: io.FileIO, name: str, expected_bytes: int, expected_sha256: str):
        super().__init__()
        self.name = name
        self._expected = (expected_bytes, expected_sha256)
        self._file = file  # owned by the caller (a held set), which closes it
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
            self.close()

    def _check(self, exc: BaseException | None) -> None:
        expected_bytes, expected_sha256 = self._expected
        found = self._hash.hexdigest()
        if (self._bytes, found) != (expected_bytes, expected_sha256):
            raise DataError(
                f"{self.name} does not match its manifest: the sha256 of its bytes is {found[:12]}… "
                f"({self._bytes} bytes), the manifest records {expected_sha256[:12]}… ({expected_bytes} bytes). "
                f"The file was changed or damaged after the backup, and nothing it held was kept: restore "
                f"another set."
            ) from exc
