"""The command line without Dagster (`pgvector-pipeline --direct …`): the same plain-Python backup, restore and
listing the Dagster runs use, run in this process against a backup store (local or S3) and a database. It is the
disaster-recovery path: it needs neither the webserver nor the daemon, only this package, the root and the DSN.

Settings come from this process's environment, as the code server's come from its own: the DSN from the variable
`--dsn-env` names (PGVECTOR_DSN by default; never from the command line, where `ps` shows it), the root from `--root`
or PGVECTOR_BACKUP_ROOT (no silent ./vector_backups default: a recovery must say where it reads), S3 credentials from
the standard AWS variables, the other deployment settings (lock and session bounds, file mode, S3 part size and
claim staleness) from the same variables as the code server's (pgvector_pipeline.settings). Progress goes to stderr, the result to stdout as JSON (the shape `--wait` prints).
"""

import logging
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO, TypedDict

from pgvector_pipeline.contract import DEFAULT_DSN_ENV, partition_key
from pgvector_pipeline.errors import ErrorType, InvalidParams, ResourceNotFound
from pgvector_pipeline.operations.backup import BackupChoices, Log
from pgvector_pipeline.operations.copy import copy_set
from pgvector_pipeline.operations.drill import set_to_drill
from pgvector_pipeline.operations.engine import Engine
from pgvector_pipeline.operations.set_checks import SetCheck, check_written_set, files_differ

# The second store of a copy, as the code server names it.
from pgvector_pipeline.run_requests import OTHER_ROOT_ENV as OTHER_ROOT_ENV
from pgvector_pipeline.run_requests import BackupRequest, DrillRequest, ListRequest, RestoreRequest
from pgvector_pipeline.settings import DatabaseSettings, StoreSettings
from pgvector_pipeline.store.backup_set_info import BackupSetInfo, set_record
from pgvector_pipeline.store.interface import BackupStore
from pgvector_pipeline.store.layout import task_key
from pgvector_pipeline.store.local import LocalBackupStore
from pgvector_pipeline.store.roots import BACKUP_ROOT_ENV


def target(root: str | None, dsn_env: str | None, schema: str | None, need_dsn: bool = True) -> Engine:
    """The engine on the store of `root` (else $PGVECTOR_BACKUP_ROOT) and the DSN in $`dsn_env` (else $PGVECTOR_DSN),
    with the deployment settings of this shell's environment (as the code server's come from its own); InvalidParams
    naming the variable to set when one is missing."""
    root = root or os.environ.get(BACKUP_ROOT_ENV, "")
    if not root:
        raise InvalidParams(f"--direct needs the backup root: pass --root PATH_OR_S3_URL, or set {BACKUP_ROOT_ENV}.")
    variable = dsn_env or DEFAULT_DSN_ENV
    dsn = os.environ.get(variable, "")
    if need_dsn and not dsn:
        raise InvalidParams(
            f"--direct reads the database's DSN from ${variable}, which is not set in this shell: export it (a "
            f"password may also come from ~/.pgpass), or name another variable with --dsn-env."
        )
    return Engine(dsn, schema or "public", DatabaseSettings.from_env(), StoreSettings.from_env().store(root))


@contextmanager
def progress_log() -> Iterator[Log]:
    """Where a direct command's progress goes, on stderr: bars under the progress lines on a terminal, else the
    lines alone, each with the time, as the Dagster event log shows them."""
    if sys.stderr.isatty():
        from rich.console import Console

        from pgvector_pipeline.entry_points.progress_bars import BarsLog

        with BarsLog(Console(file=sys.stderr)) as bars:
            yield bars
    else:
        yield _line_log()


class _CurrentStderr(logging.StreamHandler[TextIO]):
    """A handler that writes to whatever sys.stderr is when it writes: a caller of main() in the same process (a test,
    a script) may replace and close the stream a handler took at its creation."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


def _line_log() -> logging.Logger:
    log = logging.getLogger("pgvector_pipeline.entry_points.direct")
    if not log.handlers:
        handler = _CurrentStderr()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    return log


def other_store(root: str | None) -> BackupStore:
    """The store a copy goes to (or, copying back, comes from): `root`, else $PGVECTOR_OTHER_BACKUP_ROOT."""
    root = root or os.environ.get(OTHER_ROOT_ENV, "")
    if not root:
        raise InvalidParams(
            f"A copy needs the other store: pass --other-root PATH_OR_S3_URL, or set {OTHER_ROOT_ENV} (the backup "
            f"store is --root, or {BACKUP_ROOT_ENV})."
        )
    return StoreSettings.from_env().store(root)


def back_up(engine: Engine, request: BackupRequest, log: Log) -> dict[str, Any]:
    """The backup `request` asks for, into a new set of its task (empty: global), then the checks every backup runs of the set it wrote
    (operations.set_checks, as the Dagster backup's asset checks): the result as --wait prints it, with each check.
    A check that fails (not only a warning) makes the result a failure; a file that does not match its manifest
    has marked the set damaged by then."""
    started = time.monotonic()
    store = engine.backup_store()
    result = engine.back_up(task_key(request.task_id), None, BackupChoices.of(request), log=log)
    done = _result(
        "backup",
        partition_key(result.task, result.timestamp),
        result.rows,
        result.stored_bytes,
        started,
    )
    checks, _ = check_written_set(store, result, log)
    done["checks"] = [check_record(check) for check in checks]
    failed = [check for check in checks if not check.passed and not check.warn_only]
    if failed:
        damaged = " It is marked damaged: back up again." if files_differ(checks) else ""
        done.update(
            status="FAILURE",
            error_type=ErrorType.DATA_ERROR.value,
            can_retry=False,
            error_message=f"Set {result.timestamp} was written, but its checks failed: "
            + " ".join(f"{check.name}: {check.description}" for check in failed)
            + damaged,
        )
    return done


class CheckRecord(TypedDict):
    """One check of a set, as a result prints it."""

    name: str
    passed: bool
    warn_only: bool
    message: str


def check_record(check: SetCheck) -> CheckRecord:
    """One check of a set, for JSON: its name, whether it passed, whether a failure only warns, what it found."""
    return {"name": check.name, "passed": check.passed, "warn_only": check.warn_only, "message": check.description}


def copy(backup_set: BackupSetInfo, target: BackupStore, log: Log) -> dict[str, Any]:
    """A copy of `backup_set` (as its own store lists it) into `target`, verified (operations.copy): the result as --wait
    prints it, with where it went."""
    started = time.monotonic()
    result = copy_set(backup_set, target, log=log.info)
    rows = sum(backup_set.rows(table) or 0 for table in backup_set.tables)
    done = _result("copy", partition_key(result.task, result.timestamp), rows, result.total_bytes, started)
    return {**done, "source": result.source, "target": result.target}


def restore(engine: Engine, request: RestoreRequest, log: Log) -> dict[str, Any]:
    """The restore `request` asks for (its task_id empty: global): the result as --wait prints it."""
    started = time.monotonic()
    backup_set = engine.backup_store().locate(task_id=task_key(request.task_id), timestamp=request.timestamp)
    result = engine.restore(backup_set, request, log)
    return _result(
        "verify_only" if request.flags.verify_only else "restore",
        partition_key(backup_set.task, backup_set.timestamp),
        result.rows_restored,
        result.bytes_read,
        started,
        swap=result.swap,
    )


def verify(engine: Engine, request: DrillRequest, log: Log) -> dict[str, Any]:
    """The restore drill `request` asks for (its timestamp empty: the location's newest complete set; `verify` asks to
    compare the live tables with the set too): the result as --wait prints it, with each table's comparison."""
    started = time.monotonic()
    backup_set = set_to_drill(engine.backup_store(), task_key(request.task_id or None), request.timestamp)
    result = engine.drill(backup_set, request, log)
    done = _result(
        "verify",
        partition_key(backup_set.task, backup_set.timestamp),
        result.rows_restored,
        backup_set.total_bytes,
        started,
    )
    return {**done, **result.report()}


def list_sets(engine: Engine, request: ListRequest) -> list[dict[str, object]]:
    """The sets of the store `request` asks for, newest first, as the inventory records them (see
    store.backup_set_info.set_record); read from the store as it is (the inventory's refresh does not apply).
    ResourceNotFound for a local root that does not exist: in a recovery, a mistyped root is not an empty one."""
    store = engine.backup_store()
    listed = store.list_sets(global_only=request.global_only, task_id=request.task_id or None)
    sets = [set_record(s, store.where) for s in listed]
    if not sets and isinstance(store, LocalBackupStore) and not store.root.is_dir():
        raise ResourceNotFound(
            f"The backup root {store.where} does not exist (or is not a directory): check --root or ${BACKUP_ROOT_ENV}."
        )
    return sets


def _result(what: str, backup_set: str, rows: int, size: int, started: float, **extra: str) -> dict[str, Any]:
    return {
        "command": what,
        "status": "SUCCESS",
        "backup_set": backup_set,
        "rows": rows,
        "bytes": size,
        "duration_s": round(time.monotonic() - started, 3),
        **{key: value for key, value in extra.items() if value},
    }
