"""The human-readable vector_backup_log.txt, appended to (never overwritten) once per backup or error.

The log is a report, not the record: a set is defined by its files and manifest. So a log that cannot
be written (disk full, permissions) is a warning, never a reason to fail or to hide the real error.
"""

import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from pgvector_pipeline.store.directory import Directory
from pgvector_pipeline.store.layout import LOG_FILE_NAME, parse_set_file_name

# The detail line of a successful backup that names its manifest; a manifest the log names must exist.
_MANIFEST_LINE_PREFIX = "manifest: "
# A log is read only to find those lines; a log larger than this is read up to here.
_MAX_LOG_READ = 64 << 20


def manifest_line(manifest_file_name: str) -> str:
    """The log's detail line that names a published manifest."""
    return _MANIFEST_LINE_PREFIX + manifest_file_name


def logged_manifest_timestamps(directory: Directory) -> set[str]:
    """Timestamps of the sets whose manifest the directory's log says this tool published."""
    found = set()
    try:
        with directory.open_read(LOG_FILE_NAME) as file:
            for raw in file.read(_MAX_LOG_READ).splitlines():
                if timestamp := _published_in(raw.decode("utf-8", "replace").strip()):
                    found.add(timestamp)
    except OSError:
        pass  # no log, not a regular file, or unreadable: nothing it could name
    return found


def published_set(details: list[str]) -> str | None:
    """The timestamp of the set whose manifest an entry's details name (see manifest_line), if any."""
    return next((timestamp for line in details if (timestamp := _published_in(line))), None)


def _published_in(line: str) -> str | None:
    """The timestamp of the set whose published manifest a log line names (see manifest_line), if it is one."""
    if not line.startswith(_MANIFEST_LINE_PREFIX):
        return None
    parsed = parse_set_file_name(line[len(_MANIFEST_LINE_PREFIX) :])
    return parsed.timestamp if parsed and parsed.kind == "manifest" and not parsed.tmp else None


def format_entry(headline: str, details: list[str]) -> str:
    """One entry as the log holds it: a stamped headline, then its details indented."""
    stamp = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %z")
    return f"[{stamp}] {headline}\n" + "".join(f"    {line}\n" for line in details)


def append_log_entry(directory: Directory, headline: str, details: list[str], mode: int) -> Path:
    """Append one entry and fsync; a new log file gets `mode` (an existing one keeps its own). Raises OSError,
    UnsafeEntry when the log's name is a symlink, FIFO, device or directory."""
    entry = format_entry(headline, details)
    fd = directory.open_or_create(LOG_FILE_NAME, os.O_WRONLY | os.O_APPEND, mode)
    with os.fdopen(fd, "a", encoding="utf-8") as file:
        file.write(entry)
        file.flush()
        os.fsync(file.fileno())
    return directory.path / LOG_FILE_NAME


def record_in_log(
    directory: Directory, headline: str, details: list[str], mode: int, warn: Callable[[str], None]
) -> bool:
    """Append an entry; on failure warn (with the entry, so it is not lost) and return False."""
    try:
        append_log_entry(directory, headline, details, mode)
        return True
    except OSError as exc:
        warn(
            f"Could not append to {directory.path / LOG_FILE_NAME} ({exc.strerror or exc}); the entry was: "
            f"{headline}" + "".join(f"; {line}" for line in details)
        )
        return False
