"""Finding backup sets on disk: listing with filters, and resolving one set safely inside the root."""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pgvector_pipeline.errors import DataError, InvalidParams, ResourceNotFound
from pgvector_pipeline.sizes import human_size
from pgvector_pipeline.store.codecs import NONE
from pgvector_pipeline.store.damage import marked_problem
from pgvector_pipeline.store.directory import Directory, UnsafeEntry
from pgvector_pipeline.store.layout import (
    BACKUP_DIR_NAME,
    GLOBAL_TASK_KEY,
    LOG_FILE_NAME,
    TASK_ID_PATTERN,
    SetFileName,
    damaged_name,
    manifest_name,
    parse_set_file_name,
    stored_codec,
    task_key,
    timestamp_time,
    validate_timestamp,
)
from pgvector_pipeline.store.locations import location_path, open_location, open_root, task_directories
from pgvector_pipeline.store.log import logged_manifest_timestamps
from pgvector_pipeline.store.manifest import Manifest, read_manifest
from pgvector_pipeline.tables import DEFAULT_TABLES

if TYPE_CHECKING:
    from pgvector_pipeline.store.interface import BackupStore

STATUS_COMPLETE = "complete"
STATUS_LEGACY = "legacy"  # both plain CSVs, no manifest, and the log does not name one: made by the old system
STATUS_UNFINISHED = "unfinished"  # being written now, or its writer died (the next backup there cleans it)
STATUS_INCOMPLETE = (
    "incomplete"  # a file of a table its manifest lists (or, without one, of a default table) is missing
)
# Manifest unreadable, invalid or deleted, a file leads out of the root, or a read-back found a file that does not
# match the manifest (the set's damage marker, see store.damage).
STATUS_DAMAGED = "damaged"


@dataclass
class BackupSetInfo:
    """One set as found on disk: its files, sizes, manifest and status."""

    task: str
    timestamp: str
    location: str  # where the set is, as its store names it (for messages and metadata)
    store: "BackupStore | None" = None  # the store it was found in: reading, deleting and adopting go through it
    table_files: dict[str, str] = field(default_factory=dict)  # names of the published files, by table
    sizes: dict[str, int] = field(default_factory=dict)  # bytes of each table's file (or its .tmp if unfinished)
    has_manifest: bool = False
    has_log: bool = False
    unfinished: bool = False
    marked_damaged: bool = False  # a read-back after publishing found it damaged (store.damage)
    manifest: Manifest | None = None
    problem: str | None = None  # why the set is damaged

    @property
    def status(self) -> str:
        if self.problem:
            return STATUS_DAMAGED
        if self.unfinished:
            return STATUS_UNFINISHED
        if self.missing_tables:
            return STATUS_INCOMPLETE
        return STATUS_COMPLETE if self.manifest else STATUS_LEGACY

    @property
    def complete(self) -> bool:
        """Every table of the set has its file, nothing damaged or unfinished (legacy sets included)."""
        return self.status in (STATUS_COMPLETE, STATUS_LEGACY)

    @property
    def directory(self) -> Path:
        """The set's location as a local path (a local store's sets)."""
        return Path(self.location)

    @property
    def files(self) -> dict[str, Path]:
        """The published files by table as local paths (a local store's sets)."""
        return {table: self.directory / name for table, name in self.table_files.items()}

    @property
    def codecs(self) -> dict[str, str]:
        """How each table's file is stored, told by its name's suffix."""
        return {table: stored_codec(name) for table, name in self.table_files.items()}

    @property
    def tables(self) -> list[str]:
        """The set's tables in restore order: those its manifest lists; without one, the default tables (the
        old system always wrote both LangChain tables)."""
        if self.manifest is not None:
            return DEFAULT_TABLES.in_order(self.manifest.tables)
        return list(DEFAULT_TABLES.names)

    @property
    def missing_tables(self) -> list[str]:
        """Tables of the set without their file (stored as the manifest says; without one, a plain CSV)."""
        if self.manifest is not None:
            return [t for t, e in self.manifest.tables.items() if self.table_files.get(t) != e.file]
        return [t for t in self.tables if self.codecs.get(t, NONE) != NONE or t not in self.table_files]

    def csv_bytes(self, table: str) -> int | None:
        """The size of the CSV a table's file holds (larger than the file when compressed), when known."""
        entry = self.manifest.tables.get(table) if self.manifest else None
        return entry.bytes if entry else self.sizes.get(table)

    @property
    def compression_ratio(self) -> float | None:
        """CSV bytes per stored byte over the whole set (1.0 uncompressed), when the manifest tells."""
        stored = self.total_bytes
        csv = sum(self.csv_bytes(table) or 0 for table in self.table_files)
        return round(csv / stored, 2) if self.manifest and stored else None

    @property
    def manifest_path(self) -> Path:
        return self.directory / manifest_name(self.timestamp)

    @property
    def collections(self) -> str:
        """Which collections the set holds, for people: "all (3)", "2 chosen: 'a' (40), 'b' (40)", or "" when
        its manifest does not say (formats 1 and 2, old-system sets)."""
        record = self.manifest.collections if self.manifest else None
        if record is None:
            return ""
        if record.selected is None:
            return f"all ({len(record.embeddings)})"
        named = ", ".join(f"{name!r} ({count:,})" for name, count in list(record.embeddings.items())[:10])
        more = f" and {len(record.embeddings) - 10} more" if len(record.embeddings) > 10 else ""
        return f"{len(record.embeddings)} chosen: {named}{more}"

    def rows(self, table: str) -> int | None:
        entry = self.manifest.tables.get(table) if self.manifest else None
        return entry.rows if entry else None

    @property
    def total_bytes(self) -> int:
        return sum(self.sizes.values())

    @property
    def taken_at(self) -> datetime:
        """When the set's snapshot was taken, as an absolute time: the manifest's started_at (with its UTC
        offset), else the name read as the code server's local time (old-system and adopted sets). Every
        newest/oldest decision uses this, never the name: local names repeat and go backwards when clocks fall
        back (DST) or the time zone changes."""
        started = self.manifest.started_at if self.manifest else None
        if started:  # checked when the manifest was read: an aware time of the years a set may have
            return datetime.fromisoformat(started)
        try:
            return timestamp_time(self.timestamp).astimezone()
        except InvalidParams:  # named with no real time (the set lists as damaged): older than any other
            return datetime.min.replace(tzinfo=UTC)

    def file_names(self) -> list[str]:
        """The names of the set's published files: its CSVs, then its manifest when it has one, then its damage
        marker (last: a deletion cut short leaves the set damaged, as it was)."""
        names = list(self.table_files.values())
        names += [manifest_name(self.timestamp)] if self.has_manifest else []
        return names + ([damaged_name(self.timestamp)] if self.marked_damaged else [])


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

    store: "BackupStore"
    task: str
    where: str  # the location as the store names it, for messages
    names: list[ListedName]
    read_manifest: Callable[[str], Manifest]  # a set's validated manifest by timestamp; DataError otherwise
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
    else:
        info.has_manifest = True


def _read_set_manifest(info: BackupSetInfo, listing: LocationListing, logged: set[str]) -> None:
    if info.has_manifest:
        try:
            info.manifest = listing.read_manifest(info.timestamp)
        except DataError as error:
            # One damaged set must not hide the others from the listing.
            info.problem = error.message
    elif info.timestamp in logged:
        info.problem = (
            f"The log {listing.where}/{LOG_FILE_NAME} records that this tool wrote set {info.timestamp} with "
            f"manifest {manifest_name(info.timestamp)}, and that manifest is gone: without it the CSVs cannot "
            f"be verified, so the set is treated as damaged."
        )


def _scan_directory(store: "BackupStore", task: str, location: Directory) -> list[BackupSetInfo]:
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


def _scan_location(store: "BackupStore", task: str, parent: Directory, name: str) -> list[BackupSetInfo]:
    """The sets of one location; none when it is missing or is not a real directory (never followed)."""
    try:
        with parent.child(name) as location:
            return _scan_directory(store, task, location)
    except (FileNotFoundError, UnsafeEntry, NotADirectoryError):
        return []


def list_backup_sets(root: Path, *, global_only: bool = False, task_id: str | None = None) -> list[BackupSetInfo]:
    """The sets of the local store at `root` (see LocalBackupStore.list_sets)."""
    from pgvector_pipeline.store.local import LocalBackupStore

    return LocalBackupStore(root).list_sets(global_only=global_only, task_id=task_id)


def scan_sets(
    store: "BackupStore", root: Path, *, global_only: bool = False, task_id: str | None = None
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


def newest_first(sets: list[BackupSetInfo]) -> list[BackupSetInfo]:
    """Sets ordered by when they were taken (see BackupSetInfo.taken_at), newest first."""
    return sorted(sets, key=lambda s: (s.taken_at, s.timestamp, s.task), reverse=True)


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


def locate_backup_set(
    root: Path, *, task_id: str | None = None, timestamp: str | None = None, backup_path: str | None = None
) -> BackupSetInfo:
    """One set of the local store at `root` (see LocalBackupStore.locate)."""
    from pgvector_pipeline.store.local import LocalBackupStore

    return LocalBackupStore(root).locate(task_id=task_id, timestamp=timestamp, backup_path=backup_path)


def find_set(
    store: "BackupStore",
    root: Path,
    *,
    task_id: str | None = None,
    timestamp: str | None = None,
    backup_path: str | None = None,
) -> BackupSetInfo:
    """The set of the local `store` under `root` named by task id (None or 'global' for the global directory) and timestamp, or by a
    backup_path inside the root and timestamp.

    Task id, timestamp and path are checked before anything is opened; directories are opened without
    following links (see locations), so a set is found only where it really is."""
    if not timestamp:
        raise InvalidParams("Name the set's timestamp (YYYYMMDD_HHMMSS), or pick a partition of the backup assets.")
    validate_timestamp(timestamp)
    task = _backup_path_task(root, backup_path) if backup_path else task_key(task_id)
    missing = ""
    try:
        with open_location(Path(root), task) as location:
            for info in _scan_directory(store, task, location):
                if info.timestamp == timestamp:
                    return info
    except ResourceNotFound as error:
        missing = f" ({error.message})"
    raise ResourceNotFound(
        f"No backup set with timestamp {timestamp} in {location_path(root, task)}{missing}. List the sets "
        f"(vector_backup_inventory) and pick an existing task id and timestamp."
    )


def set_record(s: BackupSetInfo) -> dict:
    """One set as plain data for people and scripts: the inventory's row, the CLI's `list --json` line."""
    return {
        "task_id": s.task,
        "timestamp": s.timestamp,
        "status": s.status,
        "complete": s.complete,
        "has_manifest": s.has_manifest,
        "has_log": s.has_log,
        **{f"{t.label}_rows": s.rows(t.name) for t in DEFAULT_TABLES.tables},
        **{f"{t.label}_bytes": s.sizes.get(t.name) for t in DEFAULT_TABLES.tables},
        "tables": ", ".join(t if s.rows(t) is None else f"{t} ({s.rows(t):,} rows)" for t in s.tables),
        "compression": "+".join(sorted(set(s.codecs.values()))),
        "compression_ratio": s.compression_ratio,
        "collections": s.collections,
        "size": human_size(s.total_bytes),
        "location": s.location,
    }
