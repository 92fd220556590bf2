"""Restore a backup set into a database: check what can be checked first, then load in one transaction
that commits only when every file matched its manifest.
Plain Python: the Dagster resource calls this, and so can any other tool."""

import csv
import io
import logging
import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, closing, nullcontext
from dataclasses import dataclass
from types import TracebackType

import psycopg2.extensions

import pgvector_pipeline.pgcopy as pgcopy
from pgvector_pipeline.contract import (
    MIGRATE_TO_LANGCHAIN_POSTGRES,
    NO_MIGRATION,
    PLAIN_RESTORE,
    Migration,
    RestoreFlags,
)
from pgvector_pipeline.errors import DataError, FilesDamaged, InvalidParams, ResourceNotFound, advice, named, setting
from pgvector_pipeline.names import COLLECTION_TABLE, COLUMN_NAME_PATTERN, EMBEDDING_TABLE
from pgvector_pipeline.operations.backup import Log
from pgvector_pipeline.operations.migration import check_migration
from pgvector_pipeline.postgres.catalog import langchain_layout, table_oid
from pgvector_pipeline.postgres.collections import ChosenCollections, collections_present
from pgvector_pipeline.postgres.connection import DEFAULT_LOCK_TIMEOUT_S, classified, connect, redact_dsn
from pgvector_pipeline.postgres.ddl import checked_create_index, checked_create_table
from pgvector_pipeline.postgres.migrate import langchain_postgres_ddl
from pgvector_pipeline.postgres.parallel_load import DEFAULT_LOAD_SESSIONS
from pgvector_pipeline.postgres.pgvector_store import StoreLoad, StoreTable, restore_into_store
from pgvector_pipeline.postgres.preflight import check_privileges
from pgvector_pipeline.postgres.progress import PROGRESS_INTERVAL_S, progress_sink
from pgvector_pipeline.postgres.restore import restore_tables
from pgvector_pipeline.postgres.restore_types import (
    RestoreOptions,
    TableDDL,
    TableLoad,
    TableRestoreStats,
    TablesRestored,
)
from pgvector_pipeline.postgres.transaction import APPEND_CLASH_HINT
from pgvector_pipeline.store.age_streams import encrypted_prefix_bytes
from pgvector_pipeline.store.backup_set_info import BackupSetInfo, SetReader
from pgvector_pipeline.store.codecs import NONE
from pgvector_pipeline.store.damage import damage_marked
from pgvector_pipeline.store.files import decode_prefix, verified_csv
from pgvector_pipeline.store.keys import Identities
from pgvector_pipeline.store.layout import is_encrypted_name
from pgvector_pipeline.store.legacy import JsonRepairingCsvStream
from pgvector_pipeline.store.manifest import Manifest, ManifestTable
from pgvector_pipeline.store.naming import check_collections_in, check_tables_held
from pgvector_pipeline.store.sealing import identities_for, open_sealed
from pgvector_pipeline.tables import DEFAULT_TABLES

# A header names a handful of columns; a longer first line is not a header.
_MAX_HEADER_BYTES = 64 << 10
# zstd's largest block, and its header: what a compressed file's start may take beyond the bytes it holds. zstd
# decodes a block only whole, and its blocks hold up to 128 KiB, stored as they are when they do not compress (a
# binary set's vectors hardly do), after a frame header of at most 18 bytes.
_ZSTD_BLOCK_BYTES = (128 << 10) + 1024


@dataclass(frozen=True)
class RestoreResult:
    """What a restore did: the set, the target (redacted), per-table counts and the objects it created."""

    backup_set: BackupSetInfo
    target: str
    tables: list[TableRestoreStats]
    created: list[str]
    verify_only: bool
    duration_s: float
    swap: str = ""  # "" (a restore that appends), "swapped in", or "in place: why"
    read: tuple[str, ...] = ()  # the set's tables whose files were read

    @property
    def rows_restored(self) -> int:
        return sum(stats.rows_restored for stats in self.tables)

    @property
    def bytes_read(self) -> int:
        """Of the set's files read, as stored."""
        return sum(self.backup_set.sizes.get(table, 0) for table in self.read)


def check_restore_tables(backup_set: BackupSetInfo, tables: Sequence[str] | None) -> list[str]:
    """The tables to restore (None: every table of the set) in restore order; InvalidParams for names the set
    does not hold, or none."""
    return check_tables_held(backup_set.timestamp, backup_set.tables, tables)


def check_renames(
    collections: Sequence[str], rename: Mapping[str, str]
) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """The collections to restore (those named, else those renamed) and the renames; InvalidParams for a rename of a
    collection not restored, an empty new name, or two collections ending with one name."""
    names = tuple(dict.fromkeys(collections or list(rename)))
    stray = [old for old in rename if old not in names]
    if stray:
        raise InvalidParams(
            named("rename"),
            f" names {', '.join(repr(n) for n in stray)}, which ",
            named("collections"),
            " does not restore: add them to ",
            named("collections"),
            " (or name none there, to restore just the renamed ones).",
        )
    if any(not new.strip() for new in rename.values()):
        raise InvalidParams(named("rename"), " gives an empty new name; give every renamed collection a name.")
    final = [rename.get(name, name) for name in names]
    twice = sorted({n for n in final if final.count(n) > 1})
    if twice:
        raise InvalidParams(f"After renaming, {', '.join(repr(n) for n in twice)} would name two collections.")
    return names, tuple(rename.items())


def check_restore_collections(
    backup_set: BackupSetInfo, tables: list[str], collections: Sequence[str], flags: RestoreFlags
) -> tuple[str, ...]:
    """The collections to restore (empty: all the set holds); InvalidParams for combinations that cannot work and
    for names the set's manifest says it does not hold."""
    if flags.replace_collections and not collections:
        raise InvalidParams(
            named("replace_collections"),
            " needs the collections to replace: name them in ",
            named("collections"),
            " (to replace the whole tables, use ",
            named("truncate_before_restore"),
            " instead).",
        )
    if not collections:
        return ()
    if flags.truncate_before_restore:
        raise InvalidParams(
            named("truncate_before_restore"),
            " empties the whole tables, and ",
            named("collections"),
            " restores only some collections: the others would be lost. ",
            advice("replace_collections"),
            " to replace just the collections named.",
        )
    if set(tables) != {COLLECTION_TABLE, EMBEDDING_TABLE}:
        raise InvalidParams(
            f"Restoring collections restores {COLLECTION_TABLE} and {EMBEDDING_TABLE} together; leave ",
            named("tables"),
            " empty.",
        )
    check_collections_held(backup_set, collections)
    return tuple(dict.fromkeys(collections))


def check_collections_held(backup_set: BackupSetInfo, collections: Sequence[str]) -> None:
    """InvalidParams, with the nearest names, for collections the set's manifest says it does not hold (a set whose
    manifest records none, formats 1 and 2 and old-system sets, is checked against its rows as it loads)."""
    record = backup_set.manifest.collections if backup_set.manifest else None
    check_collections_in(backup_set.timestamp, None if record is None else record.embeddings, collections)


def restore_backup_set(
    dsn: str,
    schema: str,
    backup_set: BackupSetInfo,
    flags: RestoreFlags = PLAIN_RESTORE,
    *,
    tables: Sequence[str] | None = None,
    collections: Sequence[str] = (),
    rename: Mapping[str, str] | None = None,
    migration: Migration = NO_MIGRATION,
    maintenance_work_mem: str = "",
    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
    load_sessions: int = DEFAULT_LOAD_SESSIONS,
    log: Log | None = None,
) -> RestoreResult:
    """Restore `tables` of the set (None: all it holds) as `flags` say, into a newer LangChain layout as `migration`
    says (see pgvector_pipeline.operations.migration). With `verify_only` the whole load runs and is then rolled back.

    Completeness, file sizes and headers are checked before connecting. Each file's sha256 is computed
    over the very bytes COPY loads (read once), and a mismatch rolls the whole transaction back and marks the set
    damaged in its store (store.damage). A set
    without a manifest (made by the old system and not yet adopted) restores only with `allow_legacy`,
    since nothing can verify it.
    """
    log = log or logging.getLogger(__name__)
    clock = time.monotonic()
    tables = check_restore_tables(backup_set, tables)
    names, renames = check_renames(collections, rename or {})
    _check_set_files(backup_set, tables, flags.allow_legacy)
    if backup_set.store is None:
        raise InvalidParams(f"Set {backup_set.timestamp} was not found through a backup store; locate it first.")
    # An encrypted set is opened before anything else: no identity of its recipients, nothing is done.
    identities = open_encrypted(backup_set, log)
    chosen = check_restore_collections(backup_set, tables, names, flags)
    manifest = backup_set.manifest
    # Held for the whole restore: opened once (what is read is what was checked) and safe from retention.
    with damage_marked(backup_set, log.warning), backup_set.store.read_set(backup_set, tables) as held:
        if manifest:
            _check_file_sizes(backup_set, manifest, held, tables, log)
        else:
            log.warning(
                f"Set {backup_set.timestamp} in {backup_set.location} has no manifest (made by the old system): "
                f"no checksums to verify (allowed by allow_legacy); JSON columns written as Python reprs are "
                f"converted while loading."
            )
        loads = [_table_load(backup_set, held, table, chosen, identities) for table in tables]
        store = check_migration(
            migration, _set_layout(manifest, loads), flags, bool(renames), tables, backup_set.tables
        )
        migrate_ids = migration.migrate_to == MIGRATE_TO_LANGCHAIN_POSTGRES
        options = RestoreOptions(
            truncate=flags.truncate_before_restore,
            table_ddl=_table_ddl(manifest, migrate_ids) if flags.create_missing else None,
            fill_extra_columns=flags.fill_extra_columns,
            commit=not flags.verify_only,
            maintenance_work_mem=maintenance_work_mem,
            chosen=ChosenCollections(chosen, renames, flags.replace_collections, _holds_just(manifest, chosen, renames))
            if chosen
            else None,
            migrate_ids=migrate_ids,
            swap=flags.truncate_before_restore and not flags.in_place,
            load_sessions=load_sessions,
            progress=progress_sink(log),
            progress_interval_s=getattr(log, "progress_interval_s", PROGRESS_INTERVAL_S),
        )
        with closing(connect(dsn, lock_timeout_s=lock_timeout_s)) as conn:
            if store is not None:
                into_store = _store_load(backup_set, loads, chosen)
                done = _into_store(conn, dsn, schema, into_store, store, options, log)
            else:
                _refuse_collections_present(conn, schema, manifest, tables, flags, chosen)
                done = restore_tables(conn, dsn, schema, loads, options, log=log.info, warn=log.warning)
    outcome = "verified (rolled back, nothing changed)" if flags.verify_only else "restored"
    log.info(
        f"Set {backup_set.timestamp} {outcome}: " + ", ".join(f"{s.table} {s.rows_restored:,} rows" for s in done.stats)
    )
    return RestoreResult(
        backup_set,
        redact_dsn(dsn),
        done.stats,
        done.created,
        flags.verify_only,
        time.monotonic() - clock,
        done.swap or ("in place: asked (in_place)" if flags.in_place else ""),
        tuple(tables),
    )


def _refuse_collections_present(
    conn: psycopg2.extensions.connection,
    schema: str,
    manifest: Manifest | None,
    tables: list[str],
    flags: RestoreFlags,
    chosen: tuple[str, ...],
) -> None:
    """An append of a whole set whose collections the target holds already would fail on the first duplicate key:
    say so, and what to do, before anything loads (the names come from the manifest, format 3 on)."""
    if flags.truncate_before_restore or chosen or COLLECTION_TABLE not in tables:
        return
    names = list(manifest.collections.embeddings) if manifest and manifest.collections else []
    if not names:
        return
    with conn.cursor() as cur, classified("reading which of the set's collections the target holds", conn):
        # Before reading: a role that may insert but not read is told which privileges it lacks.
        check_privileges(cur, schema, [t for t in tables if table_oid(cur, schema, t) is not None], False)
        present = collections_present(cur, schema, names)
    conn.rollback()
    if present:
        shown = ", ".join(repr(name) for name in present[:5]) + (
            f" and {len(present) - 5} more" if len(present) > 5 else ""
        )
        raise InvalidParams(
            f"The target already holds the set's collections {shown} ({COLLECTION_TABLE}): restoring them again "
            f"would duplicate them. Nothing was changed. ",
            *APPEND_CLASH_HINT,
        )


def _set_layout(manifest: Manifest | None, loads: list[TableLoad]) -> str:
    """Which LangChain package wrote the set: its manifest says, or (a set of the old system) its embedding header."""
    if manifest is not None and manifest.source is not None:
        return manifest.source.langchain_layout
    embedding = next((load for load in loads if load.table == EMBEDDING_TABLE), None)
    return langchain_layout(embedding.columns) if embedding else "unknown"


def _store_load(backup_set: BackupSetInfo, loads: list[TableLoad], chosen: tuple[str, ...]) -> StoreLoad:
    by_table = {load.table: load for load in loads}
    expected = _chosen_rows(backup_set, EMBEDDING_TABLE, chosen) if chosen else backup_set.rows(EMBEDDING_TABLE)
    dimensions = _recorded_dimensions(backup_set.manifest)
    return StoreLoad(by_table[COLLECTION_TABLE], by_table[EMBEDDING_TABLE], chosen, dimensions, expected)


def _recorded_dimensions(manifest: Manifest | None) -> tuple[int, ...]:
    """The embedding dimensions the set's manifest records (rows without a vector left out), ascending."""
    recorded = manifest.embedding_dimensions if manifest else {}
    return tuple(sorted(int(dims) for dims in recorded if dims != "null"))


def _into_store(
    conn: psycopg2.extensions.connection,
    dsn: str,
    schema: str,
    load: StoreLoad,
    store: StoreTable,
    options: RestoreOptions,
    log: Log,
) -> TablesRestored:
    stats, created = restore_into_store(conn, dsn, schema, load, store, options, log=log.info, warn=log.warning)
    return TablesRestored([stats], created)


def _table_ddl(manifest: Manifest | None, migrate_ids: bool) -> dict[str, TableDDL]:
    """The tables create_missing creates: the set's own (from its manifest), or langchain_postgres's when migrating
    a langchain_community set into them."""
    if not migrate_ids:
        return _checked_ddl(manifest)
    dimensions = _recorded_dimensions(manifest)
    ddl = langchain_postgres_ddl(dimensions[0] if len(dimensions) == 1 else None)
    return {table: TableDDL(create, indexes) for table, (create, indexes) in ddl.items()}


def _checked_ddl(manifest: Manifest | None) -> dict[str, TableDDL]:
    """The manifest's DDL, each statement confirmed by PostgreSQL's parser (see postgres.ddl)."""
    if manifest is None or manifest.adopted:
        raise InvalidParams(
            named("create_missing"),
            " needs the table DDL from a manifest written with the set, and this set has none (made by the old "
            "system). Create the tables in the target first (LangChain creates them on first use), then restore "
            "without ",
            named("create_missing"),
            ".",
        )
    # In restore order: a table is created after the tables its foreign keys reference.
    return {
        table: _checked_table_ddl(table, manifest.tables[table]) for table in DEFAULT_TABLES.in_order(manifest.tables)
    }


def _checked_table_ddl(table: str, entry: ManifestTable) -> TableDDL:
    return TableDDL(
        checked_create_table(entry.create_table or "", table, entry.references or DEFAULT_TABLES.references_of(table)),
        [checked_create_index(statement, table) for statement in entry.indexes],
    )


def _check_set_files(backup_set: BackupSetInfo, tables: list[str], allow_legacy: bool) -> None:
    where = f"Set {backup_set.timestamp} in {backup_set.location}"
    if backup_set.problem:
        raise DataError(f"{where} is damaged: {backup_set.problem} Restore another set.")
    if backup_set.unfinished:
        raise DataError(
            f"{where} was never finished (its lock file or a .tmp file is present: a backup is writing it, "
            f"or died; the next backup into that directory removes the leftovers). Restore another set."
        )
    missing = [t for t in tables if t not in backup_set.table_files]
    if missing:
        raise ResourceNotFound(
            f"{where} has no CSV for {missing}. Restore only the tables it has "
            f"({sorted(backup_set.table_files) or 'none'}) or pick a complete set."
        )
    if backup_set.manifest is None and backup_set.sealed is None and not allow_legacy:
        raise DataError(
            f"{where} has no manifest, so nothing can verify its files (a changed digit, a cut file or an "
            f"emptied table would load silently). If the old system made it, let backup_discovery_sensor "
            f"adopt it (it records sizes and checksums), or restore it once with ",
            setting("allow_legacy"),
            ". If this tool made it, its manifest was deleted: restore another set.",
        )


def _check_file_sizes(
    backup_set: BackupSetInfo, manifest: Manifest, held: SetReader, tables: list[str], log: Log
) -> None:
    """A cut or grown file is refused before connecting; its sha256 is checked as it loads (VerifiedReader)."""
    for table in tables:
        entry = manifest.tables.get(table)
        name = backup_set.table_files[table]
        if entry is None:
            raise DataError(
                f"The manifest of set {backup_set.timestamp} does not describe {table}. Restore another set."
            )
        size = held.size(table)
        if size != entry.file_bytes:
            raise FilesDamaged(
                f"{name} does not match its manifest (expected {entry.file_bytes} bytes, found {size} bytes). The "
                f"file was changed or damaged after the backup: restore another set."
            )
    log.info(
        "File sizes match the manifest; each file's sha256 is computed over the bytes as they load, and the "
        "restore commits only if all match."
    )


def open_encrypted(backup_set: BackupSetInfo, log: Log) -> Identities | None:
    """The identities that read an encrypted set, its manifest opened (store.sealing: a sealed manifest that is not what
    the set's index records marks the set damaged); None for a set in clear. InvalidParams, before anything is read,
    when this host holds no identity of the recipients the set is encrypted to."""
    if backup_set.sealed is None:
        return None
    identities = identities_for(backup_set)
    assert identities is not None
    if backup_set.manifest is not None:  # opened already (a drill opens it before it restores)
        return identities
    with damage_marked(backup_set, log.warning):
        open_sealed(backup_set)
    held = [f for f in backup_set.recipients if f in identities.fingerprints]
    log.info(
        f"Set {backup_set.timestamp} is age-encrypted (recipients {', '.join(backup_set.recipients)}): read with the "
        f"identity of {', '.join(held)}."
    )
    return identities


def _file_start(
    held: SetReader, table: str, backup_set: BackupSetInfo, codec: str, limit: int, identities: Identities | None
) -> bytes:
    """At most `limit` bytes from the start of a held table file's content (decrypted, decompressed), read without
    consuming it."""
    name = backup_set.table_files[table]
    encrypted = is_encrypted_name(name)
    # zstd decodes whole blocks, of up to 128 KiB of content: a block of vectors barely compresses, so the start of a
    # compressed file that holds the first `limit` bytes may be longer than they are.
    stored_limit = _MAX_HEADER_BYTES if codec == NONE else _MAX_HEADER_BYTES + _ZSTD_BLOCK_BYTES
    stored = held.prefix(table, encrypted_prefix_bytes(stored_limit) if encrypted else stored_limit)
    return decode_prefix(stored, name, codec, limit, identities, encrypted)


def _read_header(
    held: SetReader, table: str, backup_set: BackupSetInfo, codec: str, identities: Identities | None = None
) -> list[str]:
    """The CSV header of a held table file (decompressed), read from its first bytes without consuming it."""
    name = backup_set.table_files[table]
    path = f"{backup_set.location}/{name}"  # for messages
    line = _file_start(held, table, backup_set, codec, _MAX_HEADER_BYTES, identities).split(b"\n", 1)[0]
    try:
        header = next(csv.reader(io.StringIO(line.decode("utf-8"), newline="")), [])
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(
            f"The header line of {path} cannot be read as UTF-8 CSV ({exc}). The file is damaged."
        ) from None
    if not header:
        raise DataError(f"{path} has no CSV header line. The file is empty or damaged.")
    # The header is file content: it reaches messages only as names that are plain identifiers.
    odd = sum(1 for name in header if not COLUMN_NAME_PATTERN.fullmatch(name))
    if odd:
        raise DataError(
            f"The header line of {path} is not a list of column names: {odd} of its {len(header)} fields are not "
            f"plain identifiers (letters, digits, underscores; at most 63). The file is damaged or not a set's CSV; "
            f"its content is not shown."
        )
    return header


def _check_binary_start(
    held: SetReader, table: str, backup_set: BackupSetInfo, codec: str, identities: Identities | None = None
) -> None:
    """A binary set's file starts with the binary COPY header (its columns are the manifest's); DataError otherwise."""
    name = backup_set.table_files[table]
    start = _file_start(held, table, backup_set, codec, len(pgcopy.HEADER), identities)
    pgcopy.header_length(start, f"{backup_set.location}/{name}")


def _holds_just(manifest: Manifest | None, chosen: tuple[str, ...], renames: tuple[tuple[str, str], ...]) -> bool:
    """Whether the set holds exactly the chosen collections (its manifest says so) and none is renamed: then every
    row of its files is a chosen row, and they load without staging."""
    record = manifest.collections if manifest else None
    return record is not None and not renames and set(record.embeddings) == set(chosen)


def _chosen_rows(backup_set: BackupSetInfo, table: str, chosen: tuple[str, ...]) -> int | None:
    """The rows of the chosen collections a table of the set holds, when known: one per collection in the
    collection table; the manifest's embeddings per collection (format 3) in the embedding table."""
    if not chosen:
        return None
    if table == COLLECTION_TABLE:
        return len(chosen)
    record = backup_set.manifest.collections if backup_set.manifest else None
    return sum(record.embeddings[name] for name in chosen) if record else None


def _table_load(
    backup_set: BackupSetInfo,
    held: SetReader,
    table: str,
    chosen: tuple[str, ...] = (),
    identities: Identities | None = None,
) -> TableLoad:
    name = backup_set.table_files[table]
    file = held.file(table)
    entry = backup_set.manifest.tables.get(table) if backup_set.manifest else None

    def open_file() -> AbstractContextManager[io.RawIOBase]:
        # The held file is read once, from its start; the held set closes it.
        return verified_csv(file, name, entry, identities) if entry else nullcontext(file)

    # Old-system CSVs (adopted or not) may hold JSON as Python reprs, and '' and NULL look alike.
    legacy = backup_set.manifest is None or backup_set.manifest.adopted
    if entry is not None and backup_set.manifest is not None and backup_set.manifest.binary:
        _check_binary_start(held, table, backup_set, entry.codec, identities)
        where, columns = f"{backup_set.location}/{name}", [column.name for column in entry.columns]
        return TableLoad(
            table,
            columns,
            lambda: _BinaryFile(open_file(), where, len(columns)),
            entry.rows,
            file_bytes=entry.bytes,
            expected_chosen_rows=_chosen_rows(backup_set, table, chosen),
            binary_types=tuple(column.type for column in entry.columns),
        )
    return TableLoad(
        table,
        _read_header(held, table, backup_set, entry.codec if entry else NONE, identities),
        (lambda: _LegacyFile(open_file(), name)) if legacy else open_file,
        backup_set.rows(table),
        legacy_empty_fields=legacy,
        file_bytes=entry.bytes if entry else held.size(table),  # what COPY reads: the CSV, decompressed
        expected_chosen_rows=_chosen_rows(backup_set, table, chosen),
    )


class _BinaryFile:
    """A binary set's file read through the check of its stream's structure (pgvector_pipeline.pgcopy.CheckedStream:
    a crafted count or length never reaches the server); leaving it leaves the file (and its checks, so a file that
    differs from its manifest is reported as damaged, not as the structure the damage broke)."""

    def __init__(self, file: AbstractContextManager[io.RawIOBase], where: str, fields: int):
        self._file = file
        self._stream = pgcopy.CheckedStream(file.__enter__(), where, fields)

    def read(self, size: int = -1) -> bytes:
        return self._stream.read(size)

    def __enter__(self) -> "_BinaryFile":
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._file.__exit__(exc_type, exc, tb)


class _LegacyFile:
    """A legacy CSV read through the JSON-repairing stream; leaving it leaves the file (and its checks)."""

    def __init__(self, file: AbstractContextManager[io.RawIOBase], file_name: str):
        self._file = file
        self._stream = JsonRepairingCsvStream(io.BufferedReader(file.__enter__()), file_name)

    def read(self, size: int = -1) -> bytes:
        return self._stream.read(size)

    def __enter__(self) -> "_LegacyFile":
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._file.__exit__(exc_type, exc, tb)
