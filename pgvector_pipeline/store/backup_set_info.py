"""A backup set as listed, in any store: `BackupSetInfo` and its status, and the store it was found in as the set
sees it (`SetStore`: read it, delete it, mark it damaged, adopt it; the store interface, store.interface, extends it).

The core of store/: it imports only leaf modules (layout, codecs, manifest, tables), so that the interface, every
store and everything that handles listed sets can import it. Where a set's files are is its store's business
(`location` names them as the store does: a directory, an s3:// URL).
"""

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Protocol, TypeVar

from pgvector_pipeline.errors import InvalidParams
from pgvector_pipeline.set_formats import CSV
from pgvector_pipeline.sizes import human_size
from pgvector_pipeline.store.codecs import NONE
from pgvector_pipeline.store.keys import SetKeys
from pgvector_pipeline.store.layout import (
    damaged_name,
    manifest_name,
    sealed_manifest_name,
    stored_codec,
    timestamp_time,
)
from pgvector_pipeline.store.manifest import IndexTable, Manifest, ManifestTable, SealedIndex
from pgvector_pipeline.tables import DEFAULT_TABLES

Warn = Callable[[str], None]

STATUS_COMPLETE = "complete"
STATUS_LEGACY = "legacy"  # both plain CSVs, no manifest, and the log does not name one: made by the old system
STATUS_UNFINISHED = "unfinished"  # being written now, or its writer died (the next backup there cleans it)
STATUS_INCOMPLETE = (
    "incomplete"  # a file of a table its manifest lists (or, without one, of a default table) is missing
)
# Manifest unreadable, invalid or deleted, a file leads out of the root, or a read-back found a file that does not
# match the manifest (the set's damage marker, see store.damage).
STATUS_DAMAGED = "damaged"


class SetReader(Protocol):
    """A set's files held for reading while the `with` block runs: deletion skips a held set."""

    def __enter__(self) -> "SetReader": ...
    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...
    def file(self, table: str) -> io.RawIOBase:
        """The table's file as stored, a stream at its start (read once, to its end)."""
        ...

    def prefix(self, table: str, limit: int) -> bytes:
        """At most `limit` bytes from the start of the table's file, without consuming the stream."""
        ...

    def size(self, table: str) -> int:
        """The size of the table's file as stored."""
        ...

    def sealed_manifest(self, limit: int) -> bytes:
        """An encrypted set's sealed manifest as stored (at most `limit` bytes), held with the set."""
        ...


class SetStore(Protocol):
    """What a listed set does through the store it was found in (see BackupSetInfo.store)."""

    # The age keys of the store (store.keys): whom its new sets are encrypted to, and what reads encrypted ones.
    keys: SetKeys

    def read_set(self, backup_set: "BackupSetInfo", tables: list[str]) -> SetReader: ...

    def delete_set(self, backup_set: "BackupSetInfo", warn: Warn) -> int | None:
        """Delete a set and log it; bytes freed, or None when a run writes or reads it now."""
        ...

    def mark_damaged(self, backup_set: "BackupSetInfo", reason: str, warn: Warn) -> str:
        """Mark a published set damaged (see store.damage) and log it with `reason`; where the marker is.
        StorageError when it cannot be written."""
        ...

    def adopt(self, backup_set: "BackupSetInfo") -> Manifest:
        """Record an old-system set's sizes, checksums and row counts in an adopted manifest."""
        ...


@dataclass
class BackupSetInfo:
    """One set as a store lists it: its files, sizes, manifest and status, and the store it is in."""

    task: str
    timestamp: str
    location: str  # where the set is, as its store names it (for messages and metadata)
    store: SetStore | None = None  # the store it was found in: reading, deleting, marking and adopting go through it
    table_files: dict[str, str] = field(default_factory=dict)  # names of the published files, by table
    sizes: dict[str, int] = field(default_factory=dict)  # bytes of each table's file (or its .tmp if unfinished)
    has_manifest: bool = False
    has_log: bool = False
    unfinished: bool = False
    marked_damaged: bool = False  # a read-back after publishing found it damaged (store.damage)
    # The set's manifest: read when it is listed, or (an encrypted set) once opened (store.sealing.open_sealed).
    manifest: Manifest | None = None
    problem: str | None = None  # why the set is damaged
    # An encrypted set's clear index (what is known of it without a key), and whether its sealed manifest is there.
    sealed: SealedIndex | None = None
    has_sealed_manifest: bool = False

    @property
    def status(self) -> str:
        if self.problem:
            return STATUS_DAMAGED
        if self.unfinished:
            return STATUS_UNFINISHED
        if self.missing_tables:
            return STATUS_INCOMPLETE
        return STATUS_COMPLETE if self.manifest or self.sealed else STATUS_LEGACY

    @property
    def complete(self) -> bool:
        """Every table of the set has its file, nothing damaged or unfinished (legacy sets included)."""
        return self.status in (STATUS_COMPLETE, STATUS_LEGACY)

    @property
    def set_format(self) -> str:
        """How the set's files hold the rows (see set_formats): its manifest (or an encrypted set's clear index) says;
        a set without one is CSV."""
        if self.manifest is not None:
            return self.manifest.set_format
        return self.sealed.set_format if self.sealed is not None else CSV

    @property
    def codecs(self) -> dict[str, str]:
        """How each table's file is stored, told by its name's suffix."""
        return {table: stored_codec(name) for table, name in self.table_files.items()}

    @property
    def encrypted(self) -> bool:
        """Whether the set is age-encrypted (its clear index says so)."""
        return self.sealed is not None

    @property
    def recipients(self) -> list[str]:
        """The fingerprints of the age recipients an encrypted set is encrypted to (none for a set in clear)."""
        return list(self.sealed.encryption.recipients) if self.sealed else []

    @property
    def stored_entries(self) -> dict[str, ManifestTable | IndexTable]:
        """What the manifest (or an encrypted set's clear index) records of each table's file as stored: its name,
        `file_bytes` and `file_sha256`, and rows (empty without either)."""
        if self.manifest is not None:
            return dict(self.manifest.tables)
        return dict(self.sealed.tables) if self.sealed is not None else {}

    @property
    def tables(self) -> list[str]:
        """The set's tables in restore order: those its manifest (or clear index) lists; without one, the default
        tables (the old system always wrote both LangChain tables)."""
        if self.manifest is not None or self.sealed is not None:
            return DEFAULT_TABLES.in_order(self.stored_entries)
        return list(DEFAULT_TABLES.names)

    @property
    def missing_tables(self) -> list[str]:
        """Tables of the set without their file (stored as the manifest says; without one, a plain CSV)."""
        if self.manifest is not None or self.sealed is not None:
            return [t for t, e in self.stored_entries.items() if self.table_files.get(t) != e.file]
        return [t for t in self.tables if self.codecs.get(t, NONE) != NONE or t not in self.table_files]

    def csv_bytes(self, table: str) -> int | None:
        """The size of the CSV a table's file holds (larger than the file when compressed), when known (not for an
        encrypted set that is not opened)."""
        if self.sealed is not None and self.manifest is None:
            return None
        entry = self.manifest.tables.get(table) if self.manifest else None
        return entry.bytes if entry else self.sizes.get(table)

    @property
    def compression_ratio(self) -> float | None:
        """CSV bytes per stored byte over the whole set (1.0 uncompressed), when the manifest tells."""
        stored = self.total_bytes
        if self.manifest is None or not stored or self.manifest.encrypted:
            return None  # an encrypted set's CSV sizes are not shown in clear
        csv = sum(self.csv_bytes(table) or 0 for table in self.table_files)
        return round(csv / stored, 2)

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
        entry = self.stored_entries.get(table)
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
        started = self.manifest.started_at if self.manifest else self.sealed.started_at if self.sealed else None
        if started:  # checked when the manifest was read: an aware time of the years a set may have
            return datetime.fromisoformat(started)
        try:
            return timestamp_time(self.timestamp).astimezone()
        except InvalidParams:  # named with no real time (the set lists as damaged): older than any other
            return datetime.min.replace(tzinfo=UTC)

    def file_names(self) -> list[str]:
        """The names of the set's published files: its CSVs, then an encrypted set's sealed manifest, then its
        manifest (or clear index) when it has one, then its damage marker (last: a deletion cut short leaves the set
        damaged, as it was)."""
        names = list(self.table_files.values())
        names += [sealed_manifest_name(self.timestamp)] if self.has_sealed_manifest else []
        names += [manifest_name(self.timestamp)] if self.has_manifest else []
        return names + ([damaged_name(self.timestamp)] if self.marked_damaged else [])


class Listed(Protocol):
    """What ordering and naming need of a listed set, whoever listed it: a store (BackupSetInfo) or the inventory's
    records as a client reads them (operations.named_set.ListedSet)."""

    @property
    def task(self) -> str: ...
    @property
    def timestamp(self) -> str: ...
    @property
    def location(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def taken_at(self) -> datetime: ...


L = TypeVar("L", bound=Listed)


def newest_first(sets: list[L]) -> list[L]:
    """Sets ordered by when they were taken (see BackupSetInfo.taken_at), newest first."""
    return sorted(sets, key=lambda s: (s.taken_at, s.timestamp, s.task), reverse=True)


# A record names a set's collections (collection_names) up to this many; beyond, only the count (see `collections`).
LISTED_COLLECTIONS = 200


def set_record(s: BackupSetInfo, store: str) -> dict[str, object]:
    """One set of the store `store` (its `where`) as plain data for people and scripts: the inventory's row, the
    CLI's `list --json` line. `taken_at` carries its UTC offset; `table_names` and `collection_names` (None: not
    recorded, or more than LISTED_COLLECTIONS) let a client check a request's names against the set."""
    source = s.manifest.source if s.manifest else None
    record = s.manifest.collections if s.manifest else None
    return {
        "task_id": s.task,
        "timestamp": s.timestamp,
        "taken_at": _taken_at(s),
        "status": s.status,
        "complete": s.complete,
        "has_manifest": s.has_manifest,
        "has_log": s.has_log,
        **{f"{t.label}_rows": s.rows(t.name) for t in DEFAULT_TABLES.tables},
        **{f"{t.label}_bytes": s.sizes.get(t.name) for t in DEFAULT_TABLES.tables},
        "tables": ", ".join(t if s.rows(t) is None else f"{t} ({s.rows(t):,} rows)" for t in s.tables),
        "format": s.set_format,
        "compression": "+".join(sorted(set(s.codecs.values()))),
        "compression_ratio": s.compression_ratio,
        "collections": s.collections,
        "size": human_size(s.total_bytes),
        "duration_s": s.manifest.duration_s if s.manifest else s.sealed.duration_s if s.sealed else None,
        "source_database": source.database if source else None,
        "source_schema": source.db_schema if source else None,
        "location": s.location,
        "store": store,
        "table_names": s.tables,
        "collection_names": (
            None if record is None or len(record.embeddings) > LISTED_COLLECTIONS else list(record.embeddings)
        ),
        # age encryption (store.keys): the recipients' fingerprints, never the keys.
        "encrypted": s.encrypted,
        "recipients": ", ".join(s.recipients),
    }


def _taken_at(s: BackupSetInfo) -> str | None:
    """When the set was taken, ISO 8601 with its UTC offset (see taken_at); None for a name that is no real time."""
    if s.manifest is None or s.manifest.started_at is None:
        try:
            timestamp_time(s.timestamp)
        except InvalidParams:
            return None
    return s.taken_at.isoformat()
