"""Opening connections, keeping passwords out of messages, and classifying driver errors.

Every message built from a driver error goes through `redact_secrets`: libpq's DSN parse errors quote
the offending token, which can be the password, so quoted tokens never reach a message, a log or a
Dagster event. Parse errors are raised `from None`, because Dagster also records the cause chain.
"""

import re
import urllib.parse

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

# libpq quotes tokens of the DSN in its messages ("invalid percent-encoded token: "pw%zz"").
_QUOTED = re.compile(r'"[^"]*"')
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


def dsn_password(dsn: str) -> str | None:
    """The password a DSN carries, or None (also when the DSN cannot be parsed)."""
    try:
        return psycopg2.extensions.parse_dsn(dsn).get("password") or None
    except psycopg2.Error:
        return None


def redact_secrets(text: str, dsn: str) -> str:
    """`text` without the DSN's password, raw or percent-encoded."""
    password = dsn_password(dsn)
    if password:
        for form in {password, urllib.parse.quote(password, safe=""), urllib.parse.quote(password)}:
            text = text.replace(form, "***")
    return text


def _without_quoted_tokens(libpq_message: str) -> str:
    """A libpq DSN parse error with its quoted DSN tokens hidden ('"="' stays: it names a missing sign)."""
    return _QUOTED.sub(lambda m: m.group(0) if len(m.group(0)) <= 3 else '"***"', libpq_message)


def redact_dsn(dsn: str) -> str:
    """The DSN without its password, fit for logs, metadata and manifests."""
    try:
        params = psycopg2.extensions.parse_dsn(dsn)
    except psycopg2.Error:
        return "<unparseable DSN>"
    if "password" in params:
        params["password"] = "***"
    return psycopg2.extensions.make_dsn(**params)


def connect(dsn: str, application_name: str = APPLICATION_NAME) -> psycopg2.extensions.connection:
    """A new connection for `dsn`; InvalidParams or a classified DatabaseError, never the driver's message with a password."""
    if not dsn:
        raise InvalidParams(
            "No database connection string was given. Set PGVECTOR_DSN (for example "
            "'postgresql://user@host:5432/dbname'; keep the password in PGPASSWORD or ~/.pgpass)."
        )
    if "\x00" in dsn:
        raise InvalidParams("The connection string contains a NUL character. Check PGVECTOR_DSN.")
    try:
        return psycopg2.connect(dsn, application_name=application_name, connect_timeout=CONNECT_TIMEOUT_S)
    except psycopg2.ProgrammingError as exc:
        detail = _without_quoted_tokens(redact_secrets(str(exc).strip(), dsn))
        error: PipelineError = InvalidParams(
            f"The connection string is not valid ({detail}). Check PGVECTOR_DSN: a URI needs '%' written as "
            f"'%25', and key=value pairs need '=' (tokens of the DSN are not repeated here, as they may hold "
            f"the password)."
        )
    except psycopg2.OperationalError as exc:
        error = classify_connect_error(exc, dsn)
    # Raised outside the handler: the driver's exception, whose text may hold the password, is neither
    # the cause nor the context of what Dagster records.
    raise error


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
            f"PGVECTOR_DSN points at it.",
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
    """True when `exc` means the session is gone (not a statement the server rejected).

    A backend killed mid-COPY surfaces as a bare DatabaseError, so a closed `conn` counts as lost too.
    """
    if isinstance(exc, psycopg2.errors.QueryCanceled):
        return False
    return isinstance(exc, psycopg2.OperationalError) or (conn is not None and conn.closed != 0)


def classify_error(
    exc: psycopg2.Error, doing: str, conn: psycopg2.extensions.connection | None = None
) -> PipelineError:
    """Wrap a driver error raised while `doing` something (before any COMMIT was sent) into a pipeline error.

    Lost connections and terminated backends are retryable; bad data and constraint violations are not,
    because running the same thing again would fail the same way. COMMITs go through
    `commit.commit_confirmed`, which learns the outcome instead of assuming one.
    """
    detail = str(exc).strip().rstrip(".")
    if connection_lost(exc, conn):
        return DatabaseError(
            f"The database connection failed while {doing}: {detail}. Nothing was committed; "
            "retry once the server is reachable.",
            can_retry=True,
        )
    if isinstance(exc, (psycopg2.DataError, psycopg2.IntegrityError)):
        return DataError(f"PostgreSQL rejected the data while {doing}: {detail}")
    return DatabaseError(f"PostgreSQL reported an error while {doing}: {detail}")
