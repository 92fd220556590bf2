"""Listing sets, in any store: the names a store finds in a location grouped into sets (`assemble_sets`), their
manifests read and checked. And the local store's side of it: the sets of a directory tree, and one set resolved
safely inside the root (store.local uses these)."""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pgvector_pipeline.errors import DataError, InvalidParams, ResourceNotFound
from pgvector_pipeline.set_formats import BINARY
from pgvector_pipeline.store.backup_set_info import BackupSetInfo, SetStore, newest_first
from pgvector_pipeline.store.damage import marked_problem
from pgvector_pipeline.store.directory import Directory, UnsafeEntry
from pgvector_pipeline.store.layout import (
    BACKUP_DIR_NAME,
    GLOBAL_TASK_KEY,
    LOG_FILE_NAME,
    TASK_ID_PATTERN,
    SetFileName,
    manifest_name,
    parse_set_file_name,
    task_key,
    validate_timestamp,
)
from pgvector_pipeline.store.locations import location_path, open_location, open_root, task_directories
from pgvector_pipeline.store.log import logged_manifest_timestamps
from pgvector_pipeline.store.manifest import SealedIndex, SetDocument, read_manifest
from pgvector_pipeline.store.naming import LATEST, named_timestamp, newest_complete, validate_set_timestamp


@dataclass(frozen=True)
class ListedName:
    """One name in a location as a store lists it: its size, and what it is when it is not a regular file
    (such a thing is never opened or followed: it makes its set damaged)."""

    name: str
    size: int
    not_a_file: str | None = None  # e.g. "a symlink", "a FIFO (named pipe)"


@dataclass(frozen=True)
class LocationListing:
    """What a store found in one location, and how to read what listing needs: any store can list this way."""

    store: SetStore  # the store the sets are in (BackupSetInfo.store)
    task: str
    where: str  # the location as the store names it, for messages
    names: list[ListedName]
    # A set's validated manifest (or an encrypted set's clear index) by timestamp; DataError otherwise.
    read_manifest: Callable[[str], SetDocument]
    logged_manifests: Callable[[], set[str]]  # timestamps whose manifest the location's log names


def assemble_sets(listing: LocationListing) -> list[BackupSetInfo]:
    """The sets of one location from the names in it: files grouped by timestamp, manifests read and checked."""
    sets: dict[str, BackupSetInfo] = {}
    has_log = False
    for item in listing.names:
        if item.name == LOG_FILE_NAME:
            has_log = item.not_a_file is None
            continue
        parsed = parse_set_file_name(item.name)
        if parsed is None:
            continue
        if parsed.timestamp not in sets:
            sets[parsed.timestamp] = _new_set(listing, parsed.timestamp)
        info = sets[parsed.timestamp]
        if item.not_a_file:
            # A symlink, FIFO, device or directory named like a set file is never opened or followed.
            info.problem = f"{listing.where}/{item.name} is {item.not_a_file}, not a regular file: it is not read."
        else:
            _add_file(info, parsed, item, listing.where)
    logged = listing.logged_manifests() if has_log else set()
    for info in sets.values():
        info.has_log = has_log
        if not (info.problem or info.unfinished):
            _read_set_manifest(info, listing, logged)
        if info.marked_damaged and not info.problem:
            info.problem = marked_problem(listing.where, info.timestamp)
    return list(sets.values())


def _new_set(listing: LocationListing, timestamp: str) -> BackupSetInfo:
    """A set of the location, damaged when its name is no real time (20261399_000000): listed with the reason, never
    read, so that it cannot break the listing of the others."""
    info = BackupSetInfo(listing.task, timestamp, listing.where, listing.store)
    try:
        validate_timestamp(timestamp)
    except InvalidParams as error:
        info.problem = f"{error.message} Files named with it are not read as a set."
    return info


def _add_file(info: BackupSetInfo, parsed: SetFileName, item: ListedName, where: str) -> None:
    if parsed.tmp or parsed.kind == "lock":
        info.unfinished = True
        if parsed.table:
            info.sizes.setdefault(parsed.table, item.size)
    elif parsed.table:
        if parsed.table in info.table_files:
            info.problem = (
                f"{where} holds two files of {parsed.table} for set {info.timestamp} "
                f"({info.table_files[parsed.table]}, {item.name}): which one is the set's cannot be told."
            )
        info.table_files[parsed.table] = item.name
        info.sizes[parsed.table] = item.size
    elif parsed.kind == "damaged":
        info.marked_damaged = True
    elif parsed.kind == "sealed_manifest":
        info.has_sealed_manifest = True
    else:
        info.has_manifest = True


def _read_set_manifest(info: BackupSetInfo, listing: LocationListing, logged: set[str]) -> None:
    if info.has_manifest:
        try:
            document = listing.read_manifest(info.timestamp)
        except DataError as error:
            # One damaged set must not hide the others from the listing.
            info.problem = error.message
            return
        if isinstance(document, SealedIndex):
            info.sealed = document
            if not info.has_sealed_manifest:
                info.problem = (
                    f"{listing.where}/{document.manifest.file}, the encrypted manifest of set {info.timestamp}, is "
                    f"gone: without it the set's files cannot be verified or read."
                )
        else:
            info.manifest = document
    elif info.timestamp in logged:
        info.problem = (
            f"The log {listing.where}/{LOG_FILE_NAME} records that this tool wrote set {info.timestamp} with "
            f"manifest {manifest_name(info.timestamp)}, and that manifest is gone: without it the CSVs cannot "
            f"be verified, so the set is treated as damaged."
        )
    elif binary := sorted(name for name in info.table_files.values() if _binary_file(name)):
        # Not the old system's (it wrote plain CSVs): this tool's binary set, whose manifest is gone.
        info.problem = (
            f"{listing.where} holds {', '.join(binary)} of set {info.timestamp} but not its manifest "
            f"{manifest_name(info.timestamp)}: binary COPY files are written by this tool alone, with a manifest "
            f"that records each column's type; without it they can be neither verified nor restored, so the set is "
            f"treated as damaged."
        )


def _binary_file(name: str) -> bool:
    parsed = parse_set_file_name(name)
    return parsed is not None and parsed.set_format == BINARY


def _scan_directory(store: SetStore, task: str, location: Directory) -> list[BackupSetInfo]:
    """The sets of one local directory (entries that vanished while listed are left out)."""
    names = [
        ListedName(entry.name, entry.size, None if entry.is_file else entry.kind)
        for entry in location.entries()
        if entry.mode
    ]
    return assemble_sets(
        LocationListing(
            store,
            task,
            str(location.path),
            names,
            lambda timestamp: read_manifest(location, timestamp),
            lambda: logged_manifest_timestamps(location),
        )
    )


def _scan_location(store: SetStore, task: str, parent: Directory, name: str) -> list[BackupSetInfo]:
    """The sets of one location; none when it is missing or is not a real directory (never followed)."""
    try:
        with parent.child(name) as location:
            return _scan_directory(store, task, location)
    except (FileNotFoundError, UnsafeEntry, NotADirectoryError):
        return []


def scan_sets(
    store: SetStore, root: Path, *, global_only: bool = False, task_id: str | None = None
) -> list[BackupSetInfo]:
    """Every set of the local `store` under `root` (global `vector_bak/` and `<task_id>/vector_bak/`), newest first.

    Sets of every status (`status`, `complete`); unfinished ones with the size written so far. Only
    manifests and logs are read, and only when they are regular files. Nothing that is a symlink is
    followed: a location that is one is left out, a set file that is one makes its set damaged.
    """
    root = Path(root)
    root_dir = open_root(root)
    if root_dir is None:
        return []
    found = []
    with root_dir:
        if task_id and task_key(task_id) != GLOBAL_TASK_KEY:
            tasks = [task_key(task_id)]
        else:
            found.extend(_scan_location(store, GLOBAL_TASK_KEY, root_dir, BACKUP_DIR_NAME))
            tasks = [] if global_only or task_id else task_directories(root_dir)
        for task in tasks:
            try:
                with root_dir.child(task) as task_dir:
                    found.extend(_scan_location(store, task, task_dir, BACKUP_DIR_NAME))
            except (FileNotFoundError, UnsafeEntry, NotADirectoryError):
                continue
    return newest_first(found)


def _backup_path_task(root: Path, backup_path: str) -> str:
    """The task key a user-given backup_path names, read from its words alone (nothing is resolved)."""
    path = Path(backup_path)
    if path.is_absolute() and "\x00" not in backup_path and ".." not in path.parts:
        for base in (Path(root), Path(root).resolve()):
            if path.is_relative_to(base):
                return backup_path_task(str(path.relative_to(base)))
        raise InvalidParams(f"backup_path {backup_path!r:.80} is outside the backup root {root}.")
    return backup_path_task(backup_path)


def backup_path_task(backup_path: str) -> str:
    """The task key a backup_path relative to the root names ('vector_bak' or '<task_id>/vector_bak')."""
    if not backup_path or "\x00" in backup_path or ".." in Path(backup_path).parts:
        raise InvalidParams(
            f"backup_path {backup_path!r:.80} is not allowed: give a path inside the backup root without '..'."
        )
    parts = Path(backup_path).parts
    if parts == (BACKUP_DIR_NAME,):
        return GLOBAL_TASK_KEY
    if len(parts) in (1, 2) and TASK_ID_PATTERN.fullmatch(parts[0]) and parts[1:] in ((), (BACKUP_DIR_NAME,)):
        return parts[0]
    raise InvalidParams(
        f"backup_path {backup_path!r:.80} is not a backup directory: use 'vector_bak' or '<task_id>/vector_bak'."
    )


def find_set(
    store: SetStore,
    root: Path,
    *,
    task_id: str | None = None,
    timestamp: str | None = None,
    backup_path: str | None = None,
) -> BackupSetInfo:
    """The set of the local `store` under `root` named by task id (None or 'global' for the global directory) and timestamp
    (or `latest`: see store.naming), or by a backup_path inside the root and timestamp.

    Task id, timestamp and path are checked before anything is opened; directories are opened without
    following links (see locations), so a set is found only where it really is."""
    validate_set_timestamp(named_timestamp(timestamp))
    task = _backup_path_task(root, backup_path) if backup_path else task_key(task_id)
    missing, sets = "", []
    try:
        with open_location(Path(root), task) as location:
            sets = _scan_directory(store, task, location)
    except ResourceNotFound as error:
        missing = f" ({error.message})"
    if timestamp == LATEST:  # a missing location is said as every store says it: no sets there
        return newest_complete(sets, str(location_path(root, task)))
    for info in sets:
        if info.timestamp == timestamp:
            return info
    raise ResourceNotFound(
        f"No backup set with timestamp {timestamp} in {location_path(root, task)}{missing}. List the sets "
        f"(vector_backup_inventory) and pick an existing task id and timestamp."
    )
