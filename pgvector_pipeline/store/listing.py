"""Finding backup sets on disk: listing with filters, and resolving one set safely inside the root."""

import os
from dataclasses import dataclass, field
from pathlib import Path

from pgvector_pipeline.errors import DataError, InvalidParams, ResourceNotFound
from pgvector_pipeline.names import BACKUP_TABLES
from pgvector_pipeline.store.layout import (
    BACKUP_DIR_NAME,
    GLOBAL_TASK_KEY,
    LOG_FILE_NAME,
    TASK_ID_PATTERN,
    backup_dir,
    inside_root,
    manifest_name,
    parse_set_file_name,
    task_key,
    validate_timestamp,
)
from pgvector_pipeline.store.log import logged_manifest_timestamps
from pgvector_pipeline.store.manifest import Manifest, read_manifest

STATUS_COMPLETE = "complete"
STATUS_LEGACY = "legacy"  # both CSVs, no manifest, and the log does not name one: made by the old system
STATUS_UNFINISHED = "unfinished"  # being written now, or its writer died (the next backup there cleans it)
STATUS_INCOMPLETE = "incomplete"  # a table's CSV is missing
STATUS_DAMAGED = "damaged"  # manifest unreadable, invalid or deleted, or a file leads out of the root


@dataclass
class BackupSetInfo:
    """One set as found on disk: its files, sizes, manifest and status."""

    task: str
    timestamp: str
    directory: Path
    files: dict[str, Path] = field(default_factory=dict)  # published CSVs by table
    sizes: dict[str, int] = field(default_factory=dict)  # bytes of each table's CSV (or its .tmp if unfinished)
    has_manifest: bool = False
    has_log: bool = False
    unfinished: bool = False
    manifest: Manifest | None = None
    problem: str | None = None  # why the set is damaged

    @property
    def status(self) -> str:
        if self.problem:
            return STATUS_DAMAGED
        if self.unfinished:
            return STATUS_UNFINISHED
        if not all(t in self.files for t in BACKUP_TABLES):
            return STATUS_INCOMPLETE
        return STATUS_COMPLETE if self.manifest else STATUS_LEGACY

    @property
    def complete(self) -> bool:
        """Both tables of the same timestamp, nothing damaged or unfinished (legacy sets included)."""
        return self.status in (STATUS_COMPLETE, STATUS_LEGACY)

    @property
    def manifest_path(self) -> Path:
        return self.directory / manifest_name(self.timestamp)

    def rows(self, table: str) -> int | None:
        entry = self.manifest.tables.get(table) if self.manifest else None
        return entry.rows if entry else None

    @property
    def total_bytes(self) -> int:
        return sum(self.sizes.values())


def _scan_directory(root: Path, task: str, directory: Path) -> list[BackupSetInfo]:
    sets: dict[str, BackupSetInfo] = {}
    has_log = False

    def entry(timestamp: str) -> BackupSetInfo:
        return sets.setdefault(timestamp, BackupSetInfo(task, timestamp, directory))

    with os.scandir(directory) as entries:
        for item in entries:
            if item.name == LOG_FILE_NAME:
                has_log = True
                continue
            parsed = parse_set_file_name(item.name)
            if parsed is None:
                continue
            info = entry(parsed.timestamp)
            if item.is_symlink():
                try:
                    inside_root(root, Path(item.path), item.name)
                except InvalidParams as error:
                    info.problem = error.message
            if parsed.tmp or parsed.kind == "lock":
                info.unfinished = True
                if parsed.table:
                    info.sizes.setdefault(parsed.table, item.stat().st_size)
            elif parsed.table:
                info.files[parsed.table] = Path(item.path)
                info.sizes[parsed.table] = item.stat().st_size
            else:
                info.has_manifest = True
    logged = logged_manifest_timestamps(directory) if has_log else set()
    for info in sets.values():
        info.has_log = has_log
        if info.problem or info.unfinished:
            continue
        if info.has_manifest:
            try:
                info.manifest = read_manifest(info.manifest_path, info.timestamp)
            except DataError as error:
                # One damaged set must not hide the others from the listing.
                info.problem = error.message
        elif info.timestamp in logged:
            info.problem = (
                f"The log {directory / LOG_FILE_NAME} records that this tool wrote set {info.timestamp} with "
                f"manifest {manifest_name(info.timestamp)}, and that manifest is gone: without it the CSVs cannot "
                f"be verified, so the set is treated as damaged."
            )
    return list(sets.values())


def _backup_dirs(root: Path, global_only: bool, task_id: str | None) -> list[tuple[str, Path]]:
    if task_id:
        return [(task_key(task_id), backup_dir(root, task_key(task_id)))]
    dirs = [(GLOBAL_TASK_KEY, Path(root) / BACKUP_DIR_NAME)]
    if not global_only:
        dirs.extend((task, path / BACKUP_DIR_NAME) for task, path in task_directories(root).items())
    return dirs


def task_directories(root: Path) -> dict[str, Path]:
    """The task directories under the root by task id: directories named as a task id can be.

    The global key is reserved for {root}/vector_bak, and vector_bak itself is the global directory: neither
    {root}/global/ nor {root}/vector_bak/ is a task.
    """
    if not Path(root).is_dir():
        return {}
    with os.scandir(root) as entries:
        return {
            item.name: Path(item.path)
            for item in entries
            if item.is_dir()
            and TASK_ID_PATTERN.fullmatch(item.name)
            and item.name not in (GLOBAL_TASK_KEY, BACKUP_DIR_NAME)
        }


def list_backup_sets(root: Path, *, global_only: bool = False, task_id: str | None = None) -> list[BackupSetInfo]:
    """Every set under the root (global `vector_bak/` and `<task_id>/vector_bak/`), newest first.

    Sets of every status (`status`, `complete`); unfinished ones with the size written so far. Only
    manifests and logs are read. Directories that lead out of the root are left out.
    """
    found = []
    for task, directory in _backup_dirs(Path(root), global_only, task_id):
        if not directory.is_dir():
            continue
        try:
            inside_root(root, directory, f"The backup directory of task {task!r}")
        except InvalidParams:
            continue
        found.extend(_scan_directory(Path(root), task, directory))
    return sorted(found, key=lambda s: (s.timestamp, s.task), reverse=True)


def resolve_backup_dir(root: Path, backup_path: str) -> tuple[str, Path]:
    """The task key and directory of a user-given backup_path, refused unless it lies inside the root.

    Accepts a path relative to the root or an absolute one, naming a vector_bak directory or its task
    directory. `..` is refused outright; symlinks are resolved before the containment check.
    """
    if not backup_path or ".." in Path(backup_path).parts:
        raise InvalidParams(
            f"backup_path {backup_path!r:.80} is not allowed: give a path inside the backup root without '..'."
        )
    root_real = Path(root).resolve()
    candidate = Path(backup_path) if Path(backup_path).is_absolute() else Path(root) / backup_path
    real = inside_root(root, candidate, f"backup_path {backup_path!r:.80}")
    if real.name != BACKUP_DIR_NAME:
        real = real / BACKUP_DIR_NAME
    relative = real.relative_to(root_real).parts
    if relative == (BACKUP_DIR_NAME,):
        return GLOBAL_TASK_KEY, real
    if len(relative) == 2 and TASK_ID_PATTERN.fullmatch(relative[0]):
        return relative[0], real
    raise InvalidParams(
        f"backup_path {backup_path!r:.80} is not a backup directory: use 'vector_bak' or '<task_id>/vector_bak'."
    )


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
    if backup_path:
        task, directory = resolve_backup_dir(root, backup_path)
    else:
        task = task_key(task_id)
        directory = inside_root(root, backup_dir(root, task), f"The directory of task {task!r}")
    if directory.is_dir():
        for info in _scan_directory(Path(root), task, directory):
            if info.timestamp == timestamp:
                for path in [*info.files.values(), *([info.manifest_path] if info.has_manifest else [])]:
                    inside_root(root, path, str(path))
                return info
    raise ResourceNotFound(
        f"No backup set with timestamp {timestamp} in {directory}. List the sets (vector_backup_inventory) "
        f"and pick an existing task id and timestamp."
    )
