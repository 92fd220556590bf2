"""The backup store on a local (or mounted) directory tree, compatible with the system it replaces:

    {root}/vector_bak/                  global sets
    {root}/{task_id}/vector_bak/        the sets of one task

Every directory is opened without following links and every file relative to its directory (see
store.directory); claims and set locks are `flock`s, publishing is `rename`, the log is appended with
O_APPEND. Each operation opens what it needs from the root, so nothing outlives a call but a writer's or
reader's own `with` block.
"""

from collections.abc import Callable
from pathlib import Path

from pgvector_pipeline.errors import ResourceNotFound
from pgvector_pipeline.store.adopt import adopt_legacy_set
from pgvector_pipeline.store.backup_set import BackupSetWriter, remove_interrupted_sets
from pgvector_pipeline.store.damage import damage_log_entry, mark_in_directory
from pgvector_pipeline.store.files import DEFAULT_FILE_MODE, check_file_mode, storage_error
from pgvector_pipeline.store.interface import InterruptedSet, Warn
from pgvector_pipeline.store.listing import BackupSetInfo, find_set, scan_sets
from pgvector_pipeline.store.locations import location_path, open_location, open_root, task_directories
from pgvector_pipeline.store.log import record_in_log
from pgvector_pipeline.store.manifest import Manifest
from pgvector_pipeline.store.reading import HeldSet
from pgvector_pipeline.store.retention import delete_backup_set


class _LocalSetWriter(BackupSetWriter):
    """A BackupSetWriter that owns the directory it writes into (closed when the writer is left)."""

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            super().__exit__(exc_type, exc, tb)
        finally:
            self.directory.close()


class LocalBackupStore:
    """Backup sets under a directory `root`; files created with `file_mode` (0600 or 0640)."""

    def __init__(self, root: Path, file_mode: int = DEFAULT_FILE_MODE):
        self.root = Path(root)
        self.file_mode = check_file_mode(file_mode)

    def __repr__(self) -> str:
        return f"LocalBackupStore({str(self.root)!r})"

    @property
    def where(self) -> str:
        return str(self.root)

    def location(self, task: str) -> str:
        return str(location_path(self.root, task))

    def list_sets(self, *, global_only: bool = False, task_id: str | None = None) -> list[BackupSetInfo]:
        return scan_sets(self, self.root, global_only=global_only, task_id=task_id)

    def locate(
        self, *, task_id: str | None = None, timestamp: str | None = None, backup_path: str | None = None
    ) -> BackupSetInfo:
        return find_set(self, self.root, task_id=task_id, timestamp=timestamp, backup_path=backup_path)

    def task_ids(self) -> list[str]:
        root_dir = open_root(self.root)
        if root_dir is None:
            return []
        with root_dir:
            return task_directories(root_dir)

    def new_set(
        self,
        task: str,
        timestamp: str | None,
        *,
        create_task_dir: bool = False,
        on_interrupted: Callable[[InterruptedSet], None] | None = None,
    ) -> BackupSetWriter:
        location = open_location(self.root, task, create=True, create_task_dir=create_task_dir)
        try:
            return _LocalSetWriter(location, timestamp, self.file_mode, on_interrupted)
        except BaseException:
            location.close()
            raise

    def remove_interrupted(self, task: str) -> list[InterruptedSet]:
        try:
            location = open_location(self.root, task)
        except ResourceNotFound:
            return []
        with location:
            try:
                return remove_interrupted_sets(location, self.file_mode)
            except OSError as exc:
                raise storage_error(
                    exc, location, str(exc.filename or ""), "removing leftovers of interrupted backups"
                ) from exc

    def read_set(self, backup_set: BackupSetInfo, tables: list[str]) -> HeldSet:
        return HeldSet(self.root, backup_set, tables)

    def delete_set(self, backup_set: BackupSetInfo, warn: Warn) -> int | None:
        return delete_backup_set(self.root, backup_set, self.file_mode, warn)

    def mark_damaged(self, backup_set: BackupSetInfo, reason: str, warn: Warn) -> str:
        with open_location(self.root, backup_set.task) as location:
            marker = mark_in_directory(location, backup_set.timestamp, reason, self.file_mode)
            record_in_log(location, *damage_log_entry(backup_set.timestamp, reason), self.file_mode, warn)
        return marker

    def append_log(self, task: str, headline: str, details: list[str], warn: Warn) -> bool:
        try:
            location = open_location(self.root, task)
        except Exception as error:  # the log is a report: a location that cannot be opened only warns
            warn(f"Could not open {self.location(task)} to log ({error}); the entry was: {headline}")
            return False
        with location:
            return record_in_log(location, headline, details, self.file_mode, warn)

    def adopt(self, backup_set: BackupSetInfo) -> Manifest:
        return adopt_legacy_set(self.read_set(backup_set, sorted(backup_set.table_files)), self.file_mode)
