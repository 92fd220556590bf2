"""vector_truncate_job: truncate langchain_pg_embedding (or both tables) without a backup."""

from collections.abc import Iterator

import dagster as dg

from pgvector_pipeline.assets.metadata import stats_table
from pgvector_pipeline.contract import TRUNCATE_JOB, database_tags
from pgvector_pipeline.failures import failures_reported
from pgvector_pipeline.resources import PgVectorResource
from pgvector_pipeline.run_config import request_config
from pgvector_pipeline.run_requests import TruncateRequest


class TruncateConfig(request_config(TruncateRequest)):  # type: ignore[misc]  # built from TruncateRequest's fields
    """Run config of truncate_vector_tables."""


@dg.op(out=dg.Out(dg.Nothing), description="Truncate LangChain tables and report rows before and after.")
def truncate_vector_tables(
    context: dg.OpExecutionContext, config: TruncateConfig, pgvector: PgVectorResource
) -> Iterator[dg.Output[None]]:
    """Truncate the tables in one statement and report rows before and after."""
    with failures_reported():
        stats = pgvector.get_engine().truncate(config.request(), context.log)
    for s in stats:
        context.log.info(f"Truncated {s.table}: {s.rows_before:,} -> {s.rows_after:,} rows in {s.duration_s:.2f} s.")
    yield dg.Output(
        None,
        metadata={
            "target": pgvector.redacted_dsn,
            "tables": stats_table(stats, ["rows_before", "rows_after", "duration_s"]),
            **{f"{s.table}.rows_before": s.rows_before for s in stats},
        },
    )


@dg.job(
    name=TRUNCATE_JOB,
    tags=database_tags(),
    description="Truncate langchain_pg_embedding (or both tables) without a backup.",
)
def vector_truncate_job() -> None:
    """Truncate langchain_pg_embedding (or both tables) without a backup."""
    truncate_vector_tables()
