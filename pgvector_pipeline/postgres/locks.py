"""Table locks with a bounded wait that say who was in the way, and the one-restore-at-a-time guard.

Every lock this project takes waits at most the session's lock_timeout (set by `connection.connect`): a
lock request that waits makes every later query on the table wait behind it, so an app session idle in
a transaction would otherwise take the app down with it. When the wait runs out, the error names the
sessions holding or awaiting locks on those tables, so a person can see whom to ask (or what to end).
"""

from dataclasses import dataclass
from datetime import datetime

import psycopg2
import psycopg2.errors
import psycopg2.extensions
from psycopg2 import sql

from pgvector_pipeline.errors import DatabaseError
from pgvector_pipeline.postgres.catalog import qualified
from pgvector_pipeline.postgres.connection import rollback_quietly

# The advisory lock a restore holds for its transaction, one per schema of a database: two restores into the
# same tables (runs that slipped past the run queue) would otherwise fail on each other's dropped indexes.
_RESTORE_LOCK_SPACE = "pgvector_pipeline.restore"  # a lock key: kept when the module moved

_LOCK_HOLDERS = """
SELECT DISTINCT a.pid, coalesce(a.application_name, ''), coalesce(a.state, ''), a.xact_start, a.state_change,
       l.mode, l.granted
FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a ON a.pid OPERATOR(pg_catalog.=) l.pid
WHERE l.locktype OPERATOR(pg_catalog.=) 'relation'
  AND l.relation OPERATOR(pg_catalog.=) ANY (%s::pg_catalog.regclass[])
  AND l.pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid()
ORDER BY l.granted DESC, a.pid
"""


@dataclass(frozen=True)
class LockHolder:
    """A session holding (or waiting for) a lock on a table."""

    pid: int
    application_name: str
    state: str
    transaction_start: datetime | None
    state_since: datetime | None
    mode: str
    granted: bool

    def describe(self) -> str:
        since = f" since {self.state_since:%Y-%m-%d %H:%M:%S %Z}".rstrip() if self.state_since else ""
        began = f", transaction began {self.transaction_start:%H:%M:%S}" if self.transaction_start else ""
        held = "holds" if self.granted else "waits for"
        return f"pid {self.pid} ({self.application_name or 'no application_name'}, {self.state}{since}{began}) {held} {self.mode}"


def lock_holders(cur: psycopg2.extensions.cursor, schema: str, tables: list[str]) -> list[LockHolder]:
    """Other sessions holding or awaiting locks on `tables` now."""
    names = [qualified(schema, table).as_string(cur) for table in tables]
    cur.execute(_LOCK_HOLDERS, (names,))
    return [LockHolder(*row) for row in cur.fetchall()]


def lock_tables(
    conn: psycopg2.extensions.connection,
    cur: psycopg2.extensions.cursor,
    schema: str,
    tables: list[str],
    mode: str,
    doing: str,
) -> None:
    """LOCK `tables` IN `mode` MODE in the open transaction, waiting at most lock_timeout.

    On timeout the transaction is rolled back (nothing of it stays) and the DatabaseError names the
    sessions in the way.
    """
    statement = sql.SQL("LOCK TABLE {} IN {} MODE").format(
        sql.SQL(", ").join(qualified(schema, table) for table in tables), sql.SQL(mode)
    )
    try:
        cur.execute(statement)
    except psycopg2.errors.LockNotAvailable as exc:
        rollback_quietly(conn)  # the transaction is aborted: nothing else runs in it
        waited = _current_setting(conn, "lock_timeout")  # a session setting: survives the rollback
        holders = _holders_after_rollback(conn, schema, tables)
        raise DatabaseError(
            f"Gave up {doing} after waiting {waited} (lock_timeout) for a {mode} lock on "
            f"{', '.join(tables)}: {described(holders)}. Nothing was changed. Until that lock is granted every "
            f"new query on the tables would wait too, so this run does not wait longer. End or commit the "
            f"sessions in the way (SELECT pg_terminate_backend(pid) ends one), or run again when they are done; "
            f"the resource's lock_timeout_s sets how long to wait. ({str(exc).strip()})"
        ) from None


def _current_setting(conn: psycopg2.extensions.connection, name: str) -> str:
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_catalog.current_setting(%s)", (name,))
            row = cur.fetchone()
        conn.rollback()
        return row[0] if row else "?"
    except psycopg2.Error:
        rollback_quietly(conn)
        return "?"


def _holders_after_rollback(
    conn: psycopg2.extensions.connection, schema: str, tables: list[str]
) -> list[LockHolder] | None:
    """The sessions in the way, asked on the rolled-back session; None when it cannot answer."""
    try:
        with conn.cursor() as cur:
            holders = lock_holders(cur, schema, tables)
        conn.rollback()
        return holders
    except psycopg2.Error:
        rollback_quietly(conn)
        return None


def described(holders: list[LockHolder] | None) -> str:
    if holders is None:
        return "the sessions holding locks could not be listed"
    if not holders:
        return "the session that held the lock has ended since"
    return "; ".join(holder.describe() for holder in holders[:10]) + (
        f"; and {len(holders) - 10} more" if len(holders) > 10 else ""
    )


def hold_restore_lock(cur: psycopg2.extensions.cursor, schema: str) -> None:
    """Take this schema's restore lock for the transaction, or DatabaseError naming the session restoring now."""
    cur.execute(
        "SELECT pg_catalog.pg_try_advisory_xact_lock(pg_catalog.hashtext(%s), pg_catalog.hashtext(%s))",
        (_RESTORE_LOCK_SPACE, schema),
    )
    row = cur.fetchone()
    if row and row[0]:
        return
    cur.execute(
        "SELECT a.pid, coalesce(a.application_name, ''), a.xact_start FROM pg_catalog.pg_locks l "
        "JOIN pg_catalog.pg_stat_activity a ON a.pid OPERATOR(pg_catalog.=) l.pid "
        "WHERE l.locktype OPERATOR(pg_catalog.=) 'advisory' AND l.granted "
        "AND l.classid::pg_catalog.int4 OPERATOR(pg_catalog.=) pg_catalog.hashtext(%s) "
        "AND l.objid::pg_catalog.int4 OPERATOR(pg_catalog.=) pg_catalog.hashtext(%s) "
        "AND l.pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid()",
        (_RESTORE_LOCK_SPACE, schema),
    )
    other = cur.fetchone()
    who = f" (pid {other[0]}, {other[1] or 'no application_name'}, since {other[2]:%H:%M:%S})" if other else ""
    raise DatabaseError(
        f"Another session is restoring into schema {schema!r} of this database right now{who}. Nothing was "
        f"changed. Wait for it to finish, then restore again if you still need to: two restores into the same "
        f"tables cannot both be right. Runs on one database are queued one at a time by the "
        f"pgvector_pipeline/database tag; check that every launcher sets it."
    )
