"""Proof that a set will restore, read from the set alone (no database, no Dagster): the checks the backup assets
carry in the UI (issue 24). "Backup said success, restore failed" is what users of every vector-database backup tool
report; these make it impossible not to know.

  files_match_manifest   every file's size and sha256 (as stored, and of the CSV inside) as the manifest records
  embeddings_parse       every vector of the set parses, holds no NaN or infinity, and the vectors of one collection
                         (one table, outside LangChain's layout) all have one dimension
  rows_hold_up           no table holds fewer rows than (1 - PGVECTOR_ROWS_DROP_WARN) of the location's previous
                         complete set (a warning: a shrinking store may be intended)

One read of each file serves the first two, streamed as a restore streams it: memory stays flat.
"""

import csv
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from pgvector_pipeline.errors import DataError
from pgvector_pipeline.names import COLLECTION_REF_COLUMN
from pgvector_pipeline.store.files import verified_csv
from pgvector_pipeline.store.listing import BackupSetInfo
from pgvector_pipeline.store.manifest import ManifestTable

FILES_CHECK = "files_match_manifest"
EMBEDDINGS_CHECK = "embeddings_parse"
ROWS_CHECK = "rows_hold_up"
ROWS_DROP_ENV = "PGVECTOR_ROWS_DROP_WARN"
DEFAULT_ROWS_DROP = 0.5
_VECTOR_TYPES = ("vector", "halfvec")  # sparsevec text is another format: its files are checked, not parsed
_SHOWN = 5


@dataclass(frozen=True)
class SetCheck:
    """One check of one set: its name, whether it passed, what it found (for people), and whether a failure is
    only a warning."""

    name: str
    passed: bool
    description: str
    warn_only: bool = False
    metadata: dict = field(default_factory=dict)


def check_set(backup_set: BackupSetInfo, previous: BackupSetInfo | None) -> list[SetCheck]:
    """Every check of `backup_set`; `previous` is the location's complete set before it (None: there is none)."""
    return [*check_files_and_embeddings(backup_set), rows_hold_up(backup_set, previous)]


def check_files_and_embeddings(backup_set: BackupSetInfo) -> tuple[SetCheck, SetCheck]:
    """files_match_manifest and embeddings_parse, from one read of each file."""
    manifest = backup_set.manifest
    if manifest is None or backup_set.store is None:
        why = f"Set {backup_set.timestamp} has no manifest (made by the old system): nothing to compare it with."
        return (SetCheck(FILES_CHECK, False, why, warn_only=True), SetCheck(EMBEDDINGS_CHECK, False, why, True))
    found = _Vectors()
    tables = list(manifest.tables)
    try:
        with backup_set.store.read_set(backup_set, tables) as held:
            for table in tables:
                entry = manifest.tables[table]
                with verified_csv(held.file(table), entry.file, entry) as stream:
                    found.read(table, entry, stream)
    except DataError as exc:
        return (
            SetCheck(FILES_CHECK, False, exc.message),
            SetCheck(EMBEDDINGS_CHECK, False, "Not checked: the set's files do not match its manifest.", True),
        )
    files = SetCheck(
        FILES_CHECK,
        True,
        f"All {len(tables)} files match the manifest (sizes and sha256, as stored and decompressed).",
        metadata={"files": len(tables), "bytes": sum(e.file_bytes for e in manifest.tables.values())},
    )
    return files, found.verdict()


def rows_hold_up(backup_set: BackupSetInfo, previous: BackupSetInfo | None) -> SetCheck:
    """A warning when a table lost more than the allowed share of rows since the location's previous set."""
    allowed = float(os.environ.get(ROWS_DROP_ENV) or DEFAULT_ROWS_DROP)
    if previous is None:
        return SetCheck(ROWS_CHECK, True, "No earlier complete set in this location to compare with.", True)
    dropped = []
    for table in backup_set.tables:
        now, before = backup_set.rows(table), previous.rows(table)
        if now is not None and before and now < before * (1 - allowed):
            dropped.append(f"{table} {before:,} -> {now:,} rows")
    if dropped:
        return SetCheck(
            ROWS_CHECK,
            False,
            f"Fewer rows than set {previous.timestamp} by more than {allowed:.0%}: {', '.join(dropped)}. If the store "
            f"was emptied on purpose (a training task), this is expected; otherwise back up again and look for what "
            f"deleted them ({ROWS_DROP_ENV} sets the share).",
            warn_only=True,
            metadata={"previous_set": previous.timestamp},
        )
    return SetCheck(
        ROWS_CHECK,
        True,
        f"No table lost more than {allowed:.0%} of its rows since set {previous.timestamp}.",
        True,
        {"previous_set": previous.timestamp},
    )


class _Vectors:
    """What the vectors of a set hold, collected as the files stream by: dimensions by group, and the bad ones."""

    def __init__(self) -> None:
        # By (table, collection key): '' for a table outside LangChain's layout, whose vectors are one group.
        self.dimensions: dict[tuple[str, str], set[int]] = {}
        self.vectors = 0
        self.bad: list[str] = []

    def read(self, table: str, entry: ManifestTable, stream: io.RawIOBase) -> None:
        columns = [c.name for c in entry.columns if c.type.split("(")[0] in _VECTOR_TYPES]
        if not columns:
            return  # leaving verified_csv reads the rest in chunks and checks it
        reader = csv.reader(io.TextIOWrapper(io.BufferedReader(stream, 1 << 16), encoding="utf-8", newline=""))
        header = next(reader, [])
        positions = [header.index(name) for name in columns if name in header]
        group_at = header.index(COLLECTION_REF_COLUMN) if COLLECTION_REF_COLUMN in header else None
        for row_number, row in enumerate(reader, start=1):
            group = (table, row[group_at] if group_at is not None else "")
            for position in positions:
                if row[position]:
                    problem = self._one(row[position], group)
                    if problem:
                        self._bad(f"{entry.file} row {row_number}, {header[position]}: {problem}")

    def _one(self, text: str, group: tuple[str, str]) -> str | None:
        """Count one vector and note its dimension; what is wrong with it, if anything."""
        self.vectors += 1
        values = _floats(text)
        if values is None:
            return f"not a vector ({text[:40]!r})"
        self.dimensions.setdefault(group, set()).add(len(values))
        return None if np.isfinite(values).all() else "NaN or infinity"

    def _bad(self, what: str) -> None:
        if len(self.bad) < _SHOWN:
            self.bad.append(what)
        else:
            self.bad[-1] = "…"

    def verdict(self) -> SetCheck:
        mixed = {group: sorted(dims) for group, dims in self.dimensions.items() if len(dims) > 1}
        metadata = {"vectors": self.vectors, "dimensions": ", ".join(_dimension_list(self.dimensions)) or "none"}
        if self.bad or mixed:
            problems = self.bad + [
                f"{' '.join(part for part in group if part)} has vectors of {dims} dimensions"
                for group, dims in mixed.items()
            ]
            return SetCheck(
                EMBEDDINGS_CHECK,
                False,
                f"Vectors that would not restore or search as they should: {'; '.join(problems[:_SHOWN])}.",
                metadata=metadata,
            )
        return SetCheck(
            EMBEDDINGS_CHECK,
            True,
            f"All {self.vectors:,} vectors parse, are finite, and have one dimension per collection.",
            metadata=metadata,
        )


def _floats(text: str) -> "np.ndarray | None":
    """The numbers of a vector's text ('[1,2.5,3]'), parsed in C; None when it is not one."""
    if not (text.startswith("[") and text.endswith("]")):
        return None
    inner = text[1:-1]
    if not inner:
        return np.empty(0)
    try:
        values = np.fromstring(inner, dtype=np.float64, sep=",")
    except ValueError:  # a number it cannot read
        return None
    return values if len(values) == inner.count(",") + 1 else None


def _dimension_list(dimensions: dict[tuple[str, str], set[int]]) -> Iterator[str]:
    for dims in sorted({d for found in dimensions.values() for d in found}):
        yield str(dims)
