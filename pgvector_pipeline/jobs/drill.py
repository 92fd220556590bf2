"""vector_restore_drill_job: prove a set restores by restoring it into a scratch schema, comparing it by content
(and, for `verify`, the live tables with it), and dropping it; what a rollback would take, and how old its data is."""

from collections.abc import Iterator, Mapping
from typing import cast

import dagster as dg

from pgvector_pipeline.assets.metadata import Metadata
from pgvector_pipeline.contract import (
    BACKUP_SET_TAG,
    DRILL_JOB,
    RESULT_METADATA,
    database_tags,
    partition_key,
    result_tags,
)
from pgvector_pipeline.failures import failures_reported
from pgvector_pipeline.operations.drill import DrillResult, set_to_drill
from pgvector_pipeline.resources import BackupStoreResource, PgVectorResource
from pgvector_pipeline.run_config import request_config
from pgvector_pipeline.run_requests import DrillRequest
from pgvector_pipeline.store.layout import task_key
from pgvector_pipeline.store.naming import LATEST, latest_note


class DrillConfig(request_config(DrillRequest)):  # type: ignore[misc]  # built from DrillRequest's fields
    """Run config of vector_restore_drill."""


@dg.op(
    out=dg.Out(dg.Nothing),
    description="Restore a set into a scratch schema of the database, compare it by content, drop it.",
)
def vector_restore_drill(
    context: dg.OpExecutionContext, config: DrillConfig, pgvector: PgVectorResource, backup_store: BackupStoreResource
) -> Iterator[dg.Output[None]]:
    """Restore the chosen set into a scratch schema, compare, drop; fail if it did not restore as recorded."""
    with failures_reported():
        request: DrillRequest = config.request()
        store = backup_store.store()
        backup_set = set_to_drill(store, task_key(request.task_id or None), request.timestamp)
        if request.timestamp == LATEST:
            context.log.info(latest_note(backup_set))
        context.instance.add_run_tags(
            context.run_id, {BACKUP_SET_TAG: partition_key(backup_set.task, backup_set.timestamp)}
        )
        result = pgvector.get_engine().drill(backup_set, request, context.log)
        context.instance.add_run_tags(context.run_id, result_tags(result.rows_restored, backup_set.total_bytes))
        for t in result.tables:
            context.log.info(
                f"{t.table}: {t.restored_rows:,} rows restored of {t.set_rows:,} recorded, digest {t.restored_digest}"
                + ("" if t.live_equal is None else f"; live table {'equal' if t.live_equal else 'DIFFERS'}")
                + ("" if t.live_rows is None else f" ({t.live_rows:,} rows)")
                + "."
            )
    yield dg.Output(None, metadata=drill_metadata(partition_key(backup_set.task, backup_set.timestamp), result))


# The columns of the UI's table of compared tables (the report's), and their kinds.
_TABLE_COLUMNS = {
    "table": "string",
    "set_rows": "int",
    "restored_rows": "int",
    "live_rows": "int",
    "live_equal": "string",
    "digest": "string",
}


def drill_metadata(backup_set: str, result: DrillResult) -> Metadata:
    """The drill's output metadata for the UI, and its report (RESULT_METADATA) for the client: both from one
    rendering, DrillResult.report."""
    report = result.report()
    return {
        "backup_set": backup_set,
        "restore_s": report["restore_s"],
        "data_age_hours": report["data_age_hours"],
        "live_equal": {True: "yes", False: "no", None: "not compared"}[report["live_equal"]],
        "tables": dg.MetadataValue.table(
            records=[
                dg.TableRecord(
                    {
                        name: (str(value).lower() if isinstance(value, bool) else value)
                        # Each of a TableReport's values is one of these (mypy reads a TypedDict's values as object).
                        for name, value in cast(Mapping[str, str | int | bool | None], table).items()
                        if name in _TABLE_COLUMNS
                    }
                )
                for table in report["tables"]
            ],
            schema=dg.TableSchema(columns=[dg.TableColumn(name, kind) for name, kind in _TABLE_COLUMNS.items()]),
        ),
        RESULT_METADATA: dg.MetadataValue.json(report),
    }


@dg.job(
    name=DRILL_JOB,
    tags=database_tags(),
    description="Restore drill: restore a set (default: the newest complete global one) into a scratch schema, "
    "compare it by content (and the live tables, with compare_live), report the restore's time and the data's age, "
    "drop it. The live tables are only read.",
)
def vector_restore_drill_job() -> None:
    """Prove a set restores."""
    vector_restore_drill()
