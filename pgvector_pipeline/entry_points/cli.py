"""pgvector-pipeline: back up, restore, truncate, list and follow runs from a shell or cron, over GraphQL.

Prints one JSON object per result on stdout (errors in plain words on stderr, one line each, never a traceback;
with --direct or list --json also as a JSON object on stdout) and exits with a code a script can test: see
EXIT_CODES.
"""

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from pgvector_pipeline.contract import COPY_FROM_OTHER, DEFAULT_DSN_ENV
from pgvector_pipeline.entry_points import direct
from pgvector_pipeline.entry_points.client import (
    UNREACHABLE,
    Automation,
    LaunchedRun,
    PipelineClientError,
    RunInfo,
    VectorBackupClient,
)
from pgvector_pipeline.errors import ErrorType, Field, Form, PipelineError, Spelling, config_key, said
from pgvector_pipeline.operations.backup import Log
from pgvector_pipeline.operations.check import CheckReport, automations
from pgvector_pipeline.operations.named_set import check_named_set
from pgvector_pipeline.request_fields import add_options, from_args
from pgvector_pipeline.run_requests import (
    BackupRequest,
    CopyRequest,
    DrillRequest,
    ListRequest,
    RestoreRequest,
    RetentionRequest,
    TruncateRequest,
)
from pgvector_pipeline.store.layout import TIMESTAMP_FORMAT
from pgvector_pipeline.store.naming import LATEST, latest_note
from pgvector_pipeline.store.roots import BACKUP_ROOT_ENV
from pgvector_pipeline.tables import DEFAULT_TABLES
from pgvector_pipeline.untrusted_text import refuse_nul

HOST_ENV = "DAGSTER_WEBSERVER_HOST"
PORT_ENV = "DAGSTER_WEBSERVER_PORT"

EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_INVALID = 2  # bad arguments, or Dagster refused the launch (config validation)
EXIT_UNREACHABLE = 3
EXIT_TIMEOUT = 4
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a command stopped by Ctrl-C
EXIT_CODES = {
    EXIT_OK: "done (with --wait: the run succeeded)",
    EXIT_RUN_FAILED: "the run failed or was canceled, verify found the live tables differ from the set, or this "
    "command failed unexpectedly (INTERNAL_ERROR); the error_type and message are printed",
    EXIT_INVALID: "bad arguments, or Dagster refused the launch (the reasons are printed)",
    EXIT_UNREACHABLE: "the Dagster webserver could not be reached",
    EXIT_TIMEOUT: "--wait ran out of time (the run goes on)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C; a run already launched goes on)",
}


# The error_type of a failure of this command itself (a bug, or an answer from the webserver it cannot read).
INTERNAL_ERROR = "INTERNAL_ERROR"


def _print(data: object) -> None:
    print(json.dumps(data, default=str))


def _failed(error_type: str, message: str, can_retry: bool | None, as_json: bool, in_shell: str | None = None) -> None:
    """A failure said once: one line on stderr (cron mails it) and, where the output is JSON, the same failure shaped
    as a failed run's on stdout. `in_shell`: the message with the fields it points to named as flags (see
    field_spelling); the JSON keeps the message as the run config names them."""
    if as_json:
        _print({"status": "FAILURE", "error_type": error_type, "can_retry": can_retry, "error_message": message})
    print(f"error: {error_type}: {shell_words(in_shell or message)}", file=sys.stderr)


def _unexpected(error: Exception) -> str:
    """What an exception no layer expected says, for the one line that replaces a traceback. A database driver's
    message may quote the DSN (psycopg2's parse errors quote the offending token, which can be the password): not
    shown."""
    said = "" if type(error).__module__.startswith("psycopg2") else str(error)
    return (
        f"{type(error).__name__}{f': {said}' if said else ''} (a fault of pgvector-pipeline, or an answer from the "
        f"webserver it cannot read: please report it with the command that caused it)"
    )


def _finish(client: VectorBackupClient, launched: LaunchedRun, args: argparse.Namespace) -> int:
    if not args.wait:
        named = {"backup_set": launched.backup_set} if launched.backup_set else {}
        _print({"run_id": launched.run_id, "job_name": launched.job_name, "status": "LAUNCHED", **named})
        return EXIT_OK
    return _report(_waited_for(client, launched.run_id, args.timeout), args.spelling)


# What Ctrl-C leaves of a --direct command's own work (each rolls back or removes what it had not finished).
_UNDONE = {
    "backup": "the set being written was removed and nothing was truncated",
    "restore": "its transaction was rolled back: the tables are as they were",
    "verify": "its transaction was rolled back and the scratch schema dropped",
    "copy": "the copy being written was removed; the source is as it was",
    "list": "nothing was changed",
}


class RunInterrupted(Exception):
    """Ctrl-C while --wait followed run `run_id`, which goes on in Dagster."""

    def __init__(self, run_id: str, runs_url: str):
        super().__init__(run_id)
        self.run_id, self.runs_url = run_id, runs_url


def _waited_for(client: VectorBackupClient, run_id: str, timeout_s: float, follow: bool = True) -> RunInfo:
    """The run's end as wait_for_run reports it (with `follow`, its progress lines on stderr as they come);
    RunInterrupted naming the run on Ctrl-C."""
    try:
        return client.wait_for_run(run_id, timeout_s=timeout_s, on_line=_progress if follow else None)
    except KeyboardInterrupt:
        raise RunInterrupted(run_id, client.url.removesuffix("/graphql") + f"/runs/{run_id}") from None


def _progress(line: str) -> None:
    """A progress line of the run, on stderr as it arrives (stdout keeps the JSON result alone)."""
    print(line, file=sys.stderr, flush=True)


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


# Dagster names messages send a user to, and the command that does the same from the shell; and, until the store's
# messages point to their fields (errors.Field), the one setting they name in the run config's words.
SHELL_WORDS = {
    "(vector_backup_inventory)": "(pgvector-pipeline list)",
    "set create_task_dir: true": "pass --create-task-dir",
}


def shell_words(message: str) -> str:
    """A message with the Dagster names in SHELL_WORDS replaced by what does the same from the shell."""
    for dagster_words, words in SHELL_WORDS.items():
        message = message.replace(dagster_words, words)
    return message


def _report(info: RunInfo, spelling: Spelling) -> int:
    """The run as JSON on stdout; a failed or canceled run's error also on stderr (cron mails stderr), with the fields
    it points to named as `spelling` names them."""
    result = info.as_dict()
    _print(result)
    if info.status in ("FAILURE", "CANCELED"):
        message = shell_words(said(info.error_parts, spelling) if info.error_parts else info.error_message or "")
        print(
            f"error: run {info.run_id} {info.status}: {info.error_type or 'ERROR'}: {message}".rstrip(": "),
            file=sys.stderr,
        )
        return EXIT_RUN_FAILED
    return _verdict(result)


def _verdict(result: Mapping[str, Any]) -> int:
    """The exit code of a command that ran to its end, from its result, whichever path ran it (GraphQL or --direct):
    a verify that found the live tables differ from the set fails."""
    if result.get("live_equal") is False:
        print(f"error: the live tables differ from set {result['backup_set']}.", file=sys.stderr)
        return EXIT_RUN_FAILED
    if result.get("problems"):  # check
        print(f"error: {len(result['problems'])} problem(s): {', '.join(result['problems'])}.", file=sys.stderr)
        return EXIT_RUN_FAILED
    if result.get("status") == "FAILURE":  # a --direct backup whose set failed its checks
        print(f"error: {result.get('error_type')}: {result.get('error_message')}", file=sys.stderr)
        return EXIT_RUN_FAILED
    return EXIT_OK


def _backup(client: VectorBackupClient, args: argparse.Namespace) -> int:
    request = from_args(BackupRequest, args)
    return _finish(client, client.launch_request(request, dsn_env=args.dsn_env, db_schema=args.db_schema), args)


def _restore_request(args: argparse.Namespace) -> RestoreRequest:
    return from_args(RestoreRequest, args, task_id=args.task_id or "")


def _restore(client: VectorBackupClient, args: argparse.Namespace) -> int:
    launched = client.launch_request(_restore_request(args), dsn_env=args.dsn_env, db_schema=args.db_schema)
    return _finish(client, launched, args)


# --direct: the same commands in this process, without Dagster (see pgvector_pipeline.entry_points.direct).


def _backup_direct(args: argparse.Namespace, log: Log) -> dict[str, Any]:
    engine = direct.target(args.root, args.dsn_env, args.db_schema)
    return direct.back_up(engine, from_args(BackupRequest, args), log)


def _restore_direct(args: argparse.Namespace, log: Log) -> dict[str, Any]:
    engine = direct.target(args.root, args.dsn_env, args.db_schema)
    # A mistyped task, timestamp, table or collection is refused here, naming the nearest ones (exit 2).
    request = _restore_request(args)
    named = check_named_set(
        engine.backup_store(),
        args.task_id,
        args.timestamp,
        request.tables or None,
        tuple(dict.fromkeys([*request.collections, *request.rename])),
    )
    if args.timestamp == LATEST:
        log.info(latest_note(named))
    return direct.restore(engine, request, log)


def _check_direct(args: argparse.Namespace, log: Log) -> dict[str, Any]:
    """Whether this deployment works (pgvector_pipeline.operations.check): one line per check on stderr, the report as
    JSON. Which schedules and sensors run is not known here: only Dagster knows."""
    engine = direct.target(args.root, args.dsn_env, args.db_schema)
    report = engine.check(extra=[automations])
    print("\n".join(check.line for check in report.checks), file=sys.stderr)
    return {"status": "SUCCESS" if report.ok else "FAILURE", **report.as_dict()}


def _check(client: VectorBackupClient, args: argparse.Namespace) -> int:
    """The checks run by the code server (vector_check_job), followed to their end, and the schedules' and sensors'
    state from the webserver: as --direct prints them (one line per check on stderr, the report as JSON), exit 1
    naming each problem."""
    launched = client.launch_check(dsn_env=args.dsn_env, db_schema=args.db_schema)
    # Not followed: its lines are the report's, printed once it is whole (with the client's automations check).
    info = _waited_for(client, launched.run_id, args.timeout, follow=False)
    report = client.check_report(info)
    if report is None:  # the run ended without checking (refused at start, canceled): its error
        return _report(info, args.spelling)
    print("\n".join(check.line for check in CheckReport.from_dict(report).checks), file=sys.stderr)
    _print(report)
    return _verdict(report)


def _list_direct(args: argparse.Namespace, log: Log) -> list[dict[str, object]]:
    return direct.list_sets(direct.target(args.root, None, None, need_dsn=False), from_args(ListRequest, args))


def _run_direct(args: argparse.Namespace) -> int:
    """One command in this process: its result as JSON on stdout (a failure: see main); exit codes as for runs."""
    if args.direct_run is None:
        print(
            f"error: {args.command} is about Dagster runs and automations; --direct runs backup, restore, verify, "
            "copy, list and check.",
            file=sys.stderr,
        )
        return EXIT_INVALID
    with direct.progress_log() as log:
        done = args.direct_run(args, log)
    if isinstance(done, list):  # list
        _print_sets(done, args.json)
        return EXIT_OK
    _print(done)
    return _verdict(done)


def _truncate(client: VectorBackupClient, args: argparse.Namespace) -> int:
    request = from_args(TruncateRequest, args)
    return _finish(client, client.launch_request(request, dsn_env=args.dsn_env, db_schema=args.db_schema), args)


def _retention(client: VectorBackupClient, args: argparse.Namespace) -> int:
    # Always followed to its end: what it would delete (or deleted) is the point of running it.
    args.wait = True
    return _finish(client, client.launch_request(from_args(RetentionRequest, args)), args)


def _verify(client: VectorBackupClient, args: argparse.Namespace) -> int:
    # Always followed: the per-table comparison is in its progress lines.
    args.wait = True
    request = from_args(DrillRequest, args, compare_live=True)
    return _finish(client, client.launch_request(request, dsn_env=args.dsn_env, db_schema=args.db_schema), args)


def _verify_direct(args: argparse.Namespace, log: Log) -> dict[str, Any]:
    engine = direct.target(args.root, args.dsn_env, args.db_schema)
    request = from_args(DrillRequest, args, compare_live=True)
    if request.timestamp:  # a mistyped name is refused with the nearest ones (exit 2); empty: the newest complete set
        named = check_named_set(engine.backup_store(), request.task_id, request.timestamp)
        if request.timestamp == LATEST:
            log.info(latest_note(named))
    return direct.verify(engine, request, log)


def _copy(client: VectorBackupClient, args: argparse.Namespace) -> int:
    return _finish(client, client.launch_request(from_args(CopyRequest, args)), args)


def _copy_direct(args: argparse.Namespace, log: Log) -> dict[str, Any]:
    """A copy in this process: from --root to --other-root (--back: the other way), the set checked first."""
    request = from_args(CopyRequest, args)
    stores = (
        direct.target(args.root, None, None, need_dsn=False).backup_store(),
        direct.other_store(request.other_root),
    )
    source, target = stores[::-1] if request.direction == COPY_FROM_OTHER else stores
    backup_set = check_named_set(source, request.task_id, request.timestamp)
    if request.timestamp == LATEST:
        log.info(latest_note(backup_set))
    return direct.copy(backup_set, target, log)


def _list(client: VectorBackupClient, args: argparse.Namespace) -> int:
    _print_sets(client.list_sets(from_args(ListRequest, args)), args.json)
    return EXIT_OK


def _print_sets(sets: Sequence[Mapping[str, Any]], as_json: bool) -> None:
    if as_json:
        for backup_set in sets:
            _print(backup_set)
    elif not sets:
        print("No backup sets.")
    else:
        store = sets[0].get("store")
        print("\n".join(([f"Backup store: {store}"] if store else []) + set_table(sets, datetime.now().astimezone())))


SET_COLUMNS = ("TASK", "TAKEN", "AGE", "STATUS", "SIZE", "TOOK", "STORED AS", "SOURCE", "CONTENTS")


def set_table(sets: Sequence[Mapping[str, Any]], now: datetime) -> list[str]:
    """The sets as an aligned table for people, newest first: when each was taken (with its UTC offset) and its age,
    how long its backup took, the database it was read from."""
    now = now.astimezone()
    rows = [
        (
            s["task_id"],
            _when(s),
            _age(now - taken) if (taken := _taken(s)) else "",
            s["status"],
            s.get("size") or "",
            _took(s.get("duration_s")),
            " ".join(part for part in (s.get("format"), s.get("compression")) if part),
            _source(s),
            "; ".join(part for part in (s.get("tables"), s.get("collections")) if part and not part.startswith("all")),
        )
        for s in sets
    ]
    widths = [max(len(str(row[i])) for row in [SET_COLUMNS, *rows]) for i in range(len(SET_COLUMNS) - 1)]
    return [
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + str(row[-1])
        for row in [SET_COLUMNS, *rows]
    ]


def _taken(record: Mapping[str, Any]) -> datetime | None:
    """When a set was taken, as an aware time: its record's taken_at (with the UTC offset the set recorded), else its
    name read as this machine's local time (a code server of an older version); None for a name that is no time."""
    try:
        if record.get("taken_at"):
            return datetime.fromisoformat(record["taken_at"])
        return datetime.strptime(record["timestamp"], TIMESTAMP_FORMAT).astimezone()
    except (TypeError, ValueError):
        return None


def _when(record: Mapping[str, Any]) -> str:
    taken = _taken(record)
    if taken is None:
        return cast(str, record["timestamp"])
    offset = taken.strftime("%z")
    return taken.strftime("%Y-%m-%d %H:%M:%S") + (f" {offset[:3]}:{offset[3:]}" if record.get("taken_at") else "")


def _age(delta: timedelta) -> str:
    seconds = max(delta.total_seconds(), 0)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit} ago"
    return "just now"


def _took(seconds: float | None) -> str:
    """How long a backup took, for people ('' when its set does not record it)."""
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min" if seconds < 3600 else f"{seconds / 3600:.1f} h"


def _source(record: Mapping[str, Any]) -> str:
    """The database a set was read from, and its schema when not public."""
    database, schema = record.get("source_database") or "", record.get("source_schema")
    return f"{database} (schema {schema})" if database and schema and schema != "public" else database


def _status(client: VectorBackupClient, args: argparse.Namespace) -> int:
    info = _waited_for(client, args.run_id, args.timeout) if args.wait else client.run_status(args.run_id)
    return _report(info, args.spelling)


def _schedules(client: VectorBackupClient, args: argparse.Namespace) -> int:
    listed = client.automations()
    if args.json:
        for automation in listed:
            _print(automation.as_dict())
    else:
        print("\n".join(automation_table(listed)) if listed else "No schedules or sensors.")
    return EXIT_OK


AUTOMATION_COLUMNS = ("NAME", "KIND", "STATE", "NEXT TICK", "LAST TICK", "WHEN")


def automation_table(listed: list[Automation]) -> list[str]:
    """The schedules and sensors as an aligned table for people: state, next tick, the last tick's status and time,
    and when each ticks (a schedule's cron and its time zone, a sensor's interval)."""
    rows = [
        (
            a.name,
            a.kind,
            a.status,
            a.next_tick or "-",
            f"{a.last_tick_status} {a.last_tick_at}" if a.last_tick_status else "never",
            f"{a.cron} ({a.timezone})" if a.cron else (f"every {a.min_interval_s} s" if a.min_interval_s else ""),
        )
        for a in listed
    ]
    widths = [max(len(row[i]) for row in [AUTOMATION_COLUMNS, *rows]) for i in range(len(AUTOMATION_COLUMNS) - 1)]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1]
        for row in [AUTOMATION_COLUMNS, *rows]
    ]


def _start(client: VectorBackupClient, args: argparse.Namespace) -> int:
    _print({"name": args.name, "status": client.start_automation(args.name)})
    return EXIT_OK


def _stop(client: VectorBackupClient, args: argparse.Namespace) -> int:
    _print({"name": args.name, "status": client.stop_automation(args.name)})
    return EXIT_OK


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
        description=__doc__,
        epilog="exit codes: " + "; ".join(f"{code} {meaning}" for code, meaning in EXIT_CODES.items()),
    )
    parser.add_argument("--version", action="version", version=f"pgvector-pipeline {_version()}")
    parser.add_argument("--host", default=os.environ.get(HOST_ENV, "127.0.0.1"), help=f"Webserver host (${HOST_ENV}).")
    parser.add_argument("--port", type=int, default=int(os.environ.get(PORT_ENV, "3000")), help=f"Port (${PORT_ENV}).")
    _direct_options(parser, None)
    commands = parser.add_subparsers(dest="command", required=True)
    parser.set_defaults(direct_run=None)

    backup = commands.add_parser("backup", help="Back up the tables into a new set.")
    add_options(backup, BackupRequest)
    _database_options(backup)
    _wait_options(backup)
    backup.set_defaults(run=_backup, direct_run=_backup_direct)

    restore = commands.add_parser("restore", help="Restore a set, all or nothing.")
    add_options(restore, RestoreRequest)
    _database_options(restore)
    _wait_options(restore)
    restore.set_defaults(run=_restore, direct_run=_restore_direct)

    default_truncated = ", ".join(DEFAULT_TABLES.truncated_by_default)
    truncate = commands.add_parser("truncate", help=f"Truncate {default_truncated} (or the tables named).")
    add_options(truncate, TruncateRequest)
    _database_options(truncate)
    _wait_options(truncate)
    truncate.set_defaults(run=_truncate)

    retention = commands.add_parser(
        "retention",
        help="Delete old sets by policy (a dry run without --delete); always waits, printing each set it would "
        "delete (or deleted) on stderr.",
    )
    add_options(retention, RetentionRequest)
    _wait_options(retention)
    retention.set_defaults(run=_retention)

    verify = commands.add_parser(
        "verify",
        help="Restore a set into a scratch schema of the database, check it restores as recorded, and compare the live "
        "tables with it row by row (a digest of every row); the scratch schema is dropped. Exit 1 if they differ.",
    )
    add_options(verify, DrillRequest)
    _database_options(verify)
    _wait_options(verify)
    verify.set_defaults(run=_verify, direct_run=_verify_direct)

    copy = commands.add_parser(
        "copy",
        help="Copy a set to the other store (PGVECTOR_OTHER_BACKUP_ROOT of the code server, e.g. S3; with --direct, "
        "--other-root), every checksum verified; refused before anything starts when there is no other store.",
    )
    add_options(copy, CopyRequest)
    _wait_options(copy)
    copy.set_defaults(run=_copy, direct_run=_copy_direct)

    listing = commands.add_parser("list", help="Backup sets, newest first, as a table (--json: one object per line).")
    listing.add_argument("--json", action="store_true", help="One JSON object per set and line, for scripts.")
    add_options(listing, ListRequest)
    listing.set_defaults(run=_list, direct_run=_list_direct)
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
    checking.set_defaults(run=_check, direct_run=_check_direct)

    status = commands.add_parser("status", help="A run's status (and error, once it failed).")
    status.add_argument("run_id")
    _wait_options(status)
    status.set_defaults(run=_status)

    schedules = commands.add_parser(
        "schedules",
        help="The code location's schedules and sensors, as the webserver knows them: state (RUNNING or STOPPED), "
        "next tick, last tick, cron or interval; a table (--json: one object per line).",
    )
    schedules.add_argument("--json", action="store_true", help="One JSON object per schedule or sensor and line.")
    schedules.set_defaults(run=_schedules)

    automation_name = "A schedule or sensor of the code location (`schedules` lists them)."
    start = commands.add_parser("start", help="Switch a schedule or sensor on.")
    start.add_argument("name", metavar="NAME", help=automation_name)
    start.set_defaults(run=_start)

    stop = commands.add_parser("stop", help="Switch a schedule or sensor off.")
    stop.add_argument("name", metavar="NAME", help=automation_name)
    stop.set_defaults(run=_stop)
    for name, command in commands.choices.items():
        # `list --direct --root R` reads as well as `--direct --root R list`.
        _direct_options(command, argparse.SUPPRESS)
        command.set_defaults(spelling=field_spelling(commands.choices, name))
    return parser


def _run_client(args: argparse.Namespace) -> int:
    run: Callable[[VectorBackupClient, argparse.Namespace], int] = args.run
    return run(VectorBackupClient(args.host, args.port), args)


def main(argv: list[str] | None = None) -> int:
    """Run one command; the exit code says how it went (EXIT_CODES). Whatever fails is one line on stderr with its
    error_type (and a JSON object on stdout where the output is JSON), never a traceback."""
    args = build_parser().parse_args(argv)
    # Where results are JSON (every --direct command, list --json), a failure is JSON too.
    as_json = bool(args.direct or getattr(args, "json", False))
    try:
        refuse_nul(vars(args), "The command line")  # what argparse made of argv (and of the environment)
        return _run_direct(args) if args.direct else _run_client(args)
    except PipelineError as error:  # refused before anything was sent (bad task id), or a --direct command's error
        _failed(error.error_type, error.message, error.can_retry, as_json, error.render(args.spelling))
        return EXIT_INVALID if error.error_type == ErrorType.INVALID_PARAMS else EXIT_RUN_FAILED
    except PipelineClientError as error:
        _failed(error.error_type or "ERROR", error.message, error.can_retry, as_json)
        if error.error_type == UNREACHABLE:
            return EXIT_UNREACHABLE
        return EXIT_INVALID if error.error_type == ErrorType.INVALID_PARAMS else EXIT_RUN_FAILED
    except TimeoutError as error:
        _failed("TIMEOUT", str(error), True, as_json)
        return EXIT_TIMEOUT
    except BrokenPipeError:
        # The reader stopped reading (`| head`): not an error of this command. Python would complain at exit
        # about flushing stdout to the closed pipe; point it at /dev/null instead.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except RunInterrupted as stopped:  # the run goes on in Dagster: say which, and how to follow or cancel it
        print(
            f"error: interrupted; run {stopped.run_id} goes on. Follow it with `pgvector-pipeline status "
            f"{stopped.run_id} --wait`; cancel it in the UI ({stopped.runs_url}, Terminate).",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:  # with --direct the work was this process's own and is undone
        after = f"; {_UNDONE.get(args.command, 'nothing was left half-done')}" if args.direct else ""
        print(f"error: interrupted{after}.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:  # noqa: BLE001 - the last resort that keeps the promise: no traceback
        _failed(INTERNAL_ERROR, _unexpected(error), None, as_json)
        return EXIT_RUN_FAILED


if __name__ == "__main__":
    sys.exit(main())
