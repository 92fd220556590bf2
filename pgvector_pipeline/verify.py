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
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from pgvector_pipeline.errors import DataError
from pgvector_pipeline.names import COLLECTION_REF_COLUMN, VECTOR_TYPE_PATTERN
from pgvector_pipeline.store.files import verified_csv
from pgvector_pipeline.store.listing import BackupSetInfo
from pgvector_pipeline.store.manifest import ManifestTable

FILES_CHECK = "files_match_manifest"
EMBEDDINGS_CHECK = "embeddings_parse"
ROWS_CHECK = "rows_hold_up"
ROWS_DROP_ENV = "PGVECTOR_ROWS_DROP_WARN"
DEFAULT_ROWS_DROP = 0.5
_SHOWN = 5
# What pgvector's input functions take, mirrored here: at most 16,000 dimensions (VECTOR_MAX_DIM, HALFVEC_MAX_DIM),
# each number as strtof reads it then stored in the type's width, around it only C's whitespace.
_MAX_DIMENSIONS = 16_000
_STORED_AS = {"vector": np.float32, "halfvec": np.float16}
_SPACE = " \t\n\r\v\f"


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
        types = {c.name: t for c in entry.columns if (t := VectorType.of(c.type)) is not None}
        if not types:
            return  # leaving verified_csv reads the rest in chunks and checks it
        reader = csv.reader(io.TextIOWrapper(io.BufferedReader(stream, 1 << 16), encoding="utf-8", newline=""))
        header = next(reader, [])
        columns = [(position, types[name]) for position, name in enumerate(header) if name in types]
        group_at = header.index(COLLECTION_REF_COLUMN) if COLLECTION_REF_COLUMN in header else None
        for row_number, row in enumerate(reader, start=1):
            group = (table, row[group_at] if group_at is not None else "")
            for position, vector_type in columns:
                if row[position]:
                    problem = self._one(row[position], vector_type, group)
                    if problem:
                        self._bad(f"{entry.file} row {row_number}, {header[position]}: {problem}")

    def _one(self, text: str, vector_type: "VectorType", group: tuple[str, str]) -> str | None:
        """Count one vector and note its dimension; what is wrong with it, if anything."""
        self.vectors += 1
        values = parsed_vector(text)
        if isinstance(values, str):
            return values
        self.dimensions.setdefault(group, set()).add(len(values))
        return vector_problem(values, vector_type)

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


@dataclass(frozen=True)
class VectorType:
    """A column type whose text this check parses: vector or halfvec, with its declared dimension if any (sparsevec
    text is another format: its files are checked, not parsed)."""

    kind: str
    dimensions: int | None

    @classmethod
    def of(cls, column_type: str) -> "VectorType | None":
        match = VECTOR_TYPE_PATTERN.fullmatch(column_type)
        if match is None or match["kind"] not in _STORED_AS:
            return None
        return cls(match["kind"], int(match["dimensions"]) if match["dimensions"] else None)


def vector_values(text: str, vector_type: VectorType) -> "np.ndarray | str":
    """The numbers of a vector's text ('[1,2.5,3]') as pgvector's input function reads them into `vector_type`, or
    what it would refuse them for."""
    values = parsed_vector(text)
    if isinstance(values, str):
        return values
    return vector_problem(values, vector_type) or values


def parsed_vector(text: str) -> "np.ndarray | str":
    """The numbers of a vector's text, or why it is not a vector's text at all."""
    body = text.strip(_SPACE)
    if len(body) < 2 or body[0] != "[" or body[-1] != "]":
        return f"not a vector ({text[:40]!r})"
    inner = body[1:-1]
    if not inner.strip(_SPACE):
        return "no dimensions"
    values = _numbers(inner)
    return f"not a vector ({text[:40]!r})" if values is None else values


def vector_problem(values: "np.ndarray", vector_type: VectorType) -> str | None:
    """What pgvector would refuse a vector of these numbers for, in its own order of checks; None: nothing."""
    if len(values) > _MAX_DIMENSIONS:
        return f"{len(values):,} dimensions, more than pgvector's {_MAX_DIMENSIONS:,}"
    if not np.isfinite(values).all():
        return "NaN or infinity"
    with np.errstate(over="ignore"):
        stored = values.astype(np.float32).astype(_STORED_AS[vector_type.kind])
    if not np.isfinite(stored).all():
        return f"a number out of range for type {vector_type.kind}"
    if vector_type.dimensions is not None and len(values) != vector_type.dimensions:
        return f"{len(values)} dimensions where the column holds {vector_type.dimensions}"
    return None


def _numbers(inner: str) -> "np.ndarray | None":
    """The comma-separated numbers of `inner`, parsed in C; the slow, exact reading where numpy stops early (hex
    numbers, which strtof takes) or the text is wrong (None)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # numpy's "could not be read to its end": handled below
        try:
            values = np.fromstring(inner, dtype=np.float64, sep=",")
        except ValueError:
            values = None
    if values is not None and len(values) == inner.count(",") + 1:
        return values
    try:
        return np.array([_strtof_number(token) for token in inner.split(",")], dtype=np.float64)
    except ValueError:
        return None


def _strtof_number(token: str) -> float:
    """One number as C's strtof reads a whole token: ASCII only, no digit separators, hex allowed; else ValueError."""
    number = token.strip(_SPACE)
    if not number.isascii() or "_" in number or not number:
        raise ValueError(token)
    if number.lstrip("+-")[:2].lower() == "0x":
        return float.fromhex(number)
    return float(number)


def _dimension_list(dimensions: dict[tuple[str, str], set[int]]) -> Iterator[str]:
    for dims in sorted({d for found in dimensions.values() for d in found}):
        yield str(dims)
