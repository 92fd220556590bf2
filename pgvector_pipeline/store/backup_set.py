"""Writing one backup set so that it either exists whole, with its manifest, or not at all."""

import time
from collections.abc import Callable
from pathlib import Path

from pgvector_pipeline.errors import InvalidParams
from pgvector_pipeline.store.files import StreamingFileWriter, fsync_dir, tmp_path, write_json_atomic
from pgvector_pipeline.store.layout import TMP_SUFFIX, csv_name, manifest_name, validate_timestamp

# A .tmp file untouched this long belongs to a run that died; a live export writes continuously.
STALE_TMP_AGE_S = 3600.0


class BackupSetWriter:
    """The files of one set (one timestamp in one vector_bak directory) while they are being written.

    CSVs stream into .tmp files. `commit` first writes the manifest as .tmp, which marks the set as
    mid-commit, then publishes the CSVs, then the manifest. A crash at any point leaves a .tmp behind,
    and a set with a .tmp is never listed as complete; `remove_stale_tmp_files` clears such leftovers.
    """

    def __init__(self, directory: Path, timestamp: str):
        self.directory = Path(directory)
        self.timestamp = validate_timestamp(timestamp)
        self.manifest_path = self.directory / manifest_name(timestamp)
        existing = [p.name for p in self.directory.glob(f"*_{timestamp}.*")]
        if existing:
            raise InvalidParams(
                f"A backup set with timestamp {timestamp} already exists in {self.directory} "
                f"({', '.join(sorted(existing))}). Backups never overwrite: request a new backup."
            )
        self.writers: dict[str, StreamingFileWriter] = {}

    def open_table(self, table: str, progress: Callable[[int, int], None] | None = None) -> StreamingFileWriter:
        writer = StreamingFileWriter(self.directory / csv_name(table, self.timestamp), progress)
        self.writers[table] = writer
        return writer

    def commit(self, manifest: dict) -> Path:
        write_json_atomic(tmp_path(self.manifest_path), manifest)
        for writer in self.writers.values():
            writer.publish()
        fsync_dir(self.directory)
        tmp_path(self.manifest_path).replace(self.manifest_path)
        fsync_dir(self.directory)
        return self.manifest_path

    def abort(self) -> None:
        """Remove everything this set wrote; used when anything failed before the manifest was published."""
        for writer in self.writers.values():
            writer.discard()
        if not self.manifest_path.exists():
            for writer in self.writers.values():
                writer.path.unlink(missing_ok=True)
            tmp_path(self.manifest_path).unlink(missing_ok=True)
        fsync_dir(self.directory)


def remove_stale_tmp_files(directory: Path, max_age_s: float = STALE_TMP_AGE_S) -> list[Path]:
    """Delete leftovers of runs that died: old .tmp files, and the CSVs of a set whose commit never finished."""
    removed = []
    now = time.time()
    for tmp in sorted(Path(directory).glob(f"*{TMP_SUFFIX}")):
        if now - tmp.stat().st_mtime < max_age_s:
            continue
        stem = tmp.name[: -len(TMP_SUFFIX)]
        if stem.startswith("vector_backup_") and stem.endswith(".json"):
            timestamp = stem[len("vector_backup_") : -len(".json")]
            for orphan in directory.glob(f"*_{timestamp}.csv"):
                orphan.unlink()
                removed.append(orphan)
        tmp.unlink()
        removed.append(tmp)
    return removed
