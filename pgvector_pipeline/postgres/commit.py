"""COMMIT with a known outcome.

A COMMIT whose connection drops mid-flight may or may not have been applied by the server. Instead of
guessing, the transaction id is read before the COMMIT, and after a lost connection a new session asks
`pg_xact_status(xid)` what happened: committed, aborted, or (if no session can be had) unknown.
"""

import time
from collections.abc import Callable

import psycopg2
import psycopg2.extensions

from pgvector_pipeline.errors import CommitOutcomeUnknown, DatabaseError, PipelineError
from pgvector_pipeline.postgres import catalog
from pgvector_pipeline.postgres.connection import (
    classify_error,
    connect,
    connection_lost,
)

# How long to keep asking for the outcome after a lost COMMIT: long enough for a server restart.
OUTCOME_ATTEMPTS = 5
OUTCOME_RETRY_DELAY_S = 2.0


def commit_confirmed(
    conn: psycopg2.extensions.connection,
    dsn: str,
    doing: str,
    *,
    if_unknown: str,
    warn: Callable[[str], None],
) -> None:
    """Commit the open transaction of `conn`, which did `doing`.

    Returns when the server committed, even if the acknowledgement was lost (then `warn` says so).
    Raises a retryable DatabaseError when the server rolled it back, and CommitOutcomeUnknown, whose
    message ends with `if_unknown` (what to check), when the outcome cannot be learnt.
    """
    try:
        with conn.cursor() as cur:
            # Assigns an xid if the transaction has none yet, so its fate can be looked up later.
            cur.execute("SELECT pg_catalog.pg_current_xact_id()::pg_catalog.text")
            xid = catalog.single_value(cur)
    except psycopg2.Error as exc:
        raise classify_error(exc, doing, conn) from exc
    try:
        conn.commit()
        return
    except psycopg2.Error as exc:
        if not connection_lost(exc, conn):
            raise classify_error(exc, f"committing ({doing})", conn) from exc
        lost = str(exc).strip()
    status, reason = _transaction_status(dsn, xid)
    if status == "committed":
        warn(
            f"The connection dropped while committing ({doing}): {lost}. A new session confirmed that the "
            f"server committed transaction {xid}."
        )
        return
    if status == "aborted":
        raise DatabaseError(
            f"The connection dropped while committing ({doing}): {lost}. A new session confirmed that the "
            f"server rolled transaction {xid} back, so nothing changed; retry once the server is reachable.",
            can_retry=True,
        )
    raise CommitOutcomeUnknown(
        f"The connection dropped while committing ({doing}): {lost}. Whether the server committed "
        f"transaction {xid} is unknown ({reason}). {if_unknown} Do not simply retry: check first. "
        f"`SELECT pg_xact_status('{xid}')` answers once the server is reachable."
    )


def _transaction_status(dsn: str, xid: str) -> tuple[str | None, str]:
    """('committed' | 'aborted' | None, why None) for `xid`, asking a new session a few times."""
    reason = "not asked yet"
    for attempt in range(OUTCOME_ATTEMPTS):
        if attempt:
            time.sleep(OUTCOME_RETRY_DELAY_S)
        try:
            conn = connect(dsn)
        except PipelineError as error:
            reason = f"no new session could be opened: {error.message}"
            continue
        try:
            with conn, conn.cursor() as cur:
                cur.execute("SELECT pg_catalog.pg_xact_status(%s::pg_catalog.xid8)", (xid,))
                status = catalog.single_value(cur)
        except psycopg2.Error as exc:
            reason = f"asking the server failed: {str(exc).strip()}"
            continue
        finally:
            conn.close()
        if status in ("committed", "aborted"):
            return status, ""
        # 'in progress': the old backend has not finished its COMMIT yet.
        reason = f"the server still reports the transaction as {status}"
    return None, reason
