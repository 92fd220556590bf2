"""What a restore loads and what it reports, shared by the restore's steps and the transactions made of them
(postgres.restore, postgres.pgvector_store)."""

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from pgvector_pipeline.postgres.collections import ChosenCollections
from pgvector_pipeline.postgres.progress import PROGRESS_INTERVAL_S, ProgressSink


class CsvSource(Protocol):
    """A CSV file opened for COPY FROM: read() gives bytes."""

    def read(self, size: int = -1, /) -> bytes: ...


@dataclass(frozen=True)
class TableLoad:
    """One file to load: its table, columns (a CSV's header, a binary set's manifest), how to open it, and the rows to
    expect."""

    table: str
    columns: list[str]  # the CSV header, in file order
    open_csv: Callable[[], AbstractContextManager[CsvSource]]  # closed when the load ends
    expected_rows: int | None  # from the manifest; None for sets without one
    # Sets of the old system wrote '' and NULL alike as an empty field (see `legacy_not_null_columns`).
    legacy_empty_fields: bool = False
    file_bytes: int | None = None  # for progress lines
    # With RestoreOptions.collections: the rows of those collections the set holds (manifest format 3), if known.
    expected_chosen_rows: int | None = None
    # A binary set's file (see set_formats): the type of each of `columns` as the set records it; None for a CSV.
    binary_types: tuple[str, ...] | None = None

    @property
    def binary(self) -> bool:
        return self.binary_types is not None


@dataclass(frozen=True)
class TableDDL:
    """Checked statements (see postgres.ddl) that recreate one table and its indexes."""

    create_table: str
    indexes: list[str]


@dataclass(frozen=True)
class RestoreOptions:
    """How restore_tables loads: truncate first, create what is missing, fill extra columns, commit or roll back."""

    truncate: bool = False
    # Table -> DDL, in restore order: create a missing extension and tables (indexes built after the load).
    table_ddl: dict[str, TableDDL] | None = None
    # Load into a target with columns the set lacks, when each is nullable or has a default.
    fill_extra_columns: bool = False
    # False: everything is checked and loaded, then rolled back.
    commit: bool = True
    # Memory of the index builds after the load (SET LOCAL); "": sized to this machine.
    maintenance_work_mem: str = ""
    # Load only these collections' rows (renamed, replacing the target's, as it says); None: every row.
    chosen: ChosenCollections | None = None
    # A langchain_community set into langchain_postgres tables: embeddings get new ids (see postgres.migrate).
    migrate_ids: bool = False
    # With truncate: load into new tables beside the live ones and swap them in (see postgres.shadow).
    swap: bool = False
    # Swapping: sessions that load a large file into its new table at once (see postgres.parallel_load); 1: the
    # restore's own session, in its transaction.
    load_sessions: int = 1
    # Where progress goes besides the log lines, and how often it is measured (see postgres.progress).
    progress: ProgressSink | None = None
    progress_interval_s: float = PROGRESS_INTERVAL_S


@dataclass(frozen=True)
class TableRestoreStats:
    """Rows of one table before and after a restore, and the rows COPY loaded."""

    table: str
    rows_before: int
    rows_restored: int
    rows_after: int
    duration_s: float
    filled_columns: tuple[str, ...] = ()  # target columns the set lacks, left to NULL or their default


@dataclass(frozen=True)
class TablesRestored:
    """What restore_tables did: per-table counts, the objects it created, and what became of a swap ("" an append,
    "swapped in", or "in place: why")."""

    stats: list[TableRestoreStats]
    created: list[str]
    swap: str = ""
