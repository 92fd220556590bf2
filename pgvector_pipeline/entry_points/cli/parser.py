"""The command line's parser: each command and its options (a command's request options come from its request's
declaration, run_requests), and how a command's messages name request fields (field_spelling). What each command
does is commands'; what it prints, render's."""

import argparse
import os

from pgvector_pipeline.contract import DEFAULT_DSN_ENV
from pgvector_pipeline.entry_points.cli.exit_codes import EXIT_CODES
from pgvector_pipeline.errors import Field, Form, Spelling, config_key
from pgvector_pipeline.request_fields import add_options
from pgvector_pipeline.run_requests import (
    BackupRequest,
    CopyRequest,
    DrillRequest,
    ListRequest,
    RestoreRequest,
    RetentionRequest,
    TruncateRequest,
)
from pgvector_pipeline.store.roots import BACKUP_ROOT_ENV
from pgvector_pipeline.tables import DEFAULT_TABLES

DESCRIPTION = """pgvector-pipeline: back up, restore, truncate, list and follow runs from a shell or cron, over GraphQL.

Prints one JSON object per result on stdout (errors in plain words on stderr, one line each, never a traceback;
with --direct or list --json also as a JSON object on stdout) and exits with a code a script can test: see
EXIT_CODES.
"""


HOST_ENV = "DAGSTER_WEBSERVER_HOST"


PORT_ENV = "DAGSTER_WEBSERVER_PORT"


def field_spelling(commands: dict[str, argparse.ArgumentParser], command: str) -> Spelling:
    """How `command`'s messages name request fields (errors.Field): as the option that sets each, `command`'s own
    first, then another command's (`status` reports any run); a field no option sets keeps its run-config name."""
    options: dict[str, argparse.Action] = {}
    for parser in [commands[command], *commands.values()]:
        # argparse keeps a parser's options in _actions: the one list of them it has.
        for action in parser._actions:
            if action.option_strings and action.dest != "help":
                options.setdefault(action.dest, action)

    def spell(field: Field) -> str:
        action = options.get(field.name)
        if action is None:
            return config_key(field)
        flag, takes_value = max(action.option_strings, key=len), action.nargs != 0
        if field.form == Form.NAME:
            return flag
        if field.form == Form.OPTION:
            return f"{flag} {action.metavar}" if takes_value and isinstance(action.metavar, str) else flag
        option = f"{flag} {field.value}" if takes_value else flag
        return f"pass {option}" if field.form == Form.ADVICE else option

    return spell


def _database_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dsn-env", help="Environment variable (of the code server) holding the DSN; default PGVECTOR_DSN."
    )
    parser.add_argument(
        "--schema", dest="db_schema", metavar="SCHEMA", help="Schema of the LangChain tables; default public."
    )


def _wait_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--wait", action="store_true", help="Wait for the run to end; exit 1 if it fails.")
    parser.add_argument("--timeout", type=float, default=3600, help="Seconds --wait waits (default 3600).")


def _direct_options(parser: argparse.ArgumentParser, default: object) -> None:
    """--direct and --root, before the command (`default` None) and again after it (`default` SUPPRESS: given there,
    they win; not given, the ones before the command stay)."""
    parser.add_argument(
        "--direct",
        action="store_true",
        default=default if default is not None else False,
        help="Run backup, restore, verify, copy, list or check in this process, without the Dagster webserver or "
        f"daemon (disaster recovery): the DSN from --dsn-env (default ${DEFAULT_DSN_ENV}), the root from --root (or "
        f"${BACKUP_ROOT_ENV}).",
    )
    parser.add_argument(
        "--root",
        default=default,
        help=f"With --direct: the backup root, a directory or s3://bucket/prefix (${BACKUP_ROOT_ENV}).",
    )


def _version() -> str:
    """This package's version as installed, and Dagster's, for bug reports."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"{version('pgvector-pipeline')} (dagster {version('dagster')})"
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="pgvector-pipeline",
        description=DESCRIPTION,
        epilog="exit codes: " + "; ".join(f"{code} {meaning}" for code, meaning in EXIT_CODES.items()),
    )
    parser.add_argument("--version", action="version", version=f"pgvector-pipeline {_version()}")
    parser.add_argument("--host", default=os.environ.get(HOST_ENV, "127.0.0.1"), help=f"Webserver host (${HOST_ENV}).")
    parser.add_argument("--port", type=int, default=int(os.environ.get(PORT_ENV, "3000")), help=f"Port (${PORT_ENV}).")
    _direct_options(parser, None)
    commands = parser.add_subparsers(dest="command", required=True)

    backup = commands.add_parser("backup", help="Back up the tables into a new set.")
    add_options(backup, BackupRequest)
    _database_options(backup)
    _wait_options(backup)

    restore = commands.add_parser("restore", help="Restore a set, all or nothing.")
    add_options(restore, RestoreRequest)
    _database_options(restore)
    _wait_options(restore)

    default_truncated = ", ".join(DEFAULT_TABLES.truncated_by_default)
    truncate = commands.add_parser("truncate", help=f"Truncate {default_truncated} (or the tables named).")
    add_options(truncate, TruncateRequest)
    _database_options(truncate)
    _wait_options(truncate)

    retention = commands.add_parser(
        "retention",
        help="Delete old sets by policy (a dry run without --delete); always waits, printing each set it would "
        "delete (or deleted) on stderr.",
    )
    add_options(retention, RetentionRequest)
    _wait_options(retention)

    verify = commands.add_parser(
        "verify",
        help="Restore a set into a scratch schema of the database, check it restores as recorded, and compare the live "
        "tables with it row by row (a digest of every row); the scratch schema is dropped. Exit 1 if they differ.",
    )
    add_options(verify, DrillRequest)
    _database_options(verify)
    _wait_options(verify)

    copy = commands.add_parser(
        "copy",
        help="Copy a set to the other store (PGVECTOR_OTHER_BACKUP_ROOT of the code server, e.g. S3; with --direct, "
        "--other-root), every checksum verified; refused before anything starts when there is no other store.",
    )
    add_options(copy, CopyRequest)
    _wait_options(copy)

    listing = commands.add_parser("list", help="Backup sets, newest first, as a table (--json: one object per line).")
    listing.add_argument("--json", action="store_true", help="One JSON object per set and line, for scripts.")
    add_options(listing, ListRequest)
    checking = commands.add_parser(
        "check",
        help="Check that the deployment works, where the code server runs (vector_check_job; --direct: in this "
        "process): the database and pgvector, the privileges of each operation, the store (a claim made and removed), "
        "free space, the newest global backup's age, which schedules and sensors run. One line per check on stderr, "
        "the report as JSON; exit 1 naming each problem.",
    )
    checking.add_argument(
        "--dsn-env", default=DEFAULT_DSN_ENV, help=f"Variable holding the DSN (default {DEFAULT_DSN_ENV})."
    )
    checking.add_argument(
        "--schema", dest="db_schema", metavar="SCHEMA", help="Schema of the LangChain tables; default public."
    )
    checking.add_argument(
        "--timeout", type=float, default=600, help="Seconds to wait for the check's run to end (default 600)."
    )

    status = commands.add_parser("status", help="A run's status (and error, once it failed).")
    status.add_argument("run_id")
    _wait_options(status)

    schedules = commands.add_parser(
        "schedules",
        help="The code location's schedules and sensors, as the webserver knows them: state (RUNNING or STOPPED), "
        "next tick, last tick, cron or interval; a table (--json: one object per line).",
    )
    schedules.add_argument("--json", action="store_true", help="One JSON object per schedule or sensor and line.")

    automation_name = "A schedule or sensor of the code location (`schedules` lists them)."
    start = commands.add_parser("start", help="Switch a schedule or sensor on.")
    start.add_argument("name", metavar="NAME", help=automation_name)

    stop = commands.add_parser("stop", help="Switch a schedule or sensor off.")
    stop.add_argument("name", metavar="NAME", help=automation_name)
    for name, command in commands.choices.items():
        # `list --direct --root R` reads as well as `--direct --root R list`.
        _direct_options(command, argparse.SUPPRESS)
        command.set_defaults(spelling=field_spelling(commands.choices, name))
    return parser
