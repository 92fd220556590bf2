"""The backup store: where sets live. One interface for everything above `postgres/` that touches sets;
one implementation per place (store.local: a directory tree; store.s3: object storage), chosen by store.roots.
No Dagster, no SQL here.

    BackupStore      list and locate sets, start a new one, read one (held), delete one, mark one damaged, log, adopt
    SetWriter        one set being written: claimed on entering, tables streamed in, manifest published last
    TableWriter      one table's file of a set being written

Below this module, in store.backup_set_info: a listed set (BackupSetInfo), what it does through the store it was
found in (SetStore: read, delete, mark damaged, adopt; BackupStore extends it) and SetReader, one set being read:
its files held open (and safe from deletion) while the block runs.

The operations are shaped for stores without rename, flock or append too: a claim is the store's own
business, a table writer publishes nothing until `publish`, and a reader holds what it reads.
"""

import builtins
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol

from pgvector_pipeline.errors import PipelineError
from pgvector_pipeline.set_formats import CSV
from pgvector_pipeline.store.backup_set_info import BackupSetInfo, SetStore, Warn
from pgvector_pipeline.store.codecs import UNCOMPRESSED, Compression
from pgvector_pipeline.store.manifest import Manifest

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class InterruptedSet:
    """Leftovers of a run that ended without finishing its set, removed by a later run."""

    timestamp: str
    files: list[str]
    bytes: int


class TableWriter(Protocol):
    """One table's CSV as COPY TO STDOUT writes it (one write per line), hashed and counted as it passes, and
    stored as its compression says: `bytes`/`sha256` are the CSV's, `stored_bytes`/`stored_sha256` the file's."""

    bytes: int
    stored_bytes: int
    writes: int
    codec: str

    @property
    def name(self) -> str: ...
    @property
    def sha256(self) -> str: ...
    @property
    def stored_sha256(self) -> str: ...
    def write(self, data: builtins.bytes) -> object: ...
    def finish(self) -> None:
        """Make the file durable where the store keeps it (fsync, or the upload completed); published later."""
        ...

    def discard(self) -> int: ...
    def failed(self, exc: OSError, doing: str, set_bytes_estimate: int | None = None) -> PipelineError:
        """Discard what was written and say what failed (a full disk: what is free and what the set needs)."""
        ...


class SetWriter(Protocol):
    """One set while it is written. Entering claims it (a given timestamp, or a new one); leaving without
    `publish` removes everything of it; leaving always releases the claim."""

    timestamp: str | None
    published: bool

    @property
    def location(self) -> str: ...
    def __enter__(self) -> "SetWriter": ...
    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...
    def open_table(
        self,
        table: str,
        progress: Progress | None = None,
        compression: Compression = UNCOMPRESSED,
        set_format: str = CSV,
    ) -> TableWriter:
        """A writer of the table's file, named for its codec and set format (see set_formats)."""
        ...

    def publish(self, manifest: Manifest) -> str:
        """Make the set visible, manifest last; where the manifest is."""
        ...

    def reread_sha256(self, table: str) -> str:
        """The sha256 of a published table file (its stored bytes) as the store holds it now."""
        ...

    def mark_damaged(self, reason: str) -> str:
        """Mark the published set damaged (see store.damage) while the claim still keeps it from listing as
        complete; where the marker is. StorageError when it cannot be written."""
        ...


class BackupStore(SetStore, Protocol):
    """Where backup sets live (reading, deleting, marking and adopting a listed set: see SetStore)."""

    @property
    def where(self) -> str:
        """The store as a person reads it (a directory, a bucket and prefix)."""
        ...

    def location(self, task: str) -> str:
        """Where the sets of a task key live, for messages and metadata."""
        ...

    def list_sets(self, *, global_only: bool = False, task_id: str | None = None) -> list[BackupSetInfo]:
        """Every set (reading manifests only), newest first by the time it was taken."""
        ...

    def locate(
        self, *, task_id: str | None = None, timestamp: str | None = None, backup_path: str | None = None
    ) -> BackupSetInfo:
        """One set by task id (or a path inside the store) and timestamp; `latest` (store.naming.LATEST) names the
        newest complete set there (store.naming.newest_complete)."""
        ...

    def task_ids(self) -> list[str]:
        """The task ids that have a place in the store."""
        ...

    def new_set(
        self,
        task: str,
        timestamp: str | None,
        *,
        create_task_dir: bool = False,
        on_interrupted: Callable[[InterruptedSet], None] | None = None,
    ) -> SetWriter:
        """A writer for a new set of `task` (timestamp None: the store claims the current second or the next free
        one). `on_interrupted` hears of each dead writer's leftovers it removed."""
        ...

    def remove_interrupted(self, task: str) -> list[InterruptedSet]:
        """Remove what dead writers left in a task's location (never a live writer's files); what was removed."""
        ...

    def append_log(self, task: str, headline: str, details: list[str], warn: Warn) -> bool:
        """Append an entry to the location's log; a log that cannot be written warns (with the entry)."""
        ...
