"""Errors the pipeline raises, classified the way the Dagster layer reports them.

Kept free of Dagster so the Postgres and store layers can raise them; `failures.py` turns them into a
`dagster.Failure` with `error_type` and `can_retry` metadata.
"""

from enum import StrEnum


class ErrorType(StrEnum):
    """The `error_type` a failure carries in its Dagster metadata."""

    INVALID_PARAMS = "INVALID_PARAMS"
    RESOURCE_NOT_FOUND = "RESOURCE_NOT_FOUND"
    DATABASE_ERROR = "DATABASE_ERROR"
    DATA_ERROR = "DATA_ERROR"
    # The backup root could not be written: disk full, permissions, I/O errors.
    STORAGE_ERROR = "STORAGE_ERROR"
    # The connection dropped while COMMIT was in flight and the outcome could not be learnt afterwards.
    COMMIT_OUTCOME_UNKNOWN = "COMMIT_OUTCOME_UNKNOWN"


class PipelineError(Exception):
    """A failure with a plain-language message that says what went wrong and how to fix it."""

    error_type: ErrorType = ErrorType.DATA_ERROR

    def __init__(self, message: str, *, can_retry: bool = False):
        super().__init__(message)
        self.message = message
        self.can_retry = can_retry


def with_outcome(error: PipelineError, outcome: str) -> PipelineError:
    """The same error (type, retryability) with what it left behind said after its message."""
    return type(error)(f"{error.message.rstrip('.')}. {outcome}", can_retry=error.can_retry)


class InvalidParams(PipelineError):
    """Bad input: fix the task id, timestamp, path, table list or DSN."""

    error_type = ErrorType.INVALID_PARAMS


class ResourceNotFound(PipelineError):
    """Something named does not exist: directory, set, table, extension, database."""

    error_type = ErrorType.RESOURCE_NOT_FOUND


class DatabaseError(PipelineError):
    """PostgreSQL refused or failed; retryable only when the connection was lost."""

    error_type = ErrorType.DATABASE_ERROR


class DataError(PipelineError):
    """A set is damaged or unverifiable, or its rows do not fit the target."""

    error_type = ErrorType.DATA_ERROR


class FilesDamaged(DataError):
    """A set's stored file is not what its manifest records (other bytes, cut short, not decodable): the set itself is
    damaged, not only this read of it."""


class StorageError(PipelineError):
    """The backup root cannot be written (disk full, permissions)."""

    error_type = ErrorType.STORAGE_ERROR


class CommitOutcomeUnknown(PipelineError):
    """Never retried: running the work again could apply it twice (or truncate a restored table)."""

    error_type = ErrorType.COMMIT_OUTCOME_UNKNOWN
