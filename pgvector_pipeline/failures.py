"""Turning pipeline errors into Dagster failures that read well in the UI."""

import dagster as dg

from pgvector_pipeline.errors import PipelineError


def as_failure(error: PipelineError) -> dg.Failure:
    # Only retryable errors (lost connections) go through the retry policy; bad input fails at once.
    return dg.Failure(
        description=error.message,
        metadata={"error_type": error.error_type.value, "can_retry": error.can_retry},
        allow_retries=error.can_retry,
    )
