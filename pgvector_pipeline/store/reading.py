"""Reading a set: its files opened once and held, so retention cannot delete them mid-read.

A reader (restore, adoption) opens every file of the set it needs (regular files only, relative to the
set's directory, see store.directory) and takes a shared flock on each for as long as it reads.
Retention deletes a set only after taking an exclusive flock on each of its files without waiting, so a
held set is skipped, and a set being deleted is refused to a reader instead of vanishing under it.
"""

import io
import os
from pathlib import Path

from pgvector_pipeline.errors import DataError
from pgvector_pipeline.store.backup_set_info import BackupSetInfo
from pgvector_pipeline.store.directory import Directory, UnsafeEntry, try_flock
from pgvector_pipeline.store.layout import manifest_name, sealed_manifest_name
from pgvector_pipeline.store.locations import open_location


class HeldSet:
    """The files of `tables` (and the manifest) of a set, open and share-locked while the `with` block runs."""

    def __init__(self, root: Path, backup_set: BackupSetInfo, tables: list[str]):
        self.root = Path(root)
        self.backup_set = backup_set
        missing = [table for table in tables if table not in backup_set.table_files]
        if missing:
            raise DataError(f"Set {backup_set.timestamp} in {backup_set.location} has no file of {missing}.")
        # The names the set's files were listed under (a compressed file's name ends in its codec's suffix).
        self._names = {table: backup_set.table_files[table] for table in tables}
        self._files: dict[str, io.FileIO] = {}
        self.location: Directory | None = None

    def __enter__(self) -> "HeldSet":
        where = f"Set {self.backup_set.timestamp} in {self.backup_set.location}"
        self.location = open_location(self.root, self.backup_set.task)
        names = list(self._names.values()) + (
            [manifest_name(self.backup_set.timestamp)] if self.backup_set.has_manifest else []
        )
        if self.backup_set.has_sealed_manifest:
            names.append(sealed_manifest_name(self.backup_set.timestamp))
        try:
            for name in names:
                file = self.location.open_read(name)
                self._files[name] = file
                if not try_flock(file.fileno(), exclusive=False):
                    raise DataError(f"{where} is being deleted (by retention) right now. Restore another set.")
        except FileNotFoundError:
            self.__exit__(None, None, None)
            raise DataError(f"{where} lost a file since it was listed: it was deleted. Restore another set.") from None
        except UnsafeEntry as exc:
            self.__exit__(None, None, None)
            raise DataError(f"{where} is damaged: {exc.strerror}. Restore another set.") from None
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        for file in self._files.values():
            file.close()
        self._files.clear()
        if self.location is not None:
            self.location.close()

    def file(self, table: str) -> io.FileIO:
        """The table's file as stored, open at its start."""
        return self._files[self._names[table]]

    def prefix(self, table: str, limit: int) -> bytes:
        """At most `limit` bytes from the start of the table's file, without moving its position."""
        return os.pread(self.file(table).fileno(), limit, 0)

    def size(self, table: str) -> int:
        """The bytes of the table's file as open now (not as named: a file swapped in after opening is not it)."""
        return os.fstat(self.file(table).fileno()).st_size

    def sealed_manifest(self, limit: int) -> bytes:
        """An encrypted set's sealed manifest, as held (at most `limit` bytes)."""
        file = self._files.get(sealed_manifest_name(self.backup_set.timestamp))
        if file is None:
            raise DataError(f"Set {self.backup_set.timestamp} in {self.backup_set.location} has no encrypted manifest.")
        return os.pread(file.fileno(), limit, 0)
