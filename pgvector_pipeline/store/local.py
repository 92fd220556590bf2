"""The backup store on a local (or mounted) directory tree, compatible with the system it replaces:

    {root}/vector_bak/                  global sets
    {root}/{task_id}/vector_bak/        the sets of one task

Every directory is opened without following links and every file relative to its directory (see
store.directory); claims and set locks are `flock`s, publishing is `rename`, the log is appended with
O_APPEND. Each operation opens what it needs from the root, so nothing outlives a call but a writer's or
reader's own `with` block.
"""

import os
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType

from pgvector_pipeline.errors import DataError, ResourceNotFound
from pgvector_pipeline.sizes import human_size
from pgvector_pipeline.store.adopt import adopted_manifest
from pgvector_pipeline.store.backup_set import BackupSetWriter, SetLock, remove_interrupted_sets
from pgvector_pipeline.store.backup_set_info import BackupSetInfo, Warn
from pgvector_pipeline.store.damage import damage_log_entry, mark_in_directory
from pgvector_pipeline.store.directory import Directory, UnsafeEntry, try_flock
from pgvector_pipeline.store.files import DEFAULT_FILE_MODE, check_file_mode, storage_error, write_json_durably
from pgvector_pipeline.store.interface import InterruptedSet
from pgvector_pipeline.store.keys import NO_KEYS, SetKeys
from pgvector_pipeline.store.layout import manifest_name
from pgvector_pipeline.store.listing import find_set, scan_sets
from pgvector_pipeline.store.locations import location_path, open_location, open_root, task_directories
from pgvector_pipeline.store.log import record_in_log
from pgvector_pipeline.store.manifest import Manifest, adopted_read_back, read_manifest
from pgvector_pipeline.store.reading import HeldSet


class _LocalSetWriter(BackupSetWriter):
    """A BackupSetWriter that owns the directory it writes into (closed when the writer is left)."""

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            super().__exit__(exc_type, exc, tb)
        finally:
            self.directory.close()


class LocalBackupStore:
    """Backup sets under a directory `root`; files created with `file_mode` (0600 or 0640); new sets encrypted to the
    recipients of `keys`, encrypted sets read with its identities (store.keys)."""

    def __init__(self, root: Path, file_mode: int = DEFAULT_FILE_MODE, keys: SetKeys = NO_KEYS):
        self.root = Path(root)
        self.file_mode = check_file_mode(file_mode)
        self.keys = keys

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
            return _LocalSetWriter(location, timestamp, self.file_mode, on_interrupted, self.keys)
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
        """Delete a set's files and log it; bytes freed, or None when a run writes or reads the set now.

        The set's own lock keeps writers off; an exclusive flock on each of its files, taken without waiting,
        keeps it from readers (see store.reading), which hold shared ones for as long as they read.
        """
        with open_location(self.root, backup_set.task) as location:
            try:
                lock = SetLock.try_acquire(location, backup_set.timestamp, self.file_mode)
            except UnsafeEntry:
                return None
            if lock is None:
                return None
            with lock, ExitStack() as held:
                # CSVs first: a set cut short here still has its manifest, so it lists as incomplete, not as legacy.
                doomed = backup_set.file_names()
                for name in doomed:
                    try:
                        file = held.enter_context(location.open_read(name))
                    except (FileNotFoundError, UnsafeEntry):
                        continue  # gone, or no longer a regular file: only its name is removed, nothing it points to
                    if not try_flock(file.fileno(), exclusive=True):
                        return None
                freed = sum(location.unlink_quietly(name) for name in doomed)
                location.fsync()
            record_in_log(
                location,
                f"retention deleted set {backup_set.timestamp} ({backup_set.status}, {human_size(freed)})",
                doomed,
                self.file_mode,
                warn,
            )
        return freed

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
        """Write the adopted manifest of a legacy set, read from its held files, and return it."""
        with self.read_set(backup_set, sorted(backup_set.table_files)) as held:
            assert held.location is not None
            manifest = adopted_manifest(held, backup_set)
            _write_adopted(held.location, backup_set, manifest.as_document(), self.file_mode)
            return adopted_read_back(read_manifest(held.location, backup_set.timestamp))

    # --- where a set's files are: local paths, for people and tests (a listed set names only its location) ------

    def set_directory(self, backup_set: BackupSetInfo) -> Path:
        """The directory of a set of this store."""
        return location_path(self.root, backup_set.task)

    def set_files(self, backup_set: BackupSetInfo) -> dict[str, Path]:
        """The published files of a set of this store, by table."""
        directory = self.set_directory(backup_set)
        return {table: directory / name for table, name in backup_set.table_files.items()}

    def manifest_path(self, backup_set: BackupSetInfo) -> Path:
        """Where the manifest of a set of this store is (or would be)."""
        return self.set_directory(backup_set) / manifest_name(backup_set.timestamp)


def _write_adopted(location: Directory, backup_set: BackupSetInfo, document: Mapping[str, object], mode: int) -> None:
    """Written under a name no set file has, then hard-linked into place: the link fails if a manifest
    appeared meanwhile, and a crash leaves no file that a backup's cleanup would mistake for a set."""
    target = manifest_name(backup_set.timestamp)
    partial = f".adopting_{target}.{os.getpid()}"
    try:
        location.unlink_quietly(partial)
        write_json_durably(location, partial, document, mode)
        location.link(partial, target)
        location.fsync()
    except FileExistsError:
        raise DataError(
            f"Set {backup_set.timestamp} in {backup_set.location} got a manifest while it was adopted."
        ) from None
    except OSError as exc:
        raise storage_error(exc, location, target, "adopting an old-system set") from None
    finally:
        location.unlink_quietly(partial)


def list_backup_sets(root: Path, *, global_only: bool = False, task_id: str | None = None) -> list[BackupSetInfo]:
    """The sets of the local store at `root` (see LocalBackupStore.list_sets)."""
    return LocalBackupStore(root).list_sets(global_only=global_only, task_id=task_id)


def locate_backup_set(
    root: Path, *, task_id: str | None = None, timestamp: str | None = None, backup_path: str | None = None
) -> BackupSetInfo:
    """One set of the local store at `root` (see LocalBackupStore.locate)."""
    return LocalBackupStore(root).locate(task_id=task_id, timestamp=timestamp, backup_path=backup_path)
