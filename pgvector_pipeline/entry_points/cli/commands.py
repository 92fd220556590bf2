"""What each command does: through the Dagster webserver (the GraphQL client), or with --direct in this process
(entry_points.direct); and main, which parses the command line, runs the command and turns whatever fails into one
line and an exit code."""

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

from pgvector_pipeline.contract import COPY_FROM_OTHER
from pgvector_pipeline.entry_points import direct
from pgvector_pipeline.entry_points.cli.exit_codes import (
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    EXIT_OK,
    EXIT_RUN_FAILED,
    EXIT_TIMEOUT,
    EXIT_UNREACHABLE,
    INTERNAL_ERROR,
)
from pgvector_pipeline.entry_points.cli.parser import build_parser
from pgvector_pipeline.entry_points.cli.render import (
    automation_table,
    print_json,
    print_sets,
    progress_line,
    report_run,
    say_failure,
    unexpected,
    verdict,
)
from pgvector_pipeline.entry_points.client import (
    UNREACHABLE,
    LaunchedRun,
    PipelineClientError,
    RunInfo,
    VectorBackupClient,
)
from pgvector_pipeline.errors import ErrorType, PipelineError
from pgvector_pipeline.operations.backup import Log
from pgvector_pipeline.operations.check import CheckReport, automations
from pgvector_pipeline.operations.named_set import check_named_set
from pgvector_pipeline.request_fields import from_args
from pgvector_pipeline.run_requests import (
    BackupRequest,
    CopyRequest,
    DrillRequest,
    ListRequest,
    RestoreRequest,
    RetentionRequest,
    TruncateRequest,
)
from pgvector_pipeline.store.naming import LATEST, latest_note
from pgvector_pipeline.untrusted_text import refuse_nul


def _finish(client: VectorBackupClient, launched: LaunchedRun, args: argparse.Namespace) -> int:
    if not args.wait:
        named = {"backup_set": launched.backup_set} if launched.backup_set else {}
        print_json({"run_id": launched.run_id, "job_name": launched.job_name, "status": "LAUNCHED", **named})
        return EXIT_OK
    return report_run(_waited_for(client, launched.run_id, args.timeout), args.spelling)


class RunInterrupted(Exception):
    """Ctrl-C while --wait followed run `run_id`, which goes on in Dagster."""

    def __init__(self, run_id: str, runs_url: str):
        super().__init__(run_id)
        self.run_id, self.runs_url = run_id, runs_url


def _waited_for(client: VectorBackupClient, run_id: str, timeout_s: float, follow: bool = True) -> RunInfo:
    """The run's end as wait_for_run reports it (with `follow`, its progress lines on stderr as they come);
    RunInterrupted naming the run on Ctrl-C."""
    try:
        return client.wait_for_run(run_id, timeout_s=timeout_s, on_line=progress_line if follow else None)
    except KeyboardInterrupt:
        raise RunInterrupted(run_id, client.url.removesuffix("/graphql") + f"/runs/{run_id}") from None


# --- through the Dagster webserver (the GraphQL client) ---


def _backup(client: VectorBackupClient, args: argparse.Namespace) -> int:
    request = from_args(BackupRequest, args)
    return _finish(client, client.launch_request(request, dsn_env=args.dsn_env, db_schema=args.db_schema), args)


def _restore_request(args: argparse.Namespace) -> RestoreRequest:
    return from_args(RestoreRequest, args, task_id=args.task_id or "")


def _restore(client: VectorBackupClient, args: argparse.Namespace) -> int:
    launched = client.launch_request(_restore_request(args), dsn_env=args.dsn_env, db_schema=args.db_schema)
    return _finish(client, launched, args)


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


def _copy(client: VectorBackupClient, args: argparse.Namespace) -> int:
    return _finish(client, client.launch_request(from_args(CopyRequest, args)), args)


def _list(client: VectorBackupClient, args: argparse.Namespace) -> int:
    print_sets(client.list_sets(from_args(ListRequest, args)), args.json)
    return EXIT_OK


def _check(client: VectorBackupClient, args: argparse.Namespace) -> int:
    """The checks run by the code server (vector_check_job), followed to their end, and the schedules' and sensors'
    state from the webserver: as --direct prints them (one line per check on stderr, the report as JSON), exit 1
    naming each problem."""
    launched = client.launch_check(dsn_env=args.dsn_env, db_schema=args.db_schema)
    # Not followed: its lines are the report's, printed once it is whole (with the client's automations check).
    info = _waited_for(client, launched.run_id, args.timeout, follow=False)
    report = client.check_report(info)
    if report is None:  # the run ended without checking (refused at start, canceled): its error
        return report_run(info, args.spelling)
    print("\n".join(check.line for check in CheckReport.from_dict(report).checks), file=sys.stderr)
    print_json(report)
    return verdict(report)


def _status(client: VectorBackupClient, args: argparse.Namespace) -> int:
    info = _waited_for(client, args.run_id, args.timeout) if args.wait else client.run_status(args.run_id)
    return report_run(info, args.spelling)


def _schedules(client: VectorBackupClient, args: argparse.Namespace) -> int:
    listed = client.automations()
    if args.json:
        for automation in listed:
            print_json(automation.as_dict())
    else:
        print("\n".join(automation_table(listed)) if listed else "No schedules or sensors.")
    return EXIT_OK


def _start(client: VectorBackupClient, args: argparse.Namespace) -> int:
    print_json({"name": args.name, "status": client.start_automation(args.name)})
    return EXIT_OK


def _stop(client: VectorBackupClient, args: argparse.Namespace) -> int:
    print_json({"name": args.name, "status": client.stop_automation(args.name)})
    return EXIT_OK


# --- --direct: the same commands in this process, without Dagster (pgvector_pipeline.entry_points.direct) ---


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


def _verify_direct(args: argparse.Namespace, log: Log) -> dict[str, Any]:
    engine = direct.target(args.root, args.dsn_env, args.db_schema)
    request = from_args(DrillRequest, args, compare_live=True)
    if request.timestamp:  # a mistyped name is refused with the nearest ones (exit 2); empty: the newest complete set
        named = check_named_set(engine.backup_store(), request.task_id, request.timestamp)
        if request.timestamp == LATEST:
            log.info(latest_note(named))
    return direct.verify(engine, request, log)


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


def _list_direct(args: argparse.Namespace, log: Log) -> list[dict[str, object]]:
    return direct.list_sets(direct.target(args.root, None, None, need_dsn=False), from_args(ListRequest, args))


def _check_direct(args: argparse.Namespace, log: Log) -> dict[str, Any]:
    """Whether this deployment works (pgvector_pipeline.operations.check): one line per check on stderr, the report as
    JSON. Which schedules and sensors run is not known here: only Dagster knows."""
    engine = direct.target(args.root, args.dsn_env, args.db_schema)
    report = engine.check(extra=[automations])
    print("\n".join(check.line for check in report.checks), file=sys.stderr)
    return {"status": "SUCCESS" if report.ok else "FAILURE", **report.as_dict()}


# --- running one ---

# What each command does through the webserver, and (where it can) in this process with --direct.
COMMANDS: dict[str, Callable[[VectorBackupClient, argparse.Namespace], int]] = {
    "backup": _backup,
    "restore": _restore,
    "truncate": _truncate,
    "retention": _retention,
    "verify": _verify,
    "copy": _copy,
    "list": _list,
    "check": _check,
    "status": _status,
    "schedules": _schedules,
    "start": _start,
    "stop": _stop,
}


DIRECT_COMMANDS: dict[str, Callable[[argparse.Namespace, Log], Any]] = {
    "backup": _backup_direct,
    "restore": _restore_direct,
    "verify": _verify_direct,
    "copy": _copy_direct,
    "list": _list_direct,
    "check": _check_direct,
}


def _run_client(args: argparse.Namespace) -> int:
    run = COMMANDS[args.command]
    return run(VectorBackupClient(args.host, args.port), args)


def _run_direct(args: argparse.Namespace) -> int:
    """One command in this process: its result as JSON on stdout (a failure: see main); exit codes as for runs."""
    direct_run = DIRECT_COMMANDS.get(args.command)
    if direct_run is None:
        print(
            f"error: {args.command} is about Dagster runs and automations; --direct runs backup, restore, verify, "
            "copy, list and check.",
            file=sys.stderr,
        )
        return EXIT_INVALID
    with direct.progress_log() as log:
        done = direct_run(args, log)
    if isinstance(done, list):  # list
        print_sets(done, args.json)
        return EXIT_OK
    print_json(done)
    return verdict(done)


# What Ctrl-C leaves of a --direct command's own work (each rolls back or removes what it had not finished).
_UNDONE = {
    "backup": "the set being written was removed and nothing was truncated",
    "restore": "its transaction was rolled back: the tables are as they were",
    "verify": "its transaction was rolled back and the scratch schema dropped",
    "copy": "the copy being written was removed; the source is as it was",
    "list": "nothing was changed",
}


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
        say_failure(error.error_type, error.message, error.can_retry, as_json, error.render(args.spelling))
        return EXIT_INVALID if error.error_type == ErrorType.INVALID_PARAMS else EXIT_RUN_FAILED
    except PipelineClientError as error:
        say_failure(error.error_type or "ERROR", error.message, error.can_retry, as_json)
        if error.error_type == UNREACHABLE:
            return EXIT_UNREACHABLE
        return EXIT_INVALID if error.error_type == ErrorType.INVALID_PARAMS else EXIT_RUN_FAILED
    except TimeoutError as error:
        say_failure("TIMEOUT", str(error), True, as_json)
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
        say_failure(INTERNAL_ERROR, unexpected(error), None, as_json)
        return EXIT_RUN_FAILED
