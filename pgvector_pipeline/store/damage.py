"""A published set found damaged: a marker beside it, `vector_backup_{ts}.damaged` (store.layout), written when a
read-back of the set finds a file that does not match its manifest (the backup's own re-read, the files_match_manifest
check). Listing honours it: the set is damaged, never complete, so the freshness check, restore drills and retention's
"newest complete set of a location" pass over it to the set before it. Retention deletes it with its set.

A marker, not an unpublished manifest: a set without its manifest lists as an old-system set, which counts as
complete, and the manifest stays the record of what the set should have held. Any store can write one (a file, an
object); the first marker's reason stays (the location's log has every finding). Removing the marker by hand makes
the set complete again, once a read of it shows its files match after all.
"""

from datetime import datetime

from pgvector_pipeline.store.directory import Directory
from pgvector_pipeline.store.files import storage_error, write_json_durably
from pgvector_pipeline.store.layout import damaged_name


def marker_document(reason: str) -> dict:
    """What a marker holds, for people: why and when the set was marked (listing reads only its name)."""
    return {"damaged": reason, "marked_at": datetime.now().astimezone().isoformat(timespec="seconds")}


def marked_problem(where: str, timestamp: str) -> str:
    """Why a marked set is damaged, as listing says it (BackupSetInfo.problem)."""
    return (
        f"{where}/{damaged_name(timestamp)} marks it damaged: a read-back after it was written found a file that does "
        f"not match its manifest (the location's log says which)."
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
