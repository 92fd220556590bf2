"""Turning pipeline errors into Dagster failures that read well in the UI, and retrying only lost connections.

Every op, asset and sensor body runs inside `failures_reported`, so a failure a user can cause shows
as a `Failure` with `error_type` and `can_retry` metadata and a plain message, never a traceback.
Retries are requested explicitly (`RetryRequested`) for retryable errors only: no blanket retry
policy re-runs bad input.
"""

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import dagster as dg
import psycopg2

from pgvector_pipeline.contract import MESSAGE_PARTS_METADATA
from pgvector_pipeline.env_numbers import number_from_env
from pgvector_pipeline.errors import PipelineError, parts_to_json
from pgvector_pipeline.postgres.connection import classify_error

RETRY_DELAY_ENV = "PGVECTOR_RETRY_DELAY_S"
DEFAULT_RETRY_DELAY_S = 5.0


def as_failure(error: PipelineError, more: Mapping[str, dg.MetadataValue] | None = None) -> dg.Failure:
    """The Dagster Failure of a pipeline error: its message (the request fields it points to named as run config
    keys), `error_type` and `can_retry`, and, when it points to fields, its parts (for the command line, which names
    them as flags); never retried by policy. `more`: metadata of the op's own (a check's report) besides."""
    metadata: dict[str, dg.MetadataValue | str | bool] = {
        **(more or {}),
        "error_type": error.error_type.value,
        "can_retry": error.can_retry,
    }
    if error.fields:
        metadata[MESSAGE_PARTS_METADATA] = dg.MetadataValue.json(parts_to_json(error.parts))
    return dg.Failure(description=error.message, metadata=metadata, allow_retries=False)


def refusal_at_start(error: PipelineError) -> dg.Failure:
    """The Failure a resource raises to refuse a run before it starts. Dagster reports it as a resource
    initialization failure, which carries no metadata, so the message begins with the error type
    ("INVALID_PARAMS: ..."), where the client reads it."""
    return dg.Failure(
        description=f"{error.error_type.value}: {error.message}",
        metadata={"error_type": error.error_type.value, "can_retry": error.can_retry},
        allow_retries=False,
    )


def retry_delay_s() -> float:
    """Base delay of the exponential back-off, read when a retry is due (not at import)."""
    return number_from_env(
        RETRY_DELAY_ENV, DEFAULT_RETRY_DELAY_S, float, lambda s: s >= 0, "is a number of seconds (0 or more)"
    )


@contextmanager
def failures_reported(
    context: dg.OpExecutionContext | dg.AssetExecutionContext | None = None, max_retries: int = 0
) -> Iterator[None]:
    """Raise PipelineErrors as Failures; retryable ones are retried up to `max_retries` times first."""
    try:
        try:
            yield
        except psycopg2.Error as exc:
            # A driver error the engine did not classify where it happened still reaches the user classified.
            raise classify_error(exc, "running it") from exc
    except PipelineError as error:
        failure = as_failure(error)
        if context is not None and error.can_retry and context.retry_number < max_retries:
            delay = retry_delay_s() * 2**context.retry_number
            context.log.warning(
                f"{error.message} Retrying in {delay:g} s (attempt {context.retry_number + 2} of {max_retries + 1})."
            )
            # When the retries run out, Dagster reports this Failure (the cause) with its metadata.
            raise dg.RetryRequested(max_retries=max_retries, seconds_to_wait=delay) from failure
        raise failure from error
