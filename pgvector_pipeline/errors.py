"""Errors the pipeline raises, classified the way the Dagster layer reports them.

Kept free of Dagster so the Postgres and store layers can raise them; `failures.py` turns them into a
`dagster.Failure` with `error_type` and `can_retry` metadata. The docstring of the class that defines each
`error_type` is what that type means: the documentation's error reference is generated from it.
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
    """Bad input: a task id, timestamp, partition key, path, table list or DSN; fix the input."""

    error_type = ErrorType.INVALID_PARAMS


class ResourceNotFound(PipelineError):
    """Something named does not exist: a task directory, set, table, extension, database or role."""

    error_type = ErrorType.RESOURCE_NOT_FOUND


class DatabaseError(PipelineError):
    """PostgreSQL refused or failed, classified by SQLSTATE: retryable (`can_retry`) for lost connections, server
    restarts, deadlocks and serialization failures; never for lock or statement timeouts, missing privileges or a
    read-only server, which the message names as such."""

    error_type = ErrorType.DATABASE_ERROR


class DataError(PipelineError):
    """A set is damaged, changed or unverifiable, or its rows do not fit the target."""

    error_type = ErrorType.DATA_ERROR


class FilesDamaged(DataError):
    """A set's stored file is not what its manifest records (other bytes, cut short, not decodable): the set itself is
    damaged, not only this read of it."""


class StorageError(PipelineError):
    """The backup root cannot be written or read: a full disk (the message says what is free and what the set
    needs), permissions, an S3 server that cannot be reached or answers 5xx after 3 attempts (within a minute when
    the endpoint stops answering; `can_retry`), a server that ignores conditional writes."""

    error_type = ErrorType.STORAGE_ERROR


class CommitOutcomeUnknown(PipelineError):
    """The connection dropped during COMMIT and no new session could learn the outcome: check before retrying.
    Never retried: running the work again could apply it twice (or truncate a restored table)."""

    error_type = ErrorType.COMMIT_OUTCOME_UNKNOWN
