"""What each operation takes, declared once per field (see request_fields: type, default, help, run-config key,
command-line option): from each request come the Dagster op's config class, the command line's options, the run config
other programs send and the engine's call.

No Dagster here, and no import of the code location: the client and the command line use this module without loading
Dagster definitions.
"""

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from pgvector_pipeline.errors import InvalidParams, named
from pgvector_pipeline.request_fields import (
    REQUIRED,
    Flag,
    option,
    pair,
    part,
    switch,
)
from pgvector_pipeline.request_fields import (
    as_config as as_config,
)
from pgvector_pipeline.request_fields import (
    from_args as from_args,
)
from pgvector_pipeline.request_fields import (
    help_of as help_of,
)
from pgvector_pipeline.set_formats import DEFAULT_SET_FORMAT, SET_FORMAT_ENV, SET_FORMATS
from pgvector_pipeline.store.codecs import CODEC_NAMES, COMPRESSION_ENV, DEFAULT_COMPRESSION
from pgvector_pipeline.tables import DEFAULT_TABLES

# --- backup ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TableSelection:
    """One table of a backup's `tables`."""

    name: str = option(REQUIRED, help="The table's name, without its schema.")
    db_schema: str = option(
        "", help="Its schema. Empty: the pgvector resource's db_schema. A set holds one schema's tables."
    )
    where: str = option(
        "",
        always_sent=True,
        help="Back up only the rows this condition on the table's own columns keeps, e.g. "
        "\"cmetadata->>'source' = 'a.pdf'\" (comparisons, LIKE, IN, BETWEEN, IS NULL, AND/OR/NOT, jsonb operators, "
        "casts; no function calls or subqueries). Empty: every row.",
    )

    @classmethod
    def of(cls, qualified_name: str, where: str = "") -> "TableSelection":
        """The table `qualified_name` ('name' or 'schema.name'), with its row filter ('': every row)."""
        schema, _, name = qualified_name.rpartition(".")
        return cls(name, schema, where)


def table_selections(tables: Mapping[str, str]) -> tuple[TableSelection, ...]:
    """{'name' or 'schema.name': row filter or ''} as a backup's tables, in the order named."""
    return tuple(TableSelection.of(name, where) for name, where in tables.items())


def _tables_from_cli(args: argparse.Namespace) -> tuple[TableSelection, ...]:
    """--table NAME … with --where NAME=CONDITION …, in the order the tables are named."""
    named_tables = dict.fromkeys(getattr(args, "tables", None) or [], "")
    for table, condition in getattr(args, "where", None) or []:
        if table not in named_tables:
            raise InvalidParams(f"--where names {table!r}, which no --table names: add --table {table}.")
        named_tables[table] = condition
    return table_selections(named_tables)


_TRUNCATED_BY_DEFAULT = ", ".join(DEFAULT_TABLES.truncated_by_default)


@dataclass(frozen=True)
class BackupRequest:
    """A backup into a new set: the task whose directory gets it, the tables (and their rows) and collections it
    takes, how its files are stored, and whether it truncates after the set is written and verified."""

    task_id: str = option(
        "",
        flag="--task-id",
        always_sent=True,
        help="Task whose {root}/{task_id}/vector_bak/ receives the set (letters, digits, underscores). Leave empty, or "
        "'global', for the global {root}/vector_bak/.",
        cli_help="Task whose {root}/{task_id}/vector_bak/ gets the set; default global.",
    )
    truncate_after_backup: bool = switch(
        "--truncate",
        help=f"After every file and the manifest are written and re-read with matching checksums, truncate "
        f"{_TRUNCATED_BY_DEFAULT} in the same transaction (writers are held off from the snapshot on, so no row is "
        f"lost). Never happens if anything failed.",
        cli_help=f"Truncate {_TRUNCATED_BY_DEFAULT} after the backup.",
    )
    create_task_dir: bool = switch(
        "--create-task-dir",
        help="Create {root}/{task_id}/ when it does not exist. Off: a missing task directory is an error.",
        cli_help="Create {root}/{task_id}/ when missing.",
    )
    compression: str = option(
        "",
        flag="--compression",
        cli={"choices": CODEC_NAMES},
        help=f"How the set's CSVs are stored: {' | '.join(CODEC_NAMES)}. Empty: ${COMPRESSION_ENV}, else "
        f"{DEFAULT_COMPRESSION.codec} (about a third of the CSV's bytes, as fast as plain). 'none' writes plain CSVs "
        f"that the old system and psql \\copy read as they are.",
        cli_help=f"How the CSVs are stored; default: the code location's (${COMPRESSION_ENV}, else "
        f"{DEFAULT_COMPRESSION.codec}). 'none' writes plain CSVs the old system and psql read.",
    )
    compression_level: int | None = option(
        None,
        flag="--compression-level",
        cli={"type": int},
        help="The codec's level (zstd 1-19, gzip 1-9). Empty: the codec's default.",
        cli_help="The codec's level (zstd 1-19, gzip 1-9).",
    )
    format: str = option(
        "",
        flag="--format",
        cli={"choices": SET_FORMATS},
        help=f"How the set's files hold the rows: {' | '.join(SET_FORMATS)}. Empty: ${SET_FORMAT_ENV}, else "
        f"{DEFAULT_SET_FORMAT}. 'binary' writes PostgreSQL's binary COPY streams ({{table}}_{{ts}}.pgcopy): about a "
        f"third of the bytes and a quarter of the server's work of CSV, restorable into columns of the same types (or "
        f"through casts); CSV is what the old system, psql and people read.",
        cli_help=f"How the files hold the rows; default: the code location's (${SET_FORMAT_ENV}, else "
        f"{DEFAULT_SET_FORMAT}). 'binary' writes PostgreSQL's binary COPY streams: about a third of the bytes and of "
        f"the time, restorable into columns of the same types (or through casts).",
    )
    collections: tuple[str, ...] = option(
        (),
        flag="--collections",
        cli={"nargs": "+", "metavar": "NAME"},
        help="Back up only these collections (by name) and their embeddings, from one snapshot. Empty: every "
        "collection. The manifest records which ones, and the embeddings of each.",
        cli_help="Back up only these collections; default: all of them.",
    )
    tables: tuple[TableSelection, ...] = option(
        (),
        flag="--table",
        cli={"action": "append", "metavar": "[SCHEMA.]NAME"},
        more_flags=(
            Flag(
                "--where",
                "where",
                "Back up only the rows of a --table that the condition on its columns keeps (comparisons, LIKE, IN, "
                "BETWEEN, IS NULL, AND/OR/NOT, jsonb operators; no function calls or subqueries).",
                {
                    "action": "append",
                    "type": pair("TABLE=CONDITION", "e.g. \"docs=lang = 'de'\""),
                    "metavar": "TABLE=CONDITION",
                },
            ),
        ),
        from_cli=_tables_from_cli,
        help="The tables to back up instead of LangChain's two: any table of the run's schema (the pgvector "
        "resource's db_schema) with a vector, halfvec or sparsevec column (a PGVectorStore table, LlamaIndex's "
        "data_* tables, your own), and the tables they reference; in one snapshot, restored in foreign-key order. "
        "Empty: langchain_pg_collection and langchain_pg_embedding.",
        cli_help="Back up this table instead of LangChain's two (repeat for more): any table with a vector, halfvec or "
        "sparsevec column, and the tables it references; in --schema unless named with its schema.",
    )
    note: str = option(
        "",
        flag="--note",
        cli={"metavar": "TEXT"},
        help="Why this backup is taken (a ticket, a migration), recorded in the run's log and metadata and in the "
        "location's backup log.",
    )


def backup_request(
    task_id: str | None = None,
    truncate_after_backup: bool = False,
    create_task_dir: bool = False,
    compression: str = "",
    compression_level: int | None = None,
    collections: Sequence[str] = (),
    tables: Mapping[str, str] | None = None,
    set_format: str = "",
) -> BackupRequest:
    """A BackupRequest from the arguments the client and contract.backup_run_config have always taken: `tables` as
    {'name' or 'schema.name': row filter or ''}."""
    return BackupRequest(
        task_id=task_id or "",
        truncate_after_backup=truncate_after_backup,
        create_task_dir=create_task_dir,
        compression=compression,
        compression_level=compression_level,
        format=set_format,
        collections=tuple(collections),
        tables=table_selections(tables or {}),
    )


# --- restore --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RestoreFlags:
    """How a restore loads: the switches of a RestoreRequest, declared once here for the job's config, the client,
    the command line and restore_backup_set."""

    truncate_before_restore: bool = switch(
        "--truncate",
        help="Empty the restored tables first, in the same transaction (both in one TRUNCATE when both are restored).",
    )
    verify_only: bool = switch(
        "--verify-only",
        help="Check everything and load in a transaction that is rolled back: nothing changes.",
    )
    create_missing: bool = switch(
        "--create-missing",
        help="In an empty database, create the vector extension and the tables and indexes from the set's manifest.",
    )
    allow_legacy: bool = switch(
        "--allow-legacy",
        help="Restore a set that has no manifest (made by the old system and not yet adopted by "
        "backup_discovery_sensor). Nothing can verify such a set: a changed or cut file loads as it is.",
    )
    fill_extra_columns: bool = switch(
        "--fill-extra-columns",
        help="Load into target tables that have columns the set lacks (e.g. a column added since the backup), when "
        "each of them is nullable or has a default: they get NULL or the default.",
    )
    replace_collections: bool = switch(
        "--replace-collections",
        help="With collections named: delete those collections and their embeddings first, in the same transaction, "
        "so the set's rows replace them; every other collection stays as it is.",
    )
    in_place: bool = switch(
        "--in-place",
        help="With truncate_before_restore: empty and load the live tables under an exclusive lock, so that every "
        "search and write waits for the whole restore. Without it, a truncating restore loads new tables beside the "
        "live ones, builds their indexes and swaps them in (a lock wait of at most 1 s per attempt): searches go on, "
        "writes wait and land in the restored tables. In place is faster on a busy 2-core server and is what a "
        "restore does anyway when the tables cannot be swapped (the run's log says why).",
    )

    def __post_init__(self) -> None:
        # Refused where the flags are made (the command line, the client, the job's config), before any launch.
        if self.in_place and not self.truncate_before_restore:
            raise InvalidParams(
                named("in_place"),
                " chooses how a truncating restore loads: it goes with ",
                named("truncate_before_restore"),
                ". A restore that appends always loads into the live tables; leave ",
                named("in_place"),
                " off.",
            )


# A restore that only appends, checks everything and commits: every switch off.
PLAIN_RESTORE = RestoreFlags()

# Where a migrating restore loads a set (see pgvector_pipeline.operations.migration): the same layout (no migration), the
# langchain_postgres PGVector tables (from a langchain_community set), or one PGVectorStore table.
SAME_LAYOUT = ""
MIGRATE_TO_LANGCHAIN_POSTGRES = "langchain_postgres"
MIGRATE_TO_PGVECTOR_STORE = "pgvector_store"
MIGRATION_TARGETS = (SAME_LAYOUT, MIGRATE_TO_LANGCHAIN_POSTGRES, MIGRATE_TO_PGVECTOR_STORE)


@dataclass(frozen=True)
class Migration:
    """Restore into a newer LangChain layout: the migration settings of a RestoreRequest, declared once here."""

    migrate_to: str = option(
        SAME_LAYOUT,
        flag="--migrate-to",
        cli={"choices": [t for t in MIGRATION_TARGETS if t]},
        help=f"Restore into a newer LangChain layout, in one transaction: '{MIGRATE_TO_LANGCHAIN_POSTGRES}' loads a "
        f"langchain_community set into langchain_postgres PGVector tables (id = custom_id where present and unique "
        f"in the set, else the old uuid); '{MIGRATE_TO_PGVECTOR_STORE}' loads the set's collections (all, or those "
        f"named) into one PGVectorStore table (store_table), created when missing. Empty: the set's own layout.",
    )
    store_table: str = option(
        "",
        flag="--store-table",
        cli={"metavar": "TABLE"},
        help=f"With migrate_to '{MIGRATE_TO_PGVECTOR_STORE}': the PGVectorStore table, in the target schema.",
    )
    metadata_columns: tuple[str, ...] = option(
        (),
        flag="--metadata-column",
        cli={"action": "append", "metavar": "NAME:TYPE"},
        help=f"With migrate_to '{MIGRATE_TO_PGVECTOR_STORE}': metadata keys that get their own typed column, as "
        f"'name:type' (e.g. 'page:integer', 'source:text'); the other keys stay in langchain_metadata.",
    )

    def as_config(self) -> dict[str, Any]:
        """The run config fields of the settings given (none for a restore that does not migrate)."""
        return as_config(self)


NO_MIGRATION = Migration()


@dataclass(frozen=True)
class RestoreRequest:
    """A restore: which set, which tables and collections, and how (RestoreFlags, Migration)."""

    task_id: str = option(
        "",
        flag="--task-id",
        always_sent=True,
        help="Set to restore, for sets Dagster has not seen: its task id ('global' for {root}/vector_bak/). "
        "Leave empty when launching for a partition.",
        cli_help="The set's task; default global.",
    )
    timestamp: str = option(
        "",
        flag="--timestamp",
        cli={"required": True},
        always_sent=True,
        help="Set to restore: its timestamp YYYYMMDD_HHMMSS, or 'latest' for the newest complete set of its task. "
        "Empty: use the partition.",
        cli_help="The set's timestamp YYYYMMDD_HHMMSS, or 'latest' for the task's newest complete set.",
    )
    backup_path: str = option(
        "",
        help="Instead of task_id: the set's directory relative to the backup root (e.g. 'task_7/vector_bak'); "
        "must stay inside the root.",
    )
    tables: tuple[str, ...] = option(
        (),
        flag="--tables",
        cli={"nargs": "+"},
        help="Tables to restore, e.g. [langchain_pg_embedding]. Empty: every table the set holds.",
        cli_help="Tables to restore; default: every table the set holds.",
    )
    flags: RestoreFlags = part(RestoreFlags)
    collections: tuple[str, ...] = option(
        (),
        flag="--collections",
        cli={"nargs": "+", "metavar": "NAME"},
        help="Restore only these collections (by name) and their embeddings; empty: every row of the set. "
        "With replace_collections, they replace the target's collections of the same names.",
        cli_help="Restore only these collections; default: all the set holds.",
    )
    rename: Mapping[str, str] = option(
        default_factory=dict,
        flag="--rename",
        cli={
            "nargs": "+",
            "metavar": "OLD=NEW",
            "type": pair("OLD=NEW", "a collection's name in the set, = its new name"),
        },
        help="Restore collections under new names: {name in the set: name in the target}. A renamed "
        "collection gets a new key and its embeddings follow (their ids are kept). Renamed collections are "
        "restored even when collections leaves them out.",
        cli_help="Restore collections under new names (a new key; embeddings follow).",
    )
    migration: Migration = part(Migration)
    note: str = option(
        "",
        flag="--note",
        cli={"metavar": "TEXT"},
        help="Why this restore is run (a ticket, an incident), recorded in the run's log and metadata.",
    )


def restore_request(
    task_id: str | None = None,
    timestamp: str = "",
    *,
    tables: Sequence[str] | None = None,
    flags: RestoreFlags = PLAIN_RESTORE,
    collections: Sequence[str] = (),
    rename: Mapping[str, str] | None = None,
    migration: Migration = NO_MIGRATION,
) -> RestoreRequest:
    """A RestoreRequest from the keyword arguments the client and contract.restore_run_config have always taken."""
    return RestoreRequest(
        task_id=task_id or "",
        timestamp=timestamp,
        tables=tuple(tables or ()),
        flags=flags,
        collections=tuple(collections),
        rename=dict(rename or {}),
        migration=migration,
    )


# --- truncate -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TruncateRequest:
    """A truncate without a backup: which tables, emptied in one statement."""

    tables: tuple[str, ...] = option(
        tuple(DEFAULT_TABLES.truncated_by_default),
        flag="--tables",
        cli={"nargs": "+", "choices": DEFAULT_TABLES.names},
        always_sent=True,  # what is truncated is said in the run, not left to the code server's default
        help=f"Tables to truncate (one statement): {_TRUNCATED_BY_DEFAULT} by default, or any of "
        f"{', '.join(DEFAULT_TABLES.names)} (a table with the tables that reference it).",
        cli_help=f"Default: {_TRUNCATED_BY_DEFAULT}.",
    )


# --- retention ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetentionRequest:
    """Which sets retention keeps (it deletes the others), and whether it deletes them or only says which."""

    keep_newest: int | None = option(
        None,
        flag="--keep-newest",
        cli={"type": int},
        help="Keep the newest N sets of each location (global, and each task).",
        cli_help="Keep the newest N sets of each location.",
    )
    max_age_days: float | None = option(
        None, flag="--max-age-days", cli={"type": float}, help="Keep sets younger than this many days."
    )
    dry_run: bool = option(
        True,
        flag="--delete",
        cli={"action": "store_false"},
        always_sent=True,
        help="Only report what would be deleted (the default: set false to delete).",
        cli_help="Delete (default: only report what would go).",
    )


# --- drill and verify -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DrillRequest:
    """A restore drill: which set is restored into a scratch schema, compared by content and dropped; `verify` is a
    drill that compares the live tables with the set too."""

    task_id: str = option(
        "",
        flag="--task-id",
        help="The set's task; empty or 'global': {root}/vector_bak/.",
        cli_help="The set's task; default global.",
    )
    timestamp: str = option(
        "",
        flag="--timestamp",
        help="The set (YYYYMMDD_HHMMSS, or 'latest': the newest complete one with a manifest); empty: the newest "
        "complete one.",
        cli_help="The set's timestamp, or 'latest'; default: the location's newest complete set.",
    )
    compare_live: bool = option(
        False,
        always_sent=True,
        help="Also compare the live tables with the set, row by row (what `verify` does).",
    )


# --- copy -----------------------------------------------------------------------------------------------------------

# Which way a copy goes: from the backup store to the other store, or back.
COPY_TO_OTHER: Final = "to_other"
COPY_FROM_OTHER: Final = "from_other"
CopyDirection = Literal["to_other", "from_other"]
# The other store of a copy, as the code server (and --direct) read it from the environment.
OTHER_ROOT_ENV = "PGVECTOR_OTHER_BACKUP_ROOT"


@dataclass(frozen=True, kw_only=True)
class CopyRequest:
    """A copy of a set between the backup store and the other store (local disk and S3, either way), every checksum
    verified."""

    task_id: str = option(
        "",
        flag="--task-id",
        always_sent=True,
        help="The set's task id; empty for the global sets ({root}/vector_bak/).",
        cli_help="The set's task; default global.",
    )
    timestamp: str = option(
        REQUIRED,
        flag="--timestamp",
        cli={"required": True},
        help="The set's timestamp YYYYMMDD_HHMMSS, or 'latest' for the newest complete set of its task in the store it "
        "is copied from.",
        cli_help="The set's timestamp YYYYMMDD_HHMMSS, or 'latest' for the task's newest complete set.",
    )
    direction: CopyDirection = option(
        COPY_TO_OTHER,
        flag="--back",
        cli={"action": "store_const", "const": COPY_FROM_OTHER},
        always_sent=True,
        help=f"'{COPY_TO_OTHER}': from the backup store (PGVECTOR_BACKUP_ROOT) to the other store ({OTHER_ROOT_ENV}), "
        f"e.g. off this machine to S3; '{COPY_FROM_OTHER}': back, e.g. to restore locally.",
        cli_help="Copy from the other store into the backup store instead (to restore it).",
    )
    other_root: str = option(
        "",
        flag="--other-root",
        cli={"metavar": "ROOT"},
        in_config=False,  # through Dagster, the code server copies to or from its own other store
        help=f"With --direct: the other store, a directory or s3://bucket/prefix (default ${OTHER_ROOT_ENV}); the set "
        f"goes there from --root, or with --back comes from there.",
    )


# --- list -----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ListRequest:
    """Which backup sets a listing shows, newest first (a listing launches no job: the client reads the inventory,
    --direct the store). How they are shown (a table, or JSON lines) is the command line's business, not the
    request's."""

    global_only: bool = option(
        False, flag="--global-only", cli={"action": "store_true"}, help="Only {root}/vector_bak/."
    )
    task_id: str = option("", flag="--task-id", help="Only this task's sets.")
    refresh: bool = option(
        False,
        flag="--refresh",
        cli={"action": "store_true"},
        help="Re-scan the backup root first (the inventory; --direct always reads the store as it is).",
        cli_help="Re-scan the backup root first.",
    )


# Any request that launches a job (contract.REQUEST_JOBS).
Request = BackupRequest | RestoreRequest | TruncateRequest | RetentionRequest | DrillRequest | CopyRequest
