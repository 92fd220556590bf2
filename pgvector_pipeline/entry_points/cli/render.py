"""What the command line prints: one JSON object per result on stdout, a failure as one line on stderr (and as JSON
where the output is JSON), the tables of sets and of schedules and sensors for people; and the exit code a result
says (exit_codes)."""

import json
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from pgvector_pipeline.entry_points.cli.exit_codes import EXIT_OK, EXIT_RUN_FAILED
from pgvector_pipeline.entry_points.client import Automation, RunInfo
from pgvector_pipeline.errors import Spelling, said
from pgvector_pipeline.store.layout import TIMESTAMP_FORMAT


def print_json(data: object) -> None:
    print(json.dumps(data, default=str))


def say_failure(
    error_type: str, message: str, can_retry: bool | None, as_json: bool, in_shell: str | None = None
) -> None:
    """A failure said once: one line on stderr (cron mails it) and, where the output is JSON, the same failure shaped
    as a failed run's on stdout. `in_shell`: the message with the fields it points to named as flags (see
    field_spelling); the JSON keeps the message as the run config names them."""
    if as_json:
        print_json({"status": "FAILURE", "error_type": error_type, "can_retry": can_retry, "error_message": message})
    print(f"error: {error_type}: {shell_words(in_shell or message)}", file=sys.stderr)


def unexpected(error: Exception) -> str:
    """What an exception no layer expected says, for the one line that replaces a traceback. A database driver's
    message may quote the DSN (psycopg2's parse errors quote the offending token, which can be the password): not
    shown."""
    said = "" if type(error).__module__.startswith("psycopg2") else str(error)
    return (
        f"{type(error).__name__}{f': {said}' if said else ''} (a fault of pgvector-pipeline, or an answer from the "
        f"webserver it cannot read: please report it with the command that caused it)"
    )


def progress_line(line: str) -> None:
    """A progress line of the run, on stderr as it arrives (stdout keeps the JSON result alone)."""
    print(line, file=sys.stderr, flush=True)


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


def report_run(info: RunInfo, spelling: Spelling) -> int:
    """The run as JSON on stdout; a failed or canceled run's error also on stderr (cron mails stderr), with the fields
    it points to named as `spelling` names them."""
    result = info.as_dict()
    print_json(result)
    if info.status in ("FAILURE", "CANCELED"):
        message = shell_words(said(info.error_parts, spelling) if info.error_parts else info.error_message or "")
        print(
            f"error: run {info.run_id} {info.status}: {info.error_type or 'ERROR'}: {message}".rstrip(": "),
            file=sys.stderr,
        )
        return EXIT_RUN_FAILED
    return verdict(result)


def verdict(result: Mapping[str, Any]) -> int:
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


def print_sets(sets: Sequence[Mapping[str, Any]], as_json: bool) -> None:
    if as_json:
        for backup_set in sets:
            print_json(backup_set)
    elif not sets:
        print("No backup sets.")
    else:
        store = sets[0].get("store")
        print("\n".join(([f"Backup store: {store}"] if store else []) + set_table(sets, datetime.now().astimezone())))


SET_COLUMNS = ("TASK", "TAKEN", "AGE", "STATUS", "SIZE", "TOOK", "STORED AS", "SOURCE", "CONTENTS")


def _stored_as(s: Mapping[str, Any]) -> str:
    """How a set is stored: its format and compression, and age encryption with its recipients' fingerprints."""
    stored = " ".join(part for part in (s.get("format"), s.get("compression")) if part)
    if not s.get("encrypted"):
        return stored
    return f"{stored} + age to {s.get('recipients') or '?'}".lstrip(" +")


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
            _stored_as(s),
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
