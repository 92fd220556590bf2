"""A published set found damaged: a marker beside it, `vector_backup_{ts}.damaged` (store.layout), written whenever a
read of the set finds a file that does not match its manifest: the re-read of a set just written (a backup before it
truncates, a copy), the files_match_manifest check, a restore or a copy reading it. Listing honours it: the set is
damaged, never complete, so the freshness check, restore drills and retention's "newest complete set of a location"
pass over it to the set before it. Retention deletes it with its set.

A marker, not an unpublished manifest: a set without its manifest lists as an old-system set, which counts as
complete, and the manifest stays the record of what the set should have held. Any store can write one (a file, an
object); the first marker's reason stays (the location's log has every finding). Removing the marker by hand makes
the set complete again, once a read of it shows its files match after all.
"""

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import TypedDict

from pgvector_pipeline.errors import FilesDamaged, PipelineError, with_outcome
from pgvector_pipeline.store.backup_set_info import BackupSetInfo, Warn
from pgvector_pipeline.store.directory import Directory
from pgvector_pipeline.store.files import storage_error, write_json_durably
from pgvector_pipeline.store.interface import SetWriter
from pgvector_pipeline.store.layout import damaged_name
from pgvector_pipeline.store.manifest import IndexTable, ManifestTable


class DamageMarker(TypedDict):
    """What a `.damaged` marker holds."""

    damaged: str  # why
    marked_at: str  # ISO 8601, with the offset


def marker_document(reason: str) -> DamageMarker:
    """What a marker holds, for people: why and when the set was marked (listing reads only its name)."""
    return {"damaged": reason, "marked_at": datetime.now().astimezone().isoformat(timespec="seconds")}


def marked_problem(where: str, timestamp: str) -> str:
    """Why a marked set is damaged, as listing says it (BackupSetInfo.problem)."""
    return (
        f"{where}/{damaged_name(timestamp)} marks it damaged: a read of it after it was published found a file that "
        f"does not match its manifest (the location's log says which)."
    )


def mark_in_directory(directory: Directory, timestamp: str, reason: str, mode: int) -> str:
    """Mark set `timestamp` of a local location damaged (durably; a set marked already keeps its first marker); the
    marker's path. StorageError when it cannot be written."""
    name = damaged_name(timestamp)
    try:
        try:
            write_json_durably(directory, name, marker_document(reason), mode)
        except FileExistsError:
            pass
        directory.fsync()
    except OSError as exc:
        raise storage_error(exc, directory, name, "marking the set damaged") from exc
    return str(directory.path / name)


def damage_log_entry(timestamp: str, reason: str) -> tuple[str, list[str]]:
    """The location's log entry (headline, details) of a set marked damaged."""
    return f"set {timestamp} marked DAMAGED", [reason, f"marker: {damaged_name(timestamp)}"]


def read_back_published(set_writer: SetWriter, written: Mapping[str, ManifestTable | IndexTable]) -> str | None:
    """Read every file of the set `set_writer` just published back from its store. None when each has the sha256 it
    was written with; else the set is marked damaged, while the writer's claim still keeps it from listing as
    complete, and what was found and done, in sentences. A file that cannot be read raises (nothing was found)."""
    for table, entry in written.items():
        found = set_writer.reread_sha256(table)
        if found == entry.file_sha256:
            continue
        changed = (
            f"{entry.file} does not read back as it was written (sha256 {found[:12]}…, written "
            f"{entry.file_sha256[:12]}…): the storage holding it changed it."
        )
        try:
            marker = set_writer.mark_damaged(
                f"{entry.file} did not read back as written right after the set was published (sha256 {found}, "
                f"written {entry.file_sha256})."
            )
        except PipelineError as error:
            return f"{changed} Marking the set damaged failed too ({error.message}), so it still lists as complete."
        return f"{changed} The set is marked damaged ({marker}), so it never counts as complete."
    return None


@contextmanager
def damage_marked(backup_set: BackupSetInfo, warn: Warn) -> Iterator[None]:
    """Within the block (a check, restore or copy reading `backup_set`): a file found not to match the manifest
    (FilesDamaged) marks the set damaged once the block is left, and the error raised says so."""
    try:
        yield
    except FilesDamaged as damage:
        assert backup_set.store is not None, "listed sets know their store"
        try:
            marker = backup_set.store.mark_damaged(backup_set, damage.message, warn)
            outcome = f"The set is marked damaged ({marker}), so it never counts as complete."
        except PipelineError as error:
            outcome = f"Marking the set damaged failed ({error.message}): it still lists as complete."
        raise with_outcome(damage, outcome) from damage
