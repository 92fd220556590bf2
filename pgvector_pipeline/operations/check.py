"""`check`, as pgBackRest's: does this configuration work? Each check asks one question of the database or the store
without changing a row or leaving a file, and says what holds and what to do when it does not.

    database        the server answers (its version)
    pgvector        the vector extension is installed (its version and schema)
    tables          LangChain's tables in the schema (none is not a failure: a restore may create them)
    backup          SELECT on each table, and no row-level security policy that filters this role's reads
    truncate        TRUNCATE on the tables a truncate empties by default
    restore         append: SELECT + INSERT; truncating: + TRUNCATE, and whether it would swap new tables in
                    (table owner, CREATE on the schema, nothing bound to the live tables) or load in place, and why
    store           the store is reachable and writable: a set is claimed and released through the store interface
    free_space      free bytes where a local store lives (S3: not applicable)
    encryption      whether new sets are encrypted and to which recipients (fingerprints), and whether this host's
                    identity files (PGVECTOR_BACKUP_IDENTITY_FILE) can be used: readable by their owner only, keys
    recent_backup   the newest complete global set's age against PGVECTOR_GLOBAL_BACKUP_MAX_AGE_HOURS
    automations     which schedules and sensors run (pgvector_pipeline.automations): the client adds it from the
                    webserver's answer; `--direct` says it is not known there

Plain Python: the command line and the Dagster side (vector_check_job) call `run_checks`, and may add their own checks
through `extra`. Every database question is asked in one read-only transaction, rolled back. A check that holds may
carry warnings (`data["warnings"]`): said on its line, never a failure.
"""

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg2.extensions

from pgvector_pipeline.automations import WITHOUT_WEBSERVER, automations_unknown
from pgvector_pipeline.errors import DatabaseError, DataError, PipelineError, ResourceNotFound, StorageError
from pgvector_pipeline.operations.global_freshness import global_freshness
from pgvector_pipeline.postgres import catalog
from pgvector_pipeline.postgres.catalog import lacking_privileges
from pgvector_pipeline.postgres.connection import classified, connect, redact_dsn, rollback_quietly
from pgvector_pipeline.postgres.preflight import swap_refusal
from pgvector_pipeline.postgres.readiness import row_security_applies, schema_exists
from pgvector_pipeline.postgres.restore_types import RestoreOptions
from pgvector_pipeline.sizes import human_size
from pgvector_pipeline.store.interface import BackupStore, InterruptedSet
from pgvector_pipeline.store.keys import IDENTITY_FILE_ENV, RECIPIENTS_ENV, SetKeys, load_identities
from pgvector_pipeline.store.layout import GLOBAL_TASK_KEY
from pgvector_pipeline.store.local import LocalBackupStore
from pgvector_pipeline.tables import DEFAULT_TABLES


@dataclass(frozen=True)
class Check:
    """One question and its answer: `detail` for people, `data` for scripts."""

    name: str
    ok: bool
    detail: str
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail, "data": self.data}

    @property
    def line(self) -> str:
        """The check for people, on one line (a driver's message may span several): ok, warn (it holds, with
        warnings) or FAIL, its name and what it found."""
        mark = ("warn" if self.data.get("warnings") else "ok  ") if self.ok else "FAIL"
        return f"{mark} {self.name}: {' '.join(self.detail.split())}"


@dataclass(frozen=True)
class CheckReport:
    """Every check run; ok when all hold."""

    checks: list[Check]

    @classmethod
    def from_dict(cls, report: dict[str, Any]) -> "CheckReport":
        """The report as_dict wrote (a run's result, read back over GraphQL)."""
        return cls(
            [Check(c["name"], bool(c["ok"]), str(c["detail"]), dict(c.get("data") or {})) for c in report["checks"]]
        )

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def problems(self) -> list[Check]:
        return [check for check in self.checks if not check.ok]

    def check(self, name: str) -> Check:
        return next(check for check in self.checks if check.name == name)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "problems": [check.name for check in self.problems],
            "checks": [check.as_dict() for check in self.checks],
        }

    def text(self) -> str:
        """One line per check, then the verdict naming each problem."""
        lines = [check.line for check in self.checks]
        verdict = (
            "All checks hold."
            if self.ok
            else f"{len(self.problems)} problem(s): {', '.join(c.name for c in self.problems)}."
        )
        return "\n".join([*lines, verdict])

    def failure(self) -> PipelineError:
        """The error of a report with problems (it fails vector_check_job's run): each problem named with what it
        found, typed as its first problem is (see _ERROR_OF)."""
        problems = self.problems
        said = "; ".join(f"{check.name}: {check.detail}" for check in problems)
        return _ERROR_OF.get(problems[0].name.removeprefix("other_"), DataError)(f"{len(problems)} problem(s): {said}")


# The error type of a failed check, for the run it fails (the Dagster UI, alerts): what kind of thing was wrong.
_ERROR_OF: dict[str, type[PipelineError]] = {
    "database": DatabaseError,
    "pgvector": ResourceNotFound,
    "tables": ResourceNotFound,
    "backup": DatabaseError,
    "truncate": DatabaseError,
    "restore": DatabaseError,
    "store": StorageError,
    "store_free_space": StorageError,
    "recent_backup": DataError,
}


ExtraCheck = Callable[[], Check]


def automations() -> Check:
    """The schedules' and sensors' state, which only Dagster knows: not known here (an extra check of --direct)."""
    return Check(**automations_unknown(WITHOUT_WEBSERVER))


def run_checks(
    dsn: str,
    schema: str,
    store: BackupStore,
    other_store: BackupStore | None = None,
    now: datetime | None = None,
    extra: Sequence[ExtraCheck] = (),
) -> CheckReport:
    """Check the database at `dsn` (tables in `schema`), `store` (and `other_store`, a copy's other end, when given)
    and the freshness of the global backups; then each of `extra` (an extra check that raises is a failed check)."""
    checks = database_checks(dsn, schema)
    checks += store_checks(store, "store")
    if other_store is not None:
        checks += store_checks(other_store, "other_store")
    checks.append(_guarded("encryption", lambda: encryption_check(store.keys)))
    checks.append(_guarded("recent_backup", lambda: _recent_backup(store, now)))
    checks += [_guarded(getattr(check, "__name__", "extra"), check) for check in extra]
    return CheckReport(checks)


def _guarded(name: str, ask: Callable[[], Check]) -> Check:
    """The check's answer; a pipeline error (a store that cannot be read, a bad setting) is the check failing."""
    try:
        return ask()
    except PipelineError as error:
        return Check(name, False, error.message, {"error_type": error.error_type.value})


# --- the database ---------------------------------------------------------------------------------------------


def database_checks(dsn: str, schema: str) -> list[Check]:
    """database, pgvector, tables, backup, truncate and restore; only `database` when the server does not answer."""
    try:
        with _read_only(dsn) as cur:
            return _database_checks(cur, dsn, schema)
    except PipelineError as error:
        return [
            Check(
                "database",
                False,
                f"{redact_dsn(dsn)} does not answer: {error.message}",
                {"target": redact_dsn(dsn), "error_type": error.error_type.value},
            )
        ]


@contextmanager
def _read_only(dsn: str) -> Iterator[Any]:
    """A cursor in a read-only transaction, rolled back at the end; driver errors classified."""
    conn = connect(dsn, application_name="pgvector_pipeline check")
    try:
        with classified("checking the database", conn):
            conn.set_session(readonly=True)
            with conn.cursor() as cur:
                yield cur
    finally:
        rollback_quietly(conn)
        conn.close()


def _database_checks(cur: psycopg2.extensions.cursor, dsn: str, schema: str) -> list[Check]:
    target = redact_dsn(dsn)
    version = catalog.server_version(cur)
    checks = [
        Check("database", True, f"{target} answers: PostgreSQL {version}.", {"target": target, "version": version})
    ]
    ext_version, ext_schema = catalog.extension_version(cur), catalog.extension_schema(cur)
    checks.append(
        Check(
            "pgvector",
            True,
            f"pgvector {ext_version} in schema {ext_schema}.",
            {"version": ext_version, "schema": ext_schema},
        )
        if ext_version
        else Check(
            "pgvector",
            False,
            "The pgvector extension is not installed: this database holds no LangChain vector store. Run CREATE "
            "EXTENSION vector (a restore with create_missing creates it), or check PGVECTOR_DSN.",
            {"version": None},
        )
    )
    present = [t for t in DEFAULT_TABLES.names if schema_exists(cur, schema) and catalog.table_oid(cur, schema, t)]
    checks.append(_tables_check(schema, present))
    if not present:
        none = f"not applicable: no LangChain tables in schema {schema}"
        checks += [Check(name, True, none + ".", {"applicable": False}) for name in ("backup", "truncate", "restore")]
        return checks
    return checks + [
        _backup_check(cur, schema, present),
        _truncate_check(cur, schema, present),
        _restore_check(cur, schema, present),
    ]


def _tables_check(schema: str, present: list[str]) -> Check:
    absent = [t for t in DEFAULT_TABLES.names if t not in present]
    if not present:
        detail = (
            f"No LangChain tables in schema {schema}: nothing to back up yet (LangChain creates them on first use; a "
            f"restore with create_missing creates them from a set)."
        )
    else:
        detail = f"{', '.join(present)} in schema {schema}" + (f"; {', '.join(absent)} missing." if absent else ".")
    return Check("tables", not present or not absent, detail, {"schema": schema, "present": present, "absent": absent})


def _backup_check(cur: psycopg2.extensions.cursor, schema: str, tables: list[str]) -> Check:
    missing = lacking_privileges(cur, schema, tables, ["SELECT"])
    filtered = [t for t in tables if row_security_applies(cur, schema, t)]
    problems = missing + [f"a row-level security policy filters its reads of {schema}.{t}" for t in filtered]
    if not problems:
        return Check("backup", True, f"The role may read every row of {', '.join(tables)}.", {"missing": []})
    return Check(
        "backup",
        False,
        f"A backup would be refused: the role lacks {'; '.join(problems)}. Grant SELECT (GRANT SELECT ON ... TO role), "
        f"and back up as the tables' owner or a role with BYPASSRLS (ALTER ROLE name BYPASSRLS), as pg_dump requires.",
        {"missing": missing, "row_security": filtered},
    )


def _truncate_check(cur: psycopg2.extensions.cursor, schema: str, tables: list[str]) -> Check:
    emptied = [t for t in DEFAULT_TABLES.truncated_by_default if t in tables]
    missing = lacking_privileges(cur, schema, emptied, ["TRUNCATE"])
    both = lacking_privileges(cur, schema, tables, ["TRUNCATE"])
    data = {"tables": emptied, "missing": missing, "missing_for_all_tables": both}
    if missing:
        return Check(
            "truncate",
            False,
            f"A truncate (and truncate_after_backup) would be refused: the role lacks {', '.join(missing)}. Grant "
            f"TRUNCATE (GRANT TRUNCATE ON ... TO role).",
            data,
        )
    also = f" (truncating {', '.join(tables)} together also needs {', '.join(both)})" if both else ""
    return Check("truncate", True, f"The role may truncate {', '.join(emptied)}{also}.", data)


def _restore_check(cur: psycopg2.extensions.cursor, schema: str, tables: list[str]) -> Check:
    append = catalog.missing_privileges(cur, schema, tables, truncate=False)
    truncating = catalog.missing_privileges(cur, schema, tables, truncate=True)
    in_place_because = (
        None if truncating else swap_refusal(cur, schema, tables, RestoreOptions(truncate=True, swap=True), [])
    )
    mode = "refused" if truncating else ("in place" if in_place_because else "swapped")
    data = {
        "append_missing": append,
        "truncating_missing": truncating,
        "truncating_mode": mode,
        "in_place_because": in_place_because,
    }
    if append:
        return Check(
            "restore",
            False,
            f"A restore would be refused: the role lacks {', '.join(append)}. Grant SELECT, INSERT (and TRUNCATE for "
            f"truncate_before_restore) ON ... TO role, or restore as the tables' owner.",
            data,
        )
    if truncating:
        return Check(
            "restore",
            False,
            f"A restore that appends may run; one with truncate_before_restore would be refused: the role lacks "
            f"{', '.join(truncating)}. Grant TRUNCATE ON ... TO role.",
            data,
        )
    how = (
        "swap new tables in (readers go on until the swap)"
        if mode == "swapped"
        else f"load in place, not swapped: {in_place_because}"
    )
    return Check("restore", True, f"A restore may append; one with truncate_before_restore would {how}.", data)


# --- the store ------------------------------------------------------------------------------------------------


def store_checks(store: BackupStore, name: str = "store") -> list[Check]:
    """`name`: the store is reachable and writable; `name`_free_space (local stores) or not applicable."""
    return [
        _guarded(name, lambda: _claim_check(store, name)),
        _guarded(f"{name}_free_space", lambda: _space_check(store, name)),
    ]


def _claim_check(store: BackupStore, name: str) -> Check:
    """A set claimed and left unpublished: the store removes what it wrote and releases the claim, as for a backup
    that fails before publishing (leftovers of dead writers found on the way are removed, as a backup does)."""
    removed: list[InterruptedSet] = []
    with store.new_set(GLOBAL_TASK_KEY, None, on_interrupted=removed.append) as writer:
        claimed = writer.timestamp
    cleaned = f" It removed the leftovers of {len(removed)} interrupted backup(s) on the way." if removed else ""
    return Check(
        name,
        True,
        f"{store.where} answers and is writable: set {claimed} was claimed in {writer.location} and released.{cleaned}",
        {"where": store.where, "claimed": claimed, "removed_interrupted": [i.timestamp for i in removed]},
    )


def encryption_check(keys: SetKeys) -> Check:
    """Whom new sets are encrypted to, and the identities this host reads encrypted sets with (their files loaded:
    InvalidParams, so a failed check, for a file others may read or one that holds no key)."""
    recipients = keys.recipients.fingerprints if keys.recipients else ()
    written = (
        f"New sets are age-encrypted to the recipients {', '.join(recipients)}"
        if recipients
        else f"New sets are written in clear ({RECIPIENTS_ENV} is not set)"
    )
    held: tuple[str, ...] = ()
    if keys.identity_files:
        held = load_identities(keys.identity_files).fingerprints
        read = f"; this host reads sets encrypted to {', '.join(held)} ({IDENTITY_FILE_ENV})."
    else:
        read = f"; this host holds no identity: encrypted sets are restored where one is ({IDENTITY_FILE_ENV})."
    return Check("encryption", True, written + read, {"recipients": list(recipients), "identities": list(held)})


def _space_check(store: BackupStore, name: str) -> Check:
    check = f"{name}_free_space"
    if not isinstance(store, LocalBackupStore):
        return Check(check, True, f"Not applicable: {store.where} is object storage.", {"applicable": False})
    stats = os.statvfs(store.root)
    free, total = stats.f_bavail * stats.f_frsize, stats.f_blocks * stats.f_frsize
    newest = next((s for s in store.list_sets(global_only=True) if s.complete), None)
    needs = newest.total_bytes if newest else 0
    data = {"applicable": True, "free_bytes": free, "total_bytes": total, "newest_global_set_bytes": needs}
    room = f"{human_size(free)} free of {human_size(total)} at {store.root}"
    if free < needs:
        return Check(
            check,
            False,
            f"{room}: less than the newest global set ({human_size(needs)}), so the next backup would not fit. Free "
            f"space there, or apply the retention policy.",
            data,
        )
    of_set = f" (the newest global set takes {human_size(needs)})" if newest else ""
    return Check(check, True, f"{room}{of_set}.", data)


def _recent_backup(store: BackupStore, now: datetime | None) -> Check:
    result = global_freshness(store, now)
    return Check("recent_backup", result.passed, result.description, result.metadata)
