"""The per-set JSON manifest: what a set holds and how to verify and recreate it.

A manifest is an untrusted file (anyone who can write the backup root can edit it), so reading one
yields a typed, validated `Manifest` or a DataError: strict types, no unknown fields, names that match
the set. No other module looks into the JSON. Its DDL is text until restore needs it: then
`postgres.ddl` checks it with PostgreSQL's parser (a set whose table has a part restore will not
recreate stays restorable into existing tables).

Two kinds: "backup" (written by this tool when it wrote the set) and "adopted" (written when a set of
the old system was first found: sizes and checksums as found then, no DDL, JSON columns possibly in
Python repr form).

Formats (both read; new manifests are written in the newest):
    pgvector-pipeline-backup/1   each table's file is its plain CSV: `bytes` and `sha256` are the file's
    pgvector-pipeline-backup/2   each table also records `codec` (none, zstd, gzip), `stored_bytes` and
                                 `stored_sha256` (the file as stored); `bytes` and `sha256` are the CSV's
    pgvector-pipeline-backup/3   also `collections`: which collections the set holds (`selected`: the names a
                                 per-collection backup asked for, null for all) and the embeddings of each
    pgvector-pipeline-backup/4   also `set_format`: "csv" (the default) or "binary" (PostgreSQL's binary COPY stream:
                                 `{table}_{ts}.pgcopy[.zst|.gz]`, `bytes` and `sha256` the stream's, each column's
                                 type with its typmod as the source printed it, which a restore must match or cast)
    pgvector-pipeline-backup/5   an encrypted set (store.keys): also `encryption` (the fingerprints of the age recipients
                                 it is encrypted to); its files end in .age and `stored_bytes`/`stored_sha256` are
                                 the encrypted files'. This manifest is stored encrypted itself
                                 (`vector_backup_{ts}.json.age`), and `vector_backup_{ts}.json` holds its clear index
                                 (`SealedIndex`, kind "sealed"): what listing, retention, the check of the stored bytes
                                 and a copy of the stored bytes need, and nothing of the data (no collection names,
                                 columns, DDL or row filters). Sets written in clear stay in format 4.
A set holds the tables its manifest lists, whichever they are (names that are plain identifiers).
"""

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from pgvector_pipeline.errors import DataError
from pgvector_pipeline.names import COLUMN_NAME_PATTERN, PRINTED_ROW_FILTER_MAX_CHARS
from pgvector_pipeline.set_formats import BINARY, CSV, SetFormat
from pgvector_pipeline.store.codecs import CODEC_NAMES, NONE
from pgvector_pipeline.store.directory import Directory
from pgvector_pipeline.store.layout import (
    GLOBAL_TASK_KEY,
    MAX_YEAR,
    MIN_YEAR,
    TASK_ID_PATTERN,
    TIMESTAMP_PATTERN,
    is_encrypted_name,
    manifest_name,
    sealed_manifest_name,
    table_file_name,
)
from pgvector_pipeline.untrusted_text import nul_at, shown_path

ManifestFormat = Literal[
    "pgvector-pipeline-backup/1",
    "pgvector-pipeline-backup/2",
    "pgvector-pipeline-backup/3",
    "pgvector-pipeline-backup/4",
    "pgvector-pipeline-backup/5",
]
MANIFEST_FORMAT_1: ManifestFormat = "pgvector-pipeline-backup/1"
MANIFEST_FORMAT_2: ManifestFormat = "pgvector-pipeline-backup/2"
MANIFEST_FORMAT_3: ManifestFormat = "pgvector-pipeline-backup/3"
# What new manifests are written in: sets in clear, and encrypted sets.
MANIFEST_FORMAT: ManifestFormat = "pgvector-pipeline-backup/4"
MANIFEST_FORMAT_ENCRYPTED: ManifestFormat = "pgvector-pipeline-backup/5"
ManifestKind = Literal["backup", "adopted"]
KIND_BACKUP: ManifestKind = "backup"
KIND_ADOPTED: ManifestKind = "adopted"
KIND_SEALED = "sealed"  # an encrypted set's clear index (SealedIndex)
# Real manifests are a few KB; a huge one is an attack on memory, not a manifest.
MAX_MANIFEST_BYTES = 4 << 20

TableName = Annotated[str, Field(pattern="^" + COLUMN_NAME_PATTERN.pattern + "$")]
CodecName = Literal[CODEC_NAMES]  # type: ignore[valid-type]  # the codec registry's names: known when it is built
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
# Every number of a manifest is bounded here, where it is read: rows and bytes as PostgreSQL's bigint and pandas'
# Int64 hold them (one set claiming 10**30 rows made the inventory of every set fail), durations shorter than a
# working life, no infinity or NaN.
MAX_COUNT = 2**63 - 1
MAX_SECONDS = 1e9  # about 31 years
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]
Seconds = Annotated[float, Field(ge=0, le=MAX_SECONDS, allow_inf_nan=False)]
# embedding_dimensions' keys: a dimension as text (pgvector's largest, sparsevec's, has 10 digits), or 'null' for
# rows without a vector.
DimensionKey = Annotated[str, Field(pattern=r"^(null|[1-9][0-9]{0,9})$")]


def _aware_time(text: str) -> str:
    """`text` if it is an ISO 8601 time with its UTC offset that converts to UTC (sets are ordered by it); ValueError
    otherwise."""
    try:
        moment = datetime.fromisoformat(text)
        moment.astimezone(UTC)  # OverflowError at the ends of the calendar (year 1 at +14:00)
    except (ValueError, OverflowError):
        raise ValueError("is not an ISO 8601 date and time") from None
    if moment.tzinfo is None or not MIN_YEAR <= moment.year <= MAX_YEAR:
        raise ValueError(f"is not a time with its UTC offset between {MIN_YEAR} and {MAX_YEAR}")
    return text


AwareTime = Annotated[str, Field(max_length=64), AfterValidator(_aware_time)]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class ManifestColumn(_Strict):
    """A column of a backed-up table."""

    name: Annotated[str, Field(min_length=1, max_length=63)]
    type: Annotated[str, Field(min_length=1, max_length=200)]
    not_null: bool


Fingerprint = Annotated[str, Field(pattern=r"^[0-9a-f]{16}$")]


class ManifestEncryption(_Strict):
    """Format 5: whom an encrypted set's files are encrypted to (store.keys.fingerprint of each age recipient)."""

    recipients: Annotated[list[Fingerprint], Field(min_length=1, max_length=100)]


class ManifestTable(_Strict):
    """One table of a set: its file's name, rows, the CSV's bytes and sha256, how it is stored, columns and DDL."""

    file: str
    rows: Count
    bytes: Count
    sha256: Sha256
    # Format 2: how the file stores the CSV, and the file's own size and sha256 (absent in format 1: plain CSV).
    codec: CodecName = NONE
    stored_bytes: Count | None = None
    stored_sha256: Sha256 | None = None
    duration_s: Seconds | None = None
    columns: list[ManifestColumn]
    # Absent in adopted sets. Untrusted SQL text: only postgres.ddl's checked re-prints are executed.
    create_table: str | None = None
    indexes: list[str] = []
    # Format 3: the set's tables this table's foreign keys reference (restored first; the only tables its DDL may
    # reference), and the row filter of the backup (informative: never executed from here).
    references: list[TableName] = []
    row_filter: Annotated[str, Field(max_length=PRINTED_ROW_FILTER_MAX_CHARS)] | None = None

    @property
    def file_bytes(self) -> int:
        """The size of the file as stored."""
        return self.bytes if self.stored_bytes is None else self.stored_bytes

    @property
    def file_sha256(self) -> str:
        """The sha256 of the file as stored."""
        return self.sha256 if self.stored_sha256 is None else self.stored_sha256

    @property
    def encrypted(self) -> bool:
        """Whether the file is age-encrypted (format 5; its name ends in .age)."""
        return is_encrypted_name(self.file)


# Collection names are the store's data: any text, bounded.
CollectionName = Annotated[str, Field(max_length=1000)]


class ManifestCollections(_Strict):
    """Format 3: the collections a set holds and the embeddings of each."""

    selected: list[CollectionName] | None = None  # the collections a per-collection backup asked for; None: all
    embeddings: dict[CollectionName, Count]


# How much of a recorded host or database name a listing shows (the manifest is untrusted: bounded).
_SHOWN_CHARS = 200
# One `key=value` of a libpq keyword/value connection string: the value bare, or single-quoted with \' and \\.
_CONNINFO_PAIR = re.compile(r"\s*([A-Za-z_]+)\s*=\s*(?:'((?:[^'\\]|\\.)*)'|(\S*))")


class ManifestSource(_Strict):
    """Where the set was read from (DSN redacted)."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, populate_by_name=True)
    dsn: str
    db_schema: str = Field(alias="schema")
    server_version: str
    pgvector_version: str
    langchain_layout: str

    @property
    def database(self) -> str | None:
        """The database the set was read from, as people name it: 'host:port/dbname', from what the recorded DSN
        says (never its password); None when it names neither host nor database."""
        params = conninfo_params(self.dsn)
        host, port, dbname = (params.get(k, "")[:_SHOWN_CHARS] for k in ("host", "port", "dbname"))
        host = host or params.get("hostaddr", "")[:_SHOWN_CHARS]
        if not host and not dbname:
            return None
        return f"{host or '(default host)'}{f':{port}' if port else ''}/{dbname or '(default database)'}"


def conninfo_params(dsn: str) -> dict[str, str]:
    """The parameters of a keyword/value connection string (what postgres.connection.redact_dsn records); {} for
    any other form. Parsed here because store/ never imports the database driver."""
    params: dict[str, str] = {}
    position = 0
    while position < len(dsn.rstrip()):
        pair = _CONNINFO_PAIR.match(dsn, position)
        if pair is None:
            return {}
        key, quoted, bare = pair.groups()
        params[key] = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare
        position = pair.end()
    return params


class _SetDocument(_Strict):
    """A set's document as read from the store (a manifest, a sealed set's clear index): untrusted text."""

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, document: Any) -> Any:
        """No text of the document (keys included) holds a NUL: see untrusted_text."""
        path = nul_at(document)
        if path is not None:
            raise ValueError(f"{shown_path(path)} holds a NUL character (\\x00)")
        return document


def _check_set_names(task_id: str, tables: Mapping[str, object]) -> None:
    """A set document names a task (or the global key) and at least one table; ValueError otherwise."""
    if task_id != GLOBAL_TASK_KEY and not TASK_ID_PATTERN.fullmatch(task_id):
        raise ValueError("task_id is not a task id")
    if not tables:
        raise ValueError("tables is empty")


class Manifest(_SetDocument):
    """A set's manifest, validated: see read_manifest."""

    format: ManifestFormat
    kind: ManifestKind = KIND_BACKUP
    task_id: str
    timestamp: Annotated[str, Field(pattern=r"^" + TIMESTAMP_PATTERN.pattern + r"$")]
    started_at: AwareTime | None = None
    finished_at: AwareTime | None = None
    duration_s: Seconds | None = None
    source: ManifestSource | None = None
    embedding_dimensions: dict[DimensionKey, Count] = {}
    collections: ManifestCollections | None = None
    set_format: SetFormat = CSV  # format 4
    encryption: ManifestEncryption | None = None  # format 5
    tables: dict[TableName, ManifestTable]

    @model_validator(mode="after")
    def _consistent(self) -> "Manifest":
        _check_set_names(self.task_id, self.tables)
        if self.collections is not None and self.format in (MANIFEST_FORMAT_1, MANIFEST_FORMAT_2):
            raise ValueError("collections: formats 1 and 2 record none")
        newer = (MANIFEST_FORMAT, MANIFEST_FORMAT_ENCRYPTED)
        if self.set_format != CSV and (self.format not in newer or self.kind != KIND_BACKUP):
            raise ValueError("set_format: only backups of formats 4 and 5 record one")
        encrypted = self.encryption is not None
        if encrypted != (self.format == MANIFEST_FORMAT_ENCRYPTED):
            raise ValueError("encryption: manifests of format 5 record it, and no others do")
        for table, entry in self.tables.items():
            expected = table_file_name(table, self.timestamp, entry.codec, self.set_format, encrypted)
            if entry.file != expected:
                raise ValueError(f"tables.{table}.file is not {expected!r}")
            if self.set_format == BINARY and not entry.columns:
                raise ValueError(f"tables.{table}.columns: a binary set records every column's type")
            stored = (entry.stored_bytes, entry.stored_sha256)
            if self.format == MANIFEST_FORMAT_1 and (entry.codec != NONE or stored != (None, None)):
                raise ValueError(f"tables.{table}: format 1 records no codec")
            if self.format != MANIFEST_FORMAT_1 and None in stored:
                raise ValueError(f"tables.{table}: stored_bytes and stored_sha256 are missing")
            if entry.codec == NONE and not encrypted and None not in stored and stored != (entry.bytes, entry.sha256):
                raise ValueError(f"tables.{table}: an uncompressed file is its CSV, but the sizes or sha256 differ")
            if self.kind == KIND_BACKUP and entry.create_table is None:
                raise ValueError(f"tables.{table}.create_table is missing")
            if self.kind == KIND_ADOPTED and (entry.create_table is not None or entry.indexes):
                raise ValueError(f"tables.{table}: an adopted set carries no DDL")
        return self

    @property
    def adopted(self) -> bool:
        return self.kind == KIND_ADOPTED

    @property
    def binary(self) -> bool:
        """Whether the set's files are binary COPY streams (see set_formats)."""
        return self.set_format == BINARY

    @property
    def encrypted(self) -> bool:
        """Whether the set's files (and this manifest, as stored) are age-encrypted."""
        return self.encryption is not None

    def as_document(self) -> dict[str, Any]:
        """The manifest as the JSON document stored with the set (fields that are not set are left out)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    def as_bytes(self) -> bytes:
        """The document as stored where the whole object is written at once (object storage)."""
        return (json.dumps(self.as_document(), indent=2) + "\n").encode()


class SealedFile(_Strict):
    """The sealed manifest of an encrypted set, as stored: its name, size and sha256."""

    file: str
    stored_bytes: Count
    stored_sha256: Sha256


class IndexTable(_Strict):
    """One table of an encrypted set as its clear index records it: the file as stored, its rows and codec."""

    file: str
    rows: Count
    codec: CodecName = NONE
    stored_bytes: Count
    stored_sha256: Sha256

    @property
    def file_bytes(self) -> int:
        return self.stored_bytes

    @property
    def file_sha256(self) -> str:
        return self.stored_sha256


class SealedIndex(_SetDocument):
    """The clear index of an encrypted set (format 5, kind "sealed", stored as `vector_backup_{ts}.json`): what
    listing, retention, the check of the stored bytes and a copy of the stored bytes read without a key. The set's
    manifest, with everything else, is `manifest.file`, encrypted (see store.sealing)."""

    format: Literal["pgvector-pipeline-backup/5"]
    kind: Literal["sealed"]
    task_id: str
    timestamp: Annotated[str, Field(pattern=r"^" + TIMESTAMP_PATTERN.pattern + r"$")]
    started_at: AwareTime | None = None
    finished_at: AwareTime | None = None
    duration_s: Seconds | None = None
    set_format: SetFormat = CSV
    encryption: ManifestEncryption
    manifest: SealedFile
    tables: dict[TableName, IndexTable]

    @model_validator(mode="after")
    def _consistent(self) -> "SealedIndex":
        _check_set_names(self.task_id, self.tables)
        if self.manifest.file != sealed_manifest_name(self.timestamp):
            raise ValueError(f"manifest.file is not {sealed_manifest_name(self.timestamp)!r}")
        for table, entry in self.tables.items():
            expected = table_file_name(table, self.timestamp, entry.codec, self.set_format, True)
            if entry.file != expected:
                raise ValueError(f"tables.{table}.file is not {expected!r}")
        return self

    @property
    def binary(self) -> bool:
        return self.set_format == BINARY

    def as_bytes(self) -> bytes:
        return (json.dumps(self.model_dump(mode="json", exclude_none=True), indent=2) + "\n").encode()


def index_of(manifest: Manifest, sealed: bytes) -> SealedIndex:
    """The clear index of an encrypted set whose manifest, encrypted, is `sealed`."""
    assert manifest.encryption is not None, "only encrypted sets have an index"
    return SealedIndex(
        format="pgvector-pipeline-backup/5",
        kind="sealed",
        task_id=manifest.task_id,
        timestamp=manifest.timestamp,
        started_at=manifest.started_at,
        finished_at=manifest.finished_at,
        duration_s=manifest.duration_s,
        set_format=manifest.set_format,
        encryption=manifest.encryption,
        manifest=SealedFile(
            file=sealed_manifest_name(manifest.timestamp),
            stored_bytes=len(sealed),
            stored_sha256=hashlib.sha256(sealed).hexdigest(),
        ),
        tables={
            table: IndexTable(
                file=entry.file,
                rows=entry.rows,
                codec=entry.codec,
                stored_bytes=entry.file_bytes,
                stored_sha256=entry.file_sha256,
            )
            for table, entry in manifest.tables.items()
        },
    )


_Document = TypeVar("_Document", Manifest, SealedIndex)
# What a set's `vector_backup_{ts}.json` holds: its manifest, or (an encrypted set) its clear index.
SetDocument = Manifest | SealedIndex


def adopted_read_back(document: SetDocument) -> Manifest:
    """An adopted manifest as read back after it was written (DataError if another document took its place)."""
    if not isinstance(document, Manifest):
        raise DataError(f"Set {document.timestamp} got an encrypted set's index while it was adopted.")
    return document


def read_manifest(directory: Directory, timestamp: str) -> SetDocument:
    """The validated manifest (or clear index) of the set `timestamp` in `directory`, or DataError saying what is wrong
    with it."""
    path = directory.path / manifest_name(timestamp)
    try:
        with directory.open_read(manifest_name(timestamp)) as file:
            data = file.read(MAX_MANIFEST_BYTES + 1)
    except OSError as exc:
        raise DataError(f"Manifest {path} cannot be read ({exc.strerror or exc}). The set may be damaged.") from None
    return parse_manifest(data, str(path), timestamp)


def parse_manifest(data: bytes, where: str, timestamp: str) -> SetDocument:
    """The manifest (or an encrypted set's clear index) of set `timestamp` from the bytes read at `where` (at most
    MAX_MANIFEST_BYTES + 1 of them), validated; DataError saying what is wrong otherwise."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise DataError(
            f"Manifest {where} is larger than {MAX_MANIFEST_BYTES} bytes: it is not a manifest this tool wrote."
        )
    if _kind(data) == KIND_SEALED:
        return _parsed(SealedIndex, data, where, timestamp)
    return _parsed(Manifest, data, where, timestamp)


def parse_full_manifest(data: bytes, where: str, timestamp: str) -> Manifest:
    """A manifest (never a clear index) of set `timestamp` from the bytes at `where`; DataError otherwise."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise DataError(
            f"Manifest {where} is larger than {MAX_MANIFEST_BYTES} bytes: it is not a manifest this tool wrote."
        )
    return _parsed(Manifest, data, where, timestamp)


def _kind(data: bytes) -> object:
    """The `kind` a document says it is (None when it is no JSON object: validation says what is wrong)."""
    try:
        document = json.loads(data)
    except ValueError:
        return None
    return document.get("kind") if isinstance(document, dict) else None


def _parsed(model: type[_Document], data: bytes, where: str, timestamp: str) -> _Document:
    try:
        manifest = model.model_validate_json(data)
    except ValidationError as exc:
        problems = "; ".join(f"{_where(error['loc'])}: {error['msg']}" for error in exc.errors()[:5])
        raise DataError(
            f"Manifest {where} cannot be read as a manifest of formats {' or '.join(get_args(ManifestFormat))} "
            f"({problems}). The set may be damaged or changed: restore another set."
        ) from None
    if manifest.timestamp != timestamp:
        raise DataError(
            f"Manifest {where} describes set {manifest.timestamp}, not {timestamp}. The set may be damaged."
        )
    return manifest


def _where(location: tuple[int | str, ...]) -> str:
    """Where in a manifest a validation error is, without quoting what the file holds: keys are file content,
    so only keys that are plain identifiers are named."""
    parts = [
        str(part) if isinstance(part, int) or COLUMN_NAME_PATTERN.fullmatch(str(part)) else "<key>" for part in location
    ]
    return ".".join(parts) or "document"
