"""Finding backup sets on disk: listing with filters, and resolving one set safely inside the root."""

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from pgvector_pipeline.errors import DataError, InvalidParams, ResourceNotFound
from pgvector_pipeline.postgres.catalog import BACKUP_TABLES
from pgvector_pipeline.store.layout import (
    BACKUP_DIR_NAME,
    GLOBAL_TASK_KEY,
    LOG_FILE_NAME,
    TASK_ID_PATTERN,
    TMP_SUFFIX,
    backup_dir,
    manifest_name,
    task_key,
    validate_timestamp,
)
from pgvector_pipeline.store.manifest import read_manifest

_CSV_NAME = re.compile(r"^(?P<table>%s)_(?P<ts>\d{8}_\d{6})\.csv$" % "|".join(BACKUP_TABLES))
_MANIFEST_NAME = re.compile(r"^vector_backup_(?P<ts>\d{8}_\d{6})\.json$")
_TMP_TIMESTAMP = re.compile(r"_(?P<ts>\d{8}_\d{6})\.(?:csv|json)%s$" % re.escape(TMP_SUFFIX))


@dataclass
class BackupSetInfo:
    task: str
    timestamp: str
    directory: Path
    files: dict[str, Path] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    has_manifest: bool = False
    has_log: bool = False
    interrupted: bool = False  # a .tmp of this timestamp is present: a backup died or is still writing
    manifest: dict | None = None
    manifest_error: str | None = None  # the manifest exists but cannot be read: the set is damaged

    @property
    def complete(self) -> bool:
        return not self.interrupted and not self.manifest_error and all(t in self.files for t in BACKUP_TABLES)

    @property
    def manifest_path(self) -> Path:
        return self.directory / manifest_name(self.timestamp)

    def rows(self, table: str) -> int | None:
        return self.manifest["tables"][table]["rows"] if self.manifest and table in self.manifest["tables"] else None

    @property
    def total_bytes(self) -> int:
        return sum(self.sizes.values())


def _scan_directory(task: str, directory: Path) -> list[BackupSetInfo]:
    sets: dict[str, BackupSetInfo] = {}
    has_log = False

    def entry(timestamp: str) -> BackupSetInfo:
        return sets.setdefault(timestamp, BackupSetInfo(task, timestamp, directory))

    with os.scandir(directory) as entries:
        for item in entries:
            if item.name == LOG_FILE_NAME:
                has_log = True
            elif match := _CSV_NAME.match(item.name):
                info = entry(match["ts"])
                info.files[match["table"]] = Path(item.path)
                info.sizes[match["table"]] = item.stat().st_size
            elif match := _MANIFEST_NAME.match(item.name):
                entry(match["ts"]).has_manifest = True
            elif match := _TMP_TIMESTAMP.search(item.name):
                entry(match["ts"]).interrupted = True
    for info in sets.values():
        info.has_log = has_log
        if info.has_manifest and not info.interrupted:
            try:
                info.manifest = read_manifest(info.manifest_path)
            except DataError as error:
                # One damaged set must not hide the others from the listing.
                info.manifest_error = error.message
    return [info for info in sets.values() if info.files or info.has_manifest]


def _backup_dirs(root: Path, global_only: bool, task_id: str | None) -> list[tuple[str, Path]]:
    if task_id:
        return [(task_key(task_id), backup_dir(root, task_key(task_id)))]
    dirs = [(GLOBAL_TASK_KEY, Path(root) / BACKUP_DIR_NAME)]
    if not global_only and Path(root).is_dir():
        with os.scandir(root) as entries:
            for item in entries:
                # The global key is reserved for {root}/vector_bak; a {root}/global/ directory is not a task.
                if item.is_dir() and TASK_ID_PATTERN.match(item.name) and item.name != GLOBAL_TASK_KEY:
                    dirs.append((item.name, Path(item.path) / BACKUP_DIR_NAME))
    return dirs


def list_backup_sets(root: Path, *, global_only: bool = False, task_id: str | None = None) -> list[BackupSetInfo]:
    """Every set under the root (global `vector_bak/` and `<task_id>/vector_bak/`), newest first.

    Complete and incomplete sets alike; `complete` tells them apart. Only manifests are read.
    """
    found = []
    for task, directory in _backup_dirs(Path(root), global_only, task_id):
        if directory.is_dir():
            found.extend(_scan_directory(task, directory))
    return sorted(found, key=lambda s: (s.timestamp, s.task), reverse=True)


def resolve_backup_dir(root: Path, backup_path: str) -> tuple[str, Path]:
    """The task key and directory of a user-given backup_path, refused unless it lies inside the root.

    Accepts a path relative to the root or an absolute one, naming a vector_bak directory or its task
    directory. `..` is refused outright; symlinks are resolved before the containment check.
    """
    if not backup_path or ".." in Path(backup_path).parts:
        raise InvalidParams(f"backup_path {backup_path!r} is not allowed: give a path inside the backup root without '..'.")
    root_real = Path(root).resolve()
    candidate = Path(backup_path) if Path(backup_path).is_absolute() else Path(root) / backup_path
    real = _inside_root(root_real, candidate, f"backup_path {backup_path!r}")
    if real.name != BACKUP_DIR_NAME:
        real = real / BACKUP_DIR_NAME
    relative = real.relative_to(root_real).parts
    if relative == (BACKUP_DIR_NAME,):
        return GLOBAL_TASK_KEY, real
    if len(relative) == 2 and TASK_ID_PATTERN.match(relative[0]):
        return relative[0], real
    raise InvalidParams(
        f"backup_path {backup_path!r} is not a backup directory: use 'vector_bak' or '<task_id>/vector_bak'."
    )


def _inside_root(root_real: Path, path: Path, what: str) -> Path:
    """`path` with symlinks resolved, refused unless it stays inside the (resolved) backup root."""
    real = path.resolve()
    if real != root_real and root_real not in real.parents:
        raise InvalidParams(
            f"{what} resolves to {real}, outside the backup root {root_real}. Only sets inside the backup "
            f"root can be restored."
        )
    return real


def locate_backup_set(
    root: Path, *, task_id: str | None = None, timestamp: str | None = None, backup_path: str | None = None
) -> BackupSetInfo:
    """The set named by task id (None or 'global' for the global directory) and timestamp, or by a
    backup_path inside the root and timestamp.

    Task id, timestamp and directory are checked before the directory is scanned; the set's CSVs and
    manifest must resolve inside the root too, or the set is refused before any row is read."""
    if not timestamp:
        raise InvalidParams("Name the set's timestamp (YYYYMMDD_HHMMSS), or pick a partition of the backup assets.")
    validate_timestamp(timestamp)
    root_real = Path(root).resolve()
    if backup_path:
        task, directory = resolve_backup_dir(root, backup_path)
    else:
        task = task_key(task_id)
        directory = _inside_root(root_real, backup_dir(root, task), f"The directory of task {task!r}")
    if directory.is_dir():
        for info in _scan_directory(task, directory):
            if info.timestamp == timestamp:
                for path in [*info.files.values(), *([info.manifest_path] if info.has_manifest else [])]:
                    _inside_root(root_real, path, str(path))
                return info
    raise ResourceNotFound(
        f"No backup set with timestamp {timestamp} in {directory}. List the sets (vector_backup_inventory) "
        f"and pick an existing task id and timestamp."
    )
