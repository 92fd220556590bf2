"""Crash-safe file writing: stream into NAME.tmp, fsync, rename, fsync the directory."""

import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from pgvector_pipeline.store.layout import TMP_SUFFIX

_PROGRESS_INTERVAL_S = 5.0
_READ_CHUNK = 1 << 20


def tmp_path(path: Path) -> Path:
    return path.with_name(path.name + TMP_SUFFIX)


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class StreamingFileWriter:
    """A COPY sink that writes to PATH.tmp while hashing and counting, and publishes PATH only on `finish`.

    psycopg2 calls `write` once per CSV line for COPY TO, so `writes` counts the header plus the rows
    independently of what the server reports.
    """

    def __init__(self, path: Path, progress: Callable[[int, int], None] | None = None):
        self.path = Path(path)
        self.tmp = tmp_path(self.path)
        self._file = open(self.tmp, "xb", buffering=_READ_CHUNK)
        self._hash = hashlib.sha256()
        self.bytes = 0
        self.writes = 0
        self._progress = progress
        self._last_progress = time.monotonic()

    def write(self, data: bytes) -> int:
        self._file.write(data)
        self._hash.update(data)
        self.bytes += len(data)
        self.writes += 1
        if self._progress and time.monotonic() - self._last_progress >= _PROGRESS_INTERVAL_S:
            self._last_progress = time.monotonic()
            self._progress(self.writes, self.bytes)
        return len(data)

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def flush_to_disk(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()

    def publish(self) -> None:
        os.replace(self.tmp, self.path)

    def discard(self) -> None:
        if not self._file.closed:
            self._file.close()
        self.tmp.unlink(missing_ok=True)


def write_json_atomic(path: Path, document: dict) -> None:
    tmp = tmp_path(path)
    with open(tmp, "w", encoding="utf-8") as file:
        json.dump(document, file, indent=2, sort_keys=False)
        file.write("\n")
        file.flush()
        os.fsync(file.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(_READ_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def human_size(num_bytes: int) -> str:
    size = float(num_bytes)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")
