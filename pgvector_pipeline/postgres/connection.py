"""Opening connections, keeping passwords out of messages, and classifying driver errors."""

import psycopg2
import psycopg2.errors
import psycopg2.extensions

from pgvector_pipeline.errors import DatabaseError, DataError, InvalidParams, PipelineError

APPLICATION_NAME = "pgvector_pipeline"


def redact_dsn(dsn: str) -> str:
    """The DSN without its password, fit for logs, metadata and manifests."""
    try:
        params = psycopg2.extensions.parse_dsn(dsn)
    except psycopg2.ProgrammingError:
        return "<unparseable DSN>"
    if "password" in params:
        params["password"] = "***"
    return psycopg2.extensions.make_dsn(**params)


def connect(dsn: str) -> psycopg2.extensions.connection:
    if not dsn:
        raise InvalidParams(
            "No database connection string was given. Set PGVECTOR_DSN (for example "
            "'postgresql://user@host:5432/dbname'; keep the password in PGPASSWORD or ~/.pgpass)."
        )
    try:
        return psycopg2.connect(dsn, application_name=APPLICATION_NAME, connect_timeout=10)
    except psycopg2.ProgrammingError as exc:
        raise InvalidParams(f"The connection string is not valid: {exc}".strip()) from exc
    except psycopg2.OperationalError as exc:
        raise DatabaseError(
            f"Cannot connect to PostgreSQL at {redact_dsn(dsn)}: {str(exc).strip()}. "
            "Check that the server is running and that PGVECTOR_DSN points at it.",
            can_retry=True,
        ) from exc


def classify_error(
    exc: psycopg2.Error, doing: str, conn: psycopg2.extensions.connection | None = None
) -> PipelineError:
    """Wrap a driver error raised while `doing` something into a pipeline error with a clear message.

    Lost connections and terminated backends are retryable; bad data and constraint violations are not,
    because running the same thing again would fail the same way. A backend killed mid-COPY surfaces as
    a bare DatabaseError, so a closed `conn` counts as a lost connection too.
    """
    detail = str(exc).strip()
    lost = isinstance(exc, psycopg2.OperationalError) or (conn is not None and conn.closed != 0)
    if lost and not isinstance(exc, psycopg2.errors.QueryCanceled):
        return DatabaseError(
            f"The database connection failed while {doing}: {detail}. Nothing was committed; "
            "retry once the server is reachable.",
            can_retry=True,
        )
    if isinstance(exc, (psycopg2.DataError, psycopg2.IntegrityError)):
        return DataError(f"PostgreSQL rejected the data while {doing}: {detail}")
    return DatabaseError(f"PostgreSQL reported an error while {doing}: {detail}")
