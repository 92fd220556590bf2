"""Opening connections, keeping passwords out of messages, and classifying driver errors.

Every message built from a driver error goes through `redact_secrets`: libpq's DSN parse errors quote
the offending token, which can be the password, so quoted tokens never reach a message, a log or a
Dagster event. Parse errors are raised `from None`, because Dagster also records the cause chain.
"""

import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import cast

import psycopg2
import psycopg2.errors
import psycopg2.extensions

from pgvector_pipeline.errors import (
    DatabaseError,
    DataError,
    InvalidParams,
    PipelineError,
    ResourceNotFound,
)

APPLICATION_NAME = "pgvector_pipeline"
CONNECT_TIMEOUT_S = 10

# Connection failures that end by themselves: the server is down, restarting or full.
_TRANSIENT_CONNECT_FAILURES = (
    "connection refused",
    "no such file or directory",  # the Unix socket is gone while the server is down
    "timeout expired",
    "could not receive data",
    "could not send data",
    "connection reset",
    "server closed the connection",
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "the database system is not yet accepting connections",
    "terminating connection",
    "too many clients",
    "remaining connection slots",
)


# libpq connection parameters whose values are secrets: never shown in a message, a log, metadata or a manifest.
SECRET_PARAMETERS = ("password", "sslpassword", "oauth_client_secret")
# What a session of this project sets for itself instead of inheriting the role's or database's settings
# (ALTER ROLE ... SET): pg_dump does the same. row_security off makes a role subject to a row-level security
# policy fail with an error instead of silently reading (and backing up, counting, truncating around) only
# the rows the policy shows it; no statement or idle timeout may end a backup whose helper sessions export
# while this one waits idle in its transaction. An empty search_path, as pg_dump has set since CVE-2018-1058: a
# role that can create objects in a schema on the path (one it owns; `public` of a database it owns) could otherwise
# plant a `count`, an `=` or a `vector_dims` that our unqualified SQL would call with our privileges. With it, an
# unqualified function, operator or type resolves in pg_catalog only; everything else we name is qualified.
_SESSION_SETTINGS = {
    "search_path": "",
    "row_security": "off",
    "statement_timeout": "0",
    "idle_in_transaction_session_timeout": "0",
}
# PostgreSQL 17 added transaction_timeout; older servers reject the name.
_SESSION_SETTINGS_17 = {"transaction_timeout": "0"}
# PostgreSQL notices a dead client only when it next writes to it: the session of a killed restore went on building
# an index, holding writers off. Since PostgreSQL 14 it can look every second during a long statement and stop.
_SESSION_SETTINGS_14 = {"client_connection_check_interval": "1s"}
# How long any lock request of this project may wait (lock_timeout) unless the caller says otherwise. An
# ACCESS EXCLUSIVE request that waits makes every later query on the table wait behind it: the wait must be short.
DEFAULT_LOCK_TIMEOUT_S = 10.0
# Bytes per CopyData message. The server parses a message only once it has all of it: with 1 MiB messages
# its process waited for data a fifth of a restore (busy 82 %), with 64 KiB it is busy 97 % (bench/).
COPY_MESSAGE_BYTES = 64 << 10
# SQLSTATEs of a session that is gone: class 08 (connection exception) and the server's shutdown/restart codes.
_SESSION_GONE_STATES = frozenset({"57P01", "57P02", "57P03", "25P03"})


def dsn_secrets(dsn: str) -> list[str]:
    """The secret values a DSN carries (password, sslpassword, ...); [] also when the DSN cannot be parsed."""
    try:
        params = psycopg2.extensions.parse_dsn(dsn)
    except psycopg2.Error:
        return []
    return [params[name] for name in SECRET_PARAMETERS if params.get(name)]


def redact_secrets(text: str, dsn: str) -> str:
    """`text` without any secret value of the DSN, raw or percent-encoded."""
    for secret in sorted(dsn_secrets(dsn), key=len, reverse=True):
        for form in {secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote(secret)}:
            text = text.replace(form, "***")
    return text


# Fixed phrases of libpq's DSN parse errors, and what to do about each: the message itself is never shown,
# because it quotes the DSN around the faulty token, and a token can hold (or run into) the password.
_PARSE_HINTS = (
    ("percent-encoded", "a URI needs '%' written as '%25'"),
    ('missing "="', "key=value pairs need '='"),
    ("unterminated quoted string", "a quoted value is not closed"),
    ("invalid connection option", "it names a connection option libpq does not know"),
    ("invalid URI", "the URI is malformed"),
    ("invalid integer value", "a numeric option has a value that is not a number"),
)


def redact_dsn(dsn: str) -> str:
    """The DSN without its secrets, fit for logs, metadata and manifests."""
    try:
        params = psycopg2.extensions.parse_dsn(dsn)
    except psycopg2.Error:
        return "<unparseable DSN>"
    for name in SECRET_PARAMETERS:
        if name in params:
            params[name] = "***"
    return cast(str, psycopg2.extensions.make_dsn(**params))


def connect(
    dsn: str, application_name: str = APPLICATION_NAME, lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S
) -> psycopg2.extensions.connection:
    """A new connection for `dsn` with this project's session settings (row_security off, no statement or idle
    timeouts, lock waits bounded by `lock_timeout_s`); InvalidParams or a classified DatabaseError, never the
    driver's message with a secret."""
    if not dsn:
        raise InvalidParams(
            "No database connection string was given. Set PGVECTOR_DSN (for example "
            "'postgresql://user@host:5432/dbname'; keep the password in PGPASSWORD or ~/.pgpass)."
        )
    if "\x00" in dsn:
        raise InvalidParams("The connection string contains a NUL character. Check PGVECTOR_DSN.")
    try:
        conn = psycopg2.connect(dsn, application_name=application_name, connect_timeout=CONNECT_TIMEOUT_S)
    except psycopg2.ProgrammingError as exc:
        lowered = str(exc).lower()
        hints = [hint for phrase, hint in _PARSE_HINTS if phrase.lower() in lowered]
        error: PipelineError = InvalidParams(
            f"The connection string cannot be parsed ({'; '.join(hints) or 'libpq rejected it'}). Check "
            f"PGVECTOR_DSN. libpq's own message is not shown: it quotes the connection string, which may hold "
            f"the password."
        )
    except psycopg2.OperationalError as exc:
        error = classify_connect_error(exc, dsn)
    else:
        _apply_session_settings(conn, dsn, lock_timeout_s)
        return conn
    # Raised outside the handler: the driver's exception, whose text may hold the password, is neither
    # the cause nor the context of what Dagster records.
    raise error


def _apply_session_settings(conn: psycopg2.extensions.connection, dsn: str, lock_timeout_s: float) -> None:
    settings = {**_SESSION_SETTINGS, "lock_timeout": f"{max(int(lock_timeout_s * 1000), 1)}ms"}
    if conn.server_version >= 140000:
        settings.update(_SESSION_SETTINGS_14)
    if conn.server_version >= 170000:
        settings.update(_SESSION_SETTINGS_17)
    try:
        conn.autocommit = True  # session-level settings, outside any transaction
        with conn.cursor() as cur:
            cur.execute(
                # Qualified: until it is set, the path is the role's or database's, which a database owner can change.
                "SELECT " + ", ".join(["pg_catalog.set_config(%s, %s, false)"] * len(settings)),
                [value for pair in settings.items() for value in pair],
            )
        conn.autocommit = False
    except psycopg2.Error as exc:
        conn.close()
        raise classify_error(exc, "configuring the session", None) from None


class SessionUnavailable(Exception):
    """No further session can be had now (no free connection slot, the role's connection limit, …) for work the
    caller's own session can also do, slower; the message says why."""


def further_session(dsn: str, application_name: str = APPLICATION_NAME) -> psycopg2.extensions.connection:
    """One more session beside the caller's, or SessionUnavailable saying why none can connect."""
    try:
        return connect(dsn, application_name=application_name)
    except PipelineError as error:  # redacted and classified by connect()
        raise SessionUnavailable(error.message) from None


def rollback_quietly(conn: psycopg2.extensions.connection) -> None:
    """Roll back, as cleanup: never raises, so the error that made the caller clean up is the one reported.

    A session that is gone needs nothing: the server rolls back what it had.
    """
    if conn.closed:
        return
    try:
        conn.rollback()
    except psycopg2.Error:
        pass


def classify_connect_error(exc: psycopg2.Error, dsn: str) -> PipelineError:
    """A failed connection attempt: retryable only while the server is down, restarting or full.

    A server that answered with a refusal (unknown database or role, failed authentication, pg_hba)
    will answer the same way on every retry.
    """
    detail = redact_secrets(str(exc).strip(), dsn)
    lowered = detail.lower()
    where = redact_dsn(dsn)
    if any(marker in lowered for marker in _TRANSIENT_CONNECT_FAILURES) or "fatal:" not in lowered:
        return DatabaseError(
            f"Cannot connect to PostgreSQL at {where}: {detail}. Check that the server is running and that "
            f"the DSN (PGVECTOR_DSN, or the variable named by dsn_env) points at it.",
            can_retry=True,
        )
    if "does not exist" in lowered:
        return ResourceNotFound(
            f"PostgreSQL at {where} refused the connection: {detail}. Check the database and user names in "
            f"PGVECTOR_DSN."
        )
    if "authentication" in lowered or "password" in lowered or "pg_hba.conf" in lowered:
        return DatabaseError(
            f"PostgreSQL at {where} refused the login: {detail}. Check the user in PGVECTOR_DSN and its "
            f"password in PGPASSWORD or ~/.pgpass."
        )
    return DatabaseError(f"PostgreSQL at {where} refused the connection: {detail}.")


def connection_lost(exc: psycopg2.Error, conn: psycopg2.extensions.connection | None) -> bool:
    """True when `exc` means the session is gone (not a statement the server rejected or cancelled).

    Told by SQLSTATE, not by exception class: psycopg2 raises OperationalError for lock timeouts,
    cancelled statements and deadlocks too. A backend killed mid-COPY surfaces as a bare DatabaseError
    with no SQLSTATE, so a closed `conn` counts as lost as well.
    """
    if conn is not None and conn.closed != 0:
        return True
    code = getattr(exc, "pgcode", None)
    if code is None:
        # Raised by libpq itself (no server message): the socket broke or the server went away.
        return isinstance(exc, (psycopg2.OperationalError, psycopg2.InterfaceError))
    return code.startswith("08") or code in _SESSION_GONE_STATES


def classify_error(
    exc: psycopg2.Error, doing: str, conn: psycopg2.extensions.connection | None = None
) -> PipelineError:
    """Wrap a driver error raised while `doing` something (before any COMMIT was sent) into a pipeline error,
    by its SQLSTATE.

    Lost connections, server restarts, deadlocks and serialization failures are retryable; lock and
    statement timeouts, missing privileges, bad data and constraint violations are not, because running
    the same thing again would meet the same cause. The transaction is always rolled back: callers say
    what that leaves. COMMITs go through `commit.commit_confirmed`, which learns the outcome instead.
    """
    detail = str(exc).strip().rstrip(".")
    code = getattr(exc, "pgcode", None)
    if connection_lost(exc, conn):
        return DatabaseError(
            f"The database connection failed while {doing}: {detail}. Nothing was committed; "
            "retry once the server is reachable.",
            can_retry=True,
        )
    if code == "40P01":
        return DatabaseError(
            f"PostgreSQL detected a deadlock while {doing} and cancelled this transaction: another session "
            f"waited for a lock this one held while holding one this one needed (an app that reads, then "
            f"writes the tables in one transaction can do that). Nothing was committed; retrying is safe. "
            f"Server message: {detail}",
            can_retry=True,
        )
    if code == "40001":
        return DatabaseError(
            f"PostgreSQL cancelled this transaction while {doing} (serialization failure: {detail}). Nothing was "
            f"committed; retrying is safe.",
            can_retry=True,
        )
    if code == "55P03":
        return DatabaseError(
            f"A lock was not granted within lock_timeout while {doing}: {detail}. Another session holds a "
            f"conflicting lock; nothing was committed. See which sessions hold locks on the tables "
            f"(pg_locks, pg_stat_activity), or raise the resource's lock_timeout_s."
        )
    if code == "57014":
        return DatabaseError(
            f"PostgreSQL cancelled a statement while {doing}: {detail} (a cancel request such as pg_cancel_backend, "
            f"or a statement timeout). Nothing was committed."
        )
    if code == "42501":
        return DatabaseError(
            f"The database role lacks a privilege needed while {doing}: {detail}. Nothing was committed. Grant "
            f"the privilege, or use a role that has it (see docs/how-it-works/restores.md, Privileges)."
        )
    if code == "25006":
        return DatabaseError(
            f"The database refused to write while {doing}: {detail}. The server is a read-only standby, or "
            f"default_transaction_read_only is on for this role or database. Nothing was committed."
        )
    if code == "53100":
        return DatabaseError(
            f"The database server ran out of disk space while {doing}: {detail}. Nothing was committed: the "
            f"tables are as they were, and the space the load took is free again. Until it commits, a restore "
            f"keeps the live rows beside the new ones; free space on the server and retry."
        )
    if isinstance(exc, (psycopg2.DataError, psycopg2.IntegrityError)):
        return DataError(f"PostgreSQL rejected the data while {doing}: {detail}")
    return DatabaseError(f"PostgreSQL reported an error while {doing}: {detail}")


@contextmanager
def classified(doing: str, conn: psycopg2.extensions.connection | None = None) -> Iterator[None]:
    """Driver errors inside the block become classified pipeline errors (see classify_error)."""
    try:
        yield
    except psycopg2.Error as exc:
        raise classify_error(exc, doing, conn) from exc
