"""What each operation takes, declared once per field: its Python type and default (the dataclass field), what it
means, its command-line option and how argparse reads it, and whether the run config always carries it. From the one
declaration come the Dagster op's config class (run_config.config_class), the command line's options (add_options,
from_args), the run config other programs send (as_config) and the engine's call (the request object itself).

No Dagster or argparse-shaped state here beyond plain functions, and no import of the code location: the client and
the command line use this module without loading Dagster definitions.

A field declares itself with `option(...)` as its dataclass field; a field whose type is itself a request part (a
dataclass whose fields are options, such as RestoreFlags) is spelled flat, its fields beside the others: the run
config and the command line never nest.
"""

import argparse
import dataclasses
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pgvector_pipeline.errors import InvalidParams, named

_SPEC = "pgvector_pipeline.option"
# A request type (RestoreRequest, ...): what build and from_args make.
R = TypeVar("R")


@dataclass(frozen=True)
class Spelling:
    """How one request field is spelled outside Python."""

    # What it means: the run config's description (and the command line's help, unless cli_help says otherwise).
    help: str
    # The command line's option ('--truncate'); None: the field is set only in the run config.
    flag: str | None = None
    # How argparse reads the option besides its flag and help: action, nargs, metavar, type, choices, required.
    cli: Mapping[str, Any] = field(default_factory=dict)
    # The command line's help where it says less than the run config's (the shell's own words).
    cli_help: str | None = None
    # Whether the run config other programs send carries the field at its default too (else only when set).
    always_sent: bool = False


def option(default: Any = None, *, default_factory: Callable[[], Any] | None = None, **spelling: Any) -> Any:
    """A request field: its default and its Spelling."""
    metadata = {_SPEC: Spelling(**spelling)}
    if default_factory is not None:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def switch(flag: str, **spelling: Any) -> Any:
    """A restore switch: off by default, a store_true flag, always in the run config (the Launchpad shows each)."""
    return option(False, flag=flag, cli={"action": "store_true"}, always_sent=True, **spelling)


def part(default_factory: Callable[[], Any]) -> Any:
    """A request field that groups options (a dataclass of them): spelled flat, beside the request's own."""
    return field(default_factory=default_factory, metadata={_SPEC: None})


@dataclass(frozen=True)
class Declared:
    """One spelled field of a request, found through its parts: its name (the run config's key and the argparse
    dest), its Python type, default and spelling, and the part holding it (None: the request itself)."""

    name: str
    type: Any
    default: Any
    spelling: Spelling
    part: str | None = None


def declared(request_type: type) -> Iterator[Declared]:
    """Every spelled field of `request_type`, in declaration order, parts flattened in their place."""
    hints = typing.get_type_hints(request_type)
    for f in dataclasses.fields(request_type):
        if _SPEC not in f.metadata:
            continue
        spelling = f.metadata[_SPEC]
        if spelling is None:  # a part
            for inner in declared(hints[f.name]):
                yield dataclasses.replace(inner, part=f.name)
            continue
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        yield Declared(f.name, hints[f.name], default, spelling)


def build(request_type: type[R], values: Mapping[str, Any]) -> R:
    """A request from flat values by field name (the run config's or argparse's); a name missing, or None, takes its
    default. Lists become tuples and KEY=VALUE pairs mappings where the field's default is one."""
    own: dict[str, Any] = {}
    parts: dict[str, dict[str, Any]] = {}
    for spelled in declared(request_type):
        value = values.get(spelled.name)
        if value is None:
            continue
        value = _python_value(spelled.default, value)
        if spelled.part is None:
            own[spelled.name] = value
        else:
            parts.setdefault(spelled.part, {})[spelled.name] = value
    hints = typing.get_type_hints(request_type)
    own.update({name: hints[name](**given) for name, given in parts.items()})
    return request_type(**own)


def _python_value(default: Any, value: Any) -> Any:
    if isinstance(default, tuple):
        return tuple(value)
    if isinstance(default, Mapping):
        return dict(value)
    return value


def flat(request: Any) -> dict[str, Any]:
    """The request's spelled fields by name, parts flattened."""
    values: dict[str, Any] = {}
    for spelled in declared(type(request)):
        holder = request if spelled.part is None else getattr(request, spelled.part)
        values[spelled.name] = getattr(holder, spelled.name)
    return values


def as_config(request: Any) -> dict[str, Any]:
    """The op config of `request` as other programs send it: the fields always sent, and the others when set (lists
    and mappings as JSON has them)."""
    config: dict[str, Any] = {}
    values = flat(request)
    for spelled in declared(type(request)):
        value = values[spelled.name]
        if spelled.spelling.always_sent or value != spelled.default:
            config[spelled.name] = as_config_value(value)
    return config


def as_config_value(value: Any) -> Any:
    """A field's value as the run config holds it: tuples as lists, mappings as dicts."""
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    return value


def config_type(spelled: Declared) -> Any:
    """The run config's type of a field: tuples as lists, mappings as dicts (what Dagster's config takes)."""
    origin, args = typing.get_origin(spelled.type), typing.get_args(spelled.type)
    if origin is tuple:
        return list[args[0]]  # type: ignore[valid-type]
    if origin in (Mapping, dict):
        return dict[args[0], args[1]]  # type: ignore[valid-type]
    return spelled.type


def add_options(parser: argparse.ArgumentParser, request_type: type) -> None:
    """The command line's options of `request_type`'s fields that have one."""
    for spelled in declared(request_type):
        spelling = spelled.spelling
        if spelling.flag is None:
            continue
        parser.add_argument(
            spelling.flag, dest=spelled.name, help=spelling.cli_help or spelling.help, **dict(spelling.cli)
        )


def from_args(request_type: type[R], args: argparse.Namespace, **given: Any) -> R:
    """The request the command line's arguments make (`given`: fields the command sets itself)."""
    values = {s.name: getattr(args, s.name, None) for s in declared(request_type) if s.spelling.flag}
    return build(request_type, {**values, **given})


def pair(shape: str, example: str) -> Callable[[str], tuple[str, str]]:
    """An argparse type for 'KEY=VALUE' (split at the first '='): both parts must be given."""

    def parse(text: str) -> tuple[str, str]:
        key, sep, value = text.partition("=")
        if not sep or not key or not value:
            raise argparse.ArgumentTypeError(f"{text!r} is not {shape} ({example})")
        return key, value

    return parse


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


def help_of(request_part: type) -> dict[str, tuple[str, str]]:
    """Each field of a request part: its command-line flag and what it does (for tables of them, as the docs')."""
    return {s.name: (s.spelling.flag or "", s.spelling.help) for s in declared(request_part)}


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
