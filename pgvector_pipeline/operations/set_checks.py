"""Proof that a set will restore, read from the set alone (no database, no Dagster): the checks the backup assets
carry in the UI (issue 24). "Backup said success, restore failed" is what users of every vector-database backup tool
report; these make it impossible not to know.

  files_match_manifest   every file's size and sha256 (as stored, and of the CSV inside) as the manifest records; a
                         file that differs marks the set damaged in its store (store.damage): it never counts as
                         complete, so retention keeps the location's set before it. An encrypted set (store.keys) on a
                         host without its identity: the stored bytes only, against its clear index
  embeddings_parse       every vector of the set parses, holds no NaN or infinity, and the vectors of one collection
                         (one table, outside LangChain's layout) all have one dimension. Skipped (a warning, neither
                         passed nor failed) for an encrypted set on a host that holds no identity of its recipients:
                         the restore drill, run where the identity is, proves that one
  rows_hold_up           no table holds fewer rows than (1 - PGVECTOR_ROWS_DROP_WARN) of the location's previous
                         complete set (a warning: a shrinking store may be intended)

One read of each file serves the first two, streamed as a restore streams it: memory stays flat. Parsing the
vectors' text is what costs (pgvector_pipeline.operations.vector_text); for a large set it is spread over worker processes
(pgvector_pipeline.operations.parse_workers: they start from that module, never from the caller's script) while this one reads
and hashes the files.
"""

import csv
import hashlib
import io
import logging
import os
import uuid
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import ExitStack
from dataclasses import dataclass, field

import pgvector_pipeline.pgcopy as pgcopy
from pgvector_pipeline.env_numbers import number_from_env, whole_number
from pgvector_pipeline.errors import DataError, FilesDamaged, InvalidParams
from pgvector_pipeline.names import COLLECTION_REF_COLUMN
from pgvector_pipeline.operations.backup import BackupResult, Log
from pgvector_pipeline.operations.parse_workers import ParseWorkers, WorkerDied
from pgvector_pipeline.operations.vector_binary import binary_vector_values
from pgvector_pipeline.operations.vector_text import Parsed, VectorType, read_vectors
from pgvector_pipeline.store.backup_set_info import BackupSetInfo, Warn
from pgvector_pipeline.store.damage import damage_marked
from pgvector_pipeline.store.files import VerifiedReader, verified_csv
from pgvector_pipeline.store.interface import BackupStore
from pgvector_pipeline.store.manifest import ManifestTable
from pgvector_pipeline.store.sealing import MAX_SEALED_MANIFEST_BYTES, identities_for, open_sealed

_log = logging.getLogger(__name__)

FILES_CHECK = "files_match_manifest"
EMBEDDINGS_CHECK = "embeddings_parse"
ROWS_CHECK = "rows_hold_up"
ROWS_DROP_ENV = "PGVECTOR_ROWS_DROP_WARN"
DEFAULT_ROWS_DROP = 0.5
_SHOWN = 5
# Sets whose files with vectors are this large are parsed by worker processes (at 50,000 × 1536 on 2 cores: 5.9 s
# against 10.6 s in this process alone); smaller ones are not worth starting them.
PARALLEL_PARSE_MIN_BYTES = 32 << 20
# Vectors per batch a worker parses, and batches per worker waiting or in work: memory stays bounded.
_BATCH = 250
_IN_FLIGHT = 2


# Worker processes that parse a set's vectors, whatever its size (0: none, parse in the run's process).
CHECK_WORKERS_ENV = "PGVECTOR_CHECK_WORKERS"


def parse_workers(vector_bytes: int) -> int:
    """Worker processes for a set whose files with vectors hold `vector_bytes`: $PGVECTOR_CHECK_WORKERS if set, else
    one per core, at most 4 (this process reads and hashes), from PARALLEL_PARSE_MIN_BYTES on."""
    default = min(4, os.cpu_count() or 1) if vector_bytes >= PARALLEL_PARSE_MIN_BYTES else 0
    return number_from_env(
        CHECK_WORKERS_ENV, default, whole_number, lambda workers: True, "is a number of processes (0: none)"
    )


@dataclass(frozen=True)
class SetCheck:
    """One check of one set: its name, whether it passed, what it found (for people), and whether a failure is
    only a warning."""

    name: str
    passed: bool
    description: str
    warn_only: bool = False
    metadata: dict[str, str | int | float] = field(default_factory=dict)

    @property
    def skipped(self) -> bool:
        """Not run (neither passed nor failed): reported as a warning whose metadata says `skipped` and why."""
        return bool(self.metadata.get("skipped"))


def skipped_check(name: str, why: str) -> SetCheck:
    """A check that could not run here, and why."""
    return SetCheck(name, False, f"Skipped: {why}", warn_only=True, metadata={"skipped": True})


def check_set(backup_set: BackupSetInfo, previous: BackupSetInfo | None, warn: Warn | None = None) -> list[SetCheck]:
    """Every check of `backup_set`; `previous` is the location's complete set before it (None: there is none).
    `warn` hears of a damage marker that could not be logged."""
    return [*check_files_and_embeddings(backup_set, warn=warn), rows_hold_up(backup_set, previous)]


def check_written_set(
    store: BackupStore, written: BackupResult, log: Log
) -> tuple[list[SetCheck], list[BackupSetInfo]]:
    """Every check of the set a backup just wrote (`written`, read back from `store`: see _written_set_checks), each logged; and the
    store's sets once checked (listed again when the files were found damaged: the set no longer lists as complete).
    What every backup runs, in Dagster (assets.backup) and with --direct."""
    sets = store.list_sets()
    mine = next(s for s in sets if (s.task, s.timestamp) == (written.task, written.timestamp))
    previous = next((s for s in sets if s.task == mine.task and s.complete and s.taken_at < mine.taken_at), None)
    checks = _written_set_checks(mine, written, previous, log.warning)
    for check in checks:
        (log.info if check.passed else log.warning)(f"Check {check.name}: {check.description}")
    return checks, store.list_sets() if files_differ(checks) else sets


def _written_set_checks(
    backup_set: BackupSetInfo, written: BackupResult, previous: BackupSetInfo | None, warn: Warn | None = None
) -> list[SetCheck]:
    """The checks of the set a backup run has just written (`written`), at the cost of reading its stored bytes once:
    every byte was hashed and every row counted as the export wrote it, so what is left to prove is that the store
    holds those bytes (their sizes and sha256 as stored, read back) and what the snapshot counted of the vectors. The
    server printed every vector from a value pgvector had accepted (finite, in range, of its column's dimension), so
    nothing is parsed again; the full check (check_set) runs where a column's dimensions were not counted, and on any
    set read later."""
    if not written.dimensions_counted:
        return check_set(backup_set, previous, warn)
    entries = backup_set.stored_entries
    assert entries and backup_set.store is not None
    try:
        with damage_marked(backup_set, warn or _log.warning):
            _read_stored_bytes(backup_set)
    except FilesDamaged as damage:
        return [*_files_differ(damage.message), rows_hold_up(backup_set, previous)]
    except DataError as exc:  # the set could not be read as listed (deleted since)
        return [*_files_differ(exc.message), rows_hold_up(backup_set, previous)]
    files = SetCheck(
        FILES_CHECK,
        True,
        f"All {len(entries)} files read back from the store match the sizes and sha256 they were written with "
        f"(the content inside was hashed and counted as it was exported).",
        metadata={"files": len(entries), "bytes": sum(e.file_bytes for e in entries.values())},
    )
    return [files, _counted_vectors(written), rows_hold_up(backup_set, previous)]


def _read_stored_bytes(backup_set: BackupSetInfo) -> None:
    """Read every file of the set as stored, checking its size and sha256 (FilesDamaged when one differs): against the
    manifest, or an encrypted set's clear index (its sealed manifest too)."""
    entries = backup_set.stored_entries
    assert entries and backup_set.store is not None
    with backup_set.store.read_set(backup_set, list(entries)) as held:
        for table, entry in entries.items():
            with VerifiedReader(held.file(table), entry.file, entry.file_bytes, entry.file_sha256) as stored:
                while stored.read(1 << 20):
                    pass
        if backup_set.sealed is not None:
            sealed = held.sealed_manifest(MAX_SEALED_MANIFEST_BYTES)
            record = backup_set.sealed.manifest
            found = (len(sealed), hashlib.sha256(sealed).hexdigest())
            if found != (record.stored_bytes, record.stored_sha256):
                raise FilesDamaged(
                    f"{record.file} does not match the set's index: the sha256 of its bytes is {found[1][:12]}… "
                    f"({found[0]} bytes), the index records {record.stored_sha256[:12]}… ({record.stored_bytes} "
                    f"bytes). The file was changed or damaged after the backup: restore another set."
                )


def _counted_vectors(written: BackupResult) -> SetCheck:
    """embeddings_parse of a set just written, from what its snapshot counted."""
    vectors = sum(rows for dims, rows in written.embedding_dimensions.items() if dims != "null")
    metadata: dict[str, str | int | float] = {
        "vectors": vectors,
        "dimensions": ", ".join(d for d in written.embedding_dimensions if d != "null") or "none",
        "parsed_by": "not parsed again: the server printed each from a value pgvector accepted",
    }
    if written.mixed_dimensions:
        mixed = "; ".join(f"{key} has vectors of {dims} dimensions" for key, dims in written.mixed_dimensions.items())
        return SetCheck(
            EMBEDDINGS_CHECK,
            False,
            f"Vectors that would not search as they should: {mixed}.",
            metadata=metadata,
        )
    return SetCheck(
        EMBEDDINGS_CHECK,
        True,
        f"All {vectors:,} vectors are the server's own output of values pgvector accepted (finite, in range), and "
        f"have one dimension per collection (counted in the backup's snapshot).",
        metadata=metadata,
    )


def files_differ(checks: list[SetCheck]) -> bool:
    """Whether the checks found a file that does not match the manifest (the set is marked damaged)."""
    return any(check.name == FILES_CHECK and not check.passed and not check.warn_only for check in checks)


def check_files_and_embeddings(
    backup_set: BackupSetInfo, workers: int | None = None, warn: Warn | None = None
) -> tuple[SetCheck, SetCheck]:
    """files_match_manifest and embeddings_parse, from one read of each file; a file that does not match the manifest
    marks the set damaged. `workers`: processes that parse the vectors (0: this one; None: as parse_workers says for
    this set)."""
    if backup_set.sealed is not None and backup_set.manifest is None:
        unread = _open_here(backup_set, warn)
        if unread is not None:
            return _stored_bytes_only(backup_set, unread, warn)
    manifest = backup_set.manifest
    if manifest is None or backup_set.store is None:
        why = f"Set {backup_set.timestamp} has no manifest (made by the old system): nothing to compare it with."
        return (SetCheck(FILES_CHECK, False, why, warn_only=True), SetCheck(EMBEDDINGS_CHECK, False, why, True))
    if workers is None and manifest.binary:
        workers = 0  # binary vectors are read, not parsed: no text, nothing worth a worker process
    if workers is None:
        workers = parse_workers(sum(e.file_bytes for e in manifest.tables.values() if _vector_types(e)))
    try:
        with damage_marked(backup_set, warn or _log.warning):
            try:
                return _read_and_check(backup_set, workers)
            except WorkerDied:  # a worker died (killed, out of memory): the set is not at fault, read it again here
                return _read_and_check(backup_set, 0)
    except FilesDamaged as damage:  # the set is marked damaged by now, and the message says so
        return _files_differ(damage.message)


def _open_here(backup_set: BackupSetInfo, warn: Warn | None) -> str | None:
    """Open an encrypted set's manifest with this host's identity; None when it is open, else why it cannot be (no
    identity here, or none of its recipients'). A sealed manifest that is not what the index records marks the set
    damaged (FilesDamaged, as any file that differs)."""
    assert backup_set.store is not None
    if not backup_set.store.keys.holds_identity:
        return (
            f"this host holds no identity of the recipients set {backup_set.timestamp} is encrypted to "
            f"({', '.join(backup_set.recipients)}), so its content cannot be read here; the restore drill, run where "
            f"the identity is, proves it restores."
        )
    try:
        with damage_marked(backup_set, warn or _log.warning):
            open_sealed(backup_set)
    except InvalidParams as refused:  # an identity of other recipients, or a file that cannot be used
        return refused.message
    except FilesDamaged:
        raise
    return None


def _stored_bytes_only(backup_set: BackupSetInfo, why: str, warn: Warn | None) -> tuple[SetCheck, SetCheck]:
    """The checks of an encrypted set whose content cannot be read here: its stored bytes against its clear index, and
    embeddings_parse skipped saying why."""
    entries = backup_set.stored_entries
    try:
        with damage_marked(backup_set, warn or _log.warning):
            _read_stored_bytes(backup_set)
    except FilesDamaged as damage:
        return _files_differ(damage.message)
    except DataError as exc:  # the set could not be read as listed (deleted since)
        return _files_differ(exc.message)
    files = SetCheck(
        FILES_CHECK,
        True,
        f"All {len(entries)} files and the encrypted manifest match the set's index (sizes and sha256 as stored, "
        f"encrypted; the content inside is checked where an identity reads it).",
        metadata={"files": len(entries), "bytes": sum(e.file_bytes for e in entries.values()), "encrypted": True},
    )
    return files, skipped_check(EMBEDDINGS_CHECK, why)


def _files_differ(description: str) -> tuple[SetCheck, SetCheck]:
    """The checks of a set whose files could not be read as its manifest records (`description`: why)."""
    return (
        SetCheck(FILES_CHECK, False, description),
        SetCheck(EMBEDDINGS_CHECK, False, "Not checked: the set's files do not match its manifest.", True),
    )


def _read_and_check(backup_set: BackupSetInfo, workers: int) -> tuple[SetCheck, SetCheck]:
    """The two checks; FilesDamaged when a file does not match the manifest."""
    manifest = backup_set.manifest
    assert manifest is not None and backup_set.store is not None
    tables = list(manifest.tables)
    identities = identities_for(backup_set)
    with ExitStack() as stack:
        pool = None
        if workers:
            pool = stack.enter_context(ParseWorkers(workers))
        found = _Vectors(pool, workers)
        try:
            with backup_set.store.read_set(backup_set, tables) as held:
                for table in tables:
                    entry = manifest.tables[table]
                    with verified_csv(held.file(table), entry.file, entry, identities) as stream:
                        if manifest.binary:
                            found.read_binary(table, entry, stream)
                        else:
                            found.read(table, entry, stream)
        except FilesDamaged:
            raise
        except DataError as exc:  # the set could not be read as listed (deleted, being deleted since)
            return _files_differ(exc.message)
    files = SetCheck(
        FILES_CHECK,
        True,
        f"All {len(tables)} files match the manifest (sizes and sha256, as stored and decompressed).",
        metadata={"files": len(tables), "bytes": sum(e.file_bytes for e in manifest.tables.values())},
    )
    return files, found.verdict()


def rows_hold_up(backup_set: BackupSetInfo, previous: BackupSetInfo | None) -> SetCheck:
    """A warning when a table lost more than the allowed share of rows since the location's previous set."""
    allowed = allowed_rows_drop()
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


def allowed_rows_drop() -> float:
    """The share of rows a table may lose between sets before rows_hold_up warns: $PGVECTOR_ROWS_DROP_WARN."""
    return number_from_env(
        ROWS_DROP_ENV,
        DEFAULT_ROWS_DROP,
        float,
        lambda share: 0 <= share <= 1,
        "is a share of rows from 0 to 1 (0.5: half)",
    )


# What one dimension is expected of: (table, vector column, collection key or '').
_Group = tuple[str, str, str]


@dataclass(frozen=True)
class _Batch:
    """Vectors of one column handed to a parser at once, and where each came from (row, group)."""

    file: str
    column: str
    vector_type: VectorType
    texts: list[str] = field(default_factory=list)
    rows: list[tuple[int, _Group]] = field(default_factory=list)


class _Vectors:
    """What the vectors of a set hold, collected as the files stream by: dimensions by group, and the bad ones.
    Batches are parsed here or by `pool`'s workers, and taken in the order they were made."""

    def __init__(self, pool: ParseWorkers | None, workers: int) -> None:
        # By (table, column, collection key): '' for a table outside LangChain's layout, whose column's vectors are
        # one group. Each column has its own dimension (a table may hold a vector(768) and a halfvec(2)).
        self.dimensions: dict[_Group, set[int]] = {}
        self.vectors = 0
        self.bad: list[str] = []
        self._pool = pool
        self._waiting: deque[tuple[_Batch, Future[list[Parsed]] | list[Parsed]]] = deque()
        self._in_flight = _IN_FLIGHT * workers
        self._workers = workers

    def read(self, table: str, entry: ManifestTable, stream: io.RawIOBase) -> None:
        types = _vector_types(entry)
        if not types:
            return  # leaving verified_csv reads the rest in chunks and checks it
        reader = csv.reader(io.TextIOWrapper(io.BufferedReader(stream, 1 << 16), encoding="utf-8", newline=""))
        header = next(reader, [])
        batches = {i: _Batch(entry.file, name, types[name]) for i, name in enumerate(header) if name in types}
        group_at = header.index(COLLECTION_REF_COLUMN) if COLLECTION_REF_COLUMN in header else None
        for row_number, row in enumerate(reader, start=1):
            key = row[group_at] if group_at is not None else ""
            for position, batch in batches.items():
                if row[position]:
                    batch.texts.append(row[position])
                    batch.rows.append((row_number, (table, batch.column, key)))
                    if len(batch.texts) >= _BATCH:
                        batches[position] = self._hand_over(batch)
        for batch in batches.values():
            self._hand_over(batch)
        self._take(until=0)

    def read_binary(self, table: str, entry: ManifestTable, stream: io.RawIOBase) -> None:
        """The vectors of a binary set's file, read from their binary form in this process (no text to parse)."""
        types = _vector_types(entry)
        if not types:
            return
        names = [column.name for column in entry.columns]
        positions = {names.index(name): vector_type for name, vector_type in types.items()}
        group_at = names.index(COLLECTION_REF_COLUMN) if COLLECTION_REF_COLUMN in names else None
        # The collection's key as the CSV of the same set holds it: a uuid's text, or the field's own text.
        key_of = _uuid_text if group_at is not None and entry.columns[group_at].type == "uuid" else _field_text
        # Its structure checked as it is read: each tuple has the manifest's columns (see pgcopy.CheckedStream).
        checked = pgcopy.CheckedStream(io.BufferedReader(stream, 1 << 16), entry.file, len(names))
        row_number = 0
        for block in pgcopy.tuple_blocks(checked.read, entry.file, 1 << 20):
            for fields in pgcopy.fields_of(block, entry.file):
                row_number += 1
                key = fields[group_at] if group_at is not None else None
                key_text = key_of(key) if key is not None else ""
                for position, vector_type in positions.items():
                    field = fields[position]
                    if field is None:
                        continue
                    found = binary_vector_values(field, vector_type)
                    self.vectors += 1
                    if isinstance(found, str):
                        self._bad(f"{entry.file} row {row_number}, {names[position]}: {found}")
                    else:
                        self.dimensions.setdefault((table, names[position], key_text), set()).add(len(found))

    def _hand_over(self, batch: _Batch) -> _Batch:
        """Parse `batch` (or have a worker parse it); an empty batch of the same column to fill next."""
        if batch.texts:
            parsed = (
                self._pool.submit(batch.texts, batch.vector_type)
                if self._pool is not None
                else read_vectors(batch.texts, batch.vector_type)
            )
            self._waiting.append((batch, parsed))
            self._take(until=self._in_flight)
        return _Batch(batch.file, batch.column, batch.vector_type)

    def _take(self, until: int) -> None:
        """Note the results of the oldest batches until at most `until` wait."""
        while len(self._waiting) > until:
            batch, parsed = self._waiting.popleft()
            found = parsed.result() if isinstance(parsed, Future) else parsed
            for (dimensions, problem), (row_number, group) in zip(found, batch.rows, strict=True):
                self.vectors += 1
                if dimensions:
                    self.dimensions.setdefault(group, set()).add(dimensions)
                if problem:
                    self._bad(f"{batch.file} row {row_number}, {batch.column}: {problem}")

    def _bad(self, what: str) -> None:
        if len(self.bad) < _SHOWN:
            self.bad.append(what)
        else:
            self.bad[-1] = "…"

    def verdict(self) -> SetCheck:
        mixed = {group: sorted(dims) for group, dims in self.dimensions.items() if len(dims) > 1}
        metadata: dict[str, str | int | float] = {
            "vectors": self.vectors,
            "dimensions": ", ".join(_dimension_list(self.dimensions)) or "none",
            # Text, not a number: the UI plots numbers, and this one says nothing over time.
            "parsed_by": f"{self._workers} worker processes" if self._workers else "the run's process",
        }
        if self.bad or mixed:
            problems = self.bad + [
                f"{table}.{column}{f' of collection {key}' if key else ''} has vectors of {dims} dimensions"
                for (table, column, key), dims in mixed.items()
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
            f"All {self.vectors:,} vectors load as pgvector reads them, and have one dimension per collection.",
            metadata=metadata,
        )


def _uuid_text(value: memoryview) -> str:
    return str(uuid.UUID(bytes=bytes(value))) if len(value) == 16 else bytes(value).hex()


def _field_text(value: memoryview) -> str:
    return bytes(value).decode("utf-8", "replace")


def _vector_types(entry: ManifestTable) -> dict[str, VectorType]:
    """The columns of `entry` whose vectors the check parses, by name."""
    return {c.name: t for c in entry.columns if (t := VectorType.of(c.type)) is not None}


def _dimension_list(dimensions: dict[_Group, set[int]]) -> Iterator[str]:
    for dims in sorted({d for found in dimensions.values() for d in found}):
        yield str(dims)
