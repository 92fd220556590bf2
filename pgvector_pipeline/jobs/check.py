"""vector_check_job: does this deployment work? The checks of `check` (pgvector_pipeline.operations.check) run where the
code server is, with its environment: its DSN variable, its PGVECTOR_BACKUP_ROOT (and PGVECTOR_OTHER_BACKUP_ROOT), its
settings. The run fails, naming each problem, when a check fails; its report is the op's result either way."""

import os
from collections.abc import Iterator

import dagster as dg

from pgvector_pipeline.contract import CHECK_JOB, RESULT_METADATA, database_tags
from pgvector_pipeline.errors import PipelineError
from pgvector_pipeline.failures import as_failure, failures_reported
from pgvector_pipeline.operations.check import Check, ExtraCheck
from pgvector_pipeline.resources import BackupStoreResource, OtherBackupStoreResource, PgVectorResource
from pgvector_pipeline.resources.backup_store import OTHER_ROOT_ENV
from pgvector_pipeline.store.interface import BackupStore


@dg.op(
    out=dg.Out(dg.Nothing),
    description="Check the database (pgvector, tables, each operation's privileges), the store (a claim made and "
    "released, free space) and the newest global backup's age. Changes nothing; fails naming each problem.",
)
def check_deployment(
    context: dg.OpExecutionContext,
    pgvector: PgVectorResource,
    backup_store: BackupStoreResource,
    other_backup_store: OtherBackupStoreResource,
) -> Iterator[dg.Output[None]]:
    """Run every check; one log line each; fail the run naming each problem."""
    with failures_reported():
        engine = pgvector.get_engine(backup_store.store())
        other, extra = _other_store(other_backup_store)
        report = engine.check(other, extra)
    for check in report.checks:
        (context.log.info if check.ok else context.log.error)(check.line)
    result = {RESULT_METADATA: dg.MetadataValue.json(report.as_dict())}
    if not report.ok:
        # The report rides on the failure: the client prints it as it does a passing one.
        raise as_failure(report.failure(), result)
    yield dg.Output(
        None,
        metadata={
            "target": pgvector.redacted_dsn,
            "checks": dg.MetadataValue.table(
                records=[
                    dg.TableRecord({"check": c.name, "ok": str(c.ok).lower(), "detail": c.detail})
                    for c in report.checks
                ],
                schema=dg.TableSchema(
                    columns=[dg.TableColumn("check"), dg.TableColumn("ok"), dg.TableColumn("detail")]
                ),
            ),
            **result,
        },
    )


def _other_store(resource: OtherBackupStoreResource) -> tuple[BackupStore | None, list[ExtraCheck]]:
    """The other store when the code server has one (PGVECTOR_OTHER_BACKUP_ROOT); a root that names no store is the
    other_store check failing."""
    if not os.environ.get(OTHER_ROOT_ENV):
        return None, []
    try:
        return resource.store(), []
    except PipelineError as error:
        refused = Check("other_store", False, error.message, {"error_type": error.error_type.value})
        return None, [lambda: refused]


@dg.job(
    name=CHECK_JOB,
    # It reads the database: queued behind a run that changes it (the instance's per-database limit).
    tags=database_tags(),
    description="Check that the deployment works (what `pgvector-pipeline check` runs): the database and pgvector, "
    "the privileges of backup, truncate and restore, the store (a claim made and released), free space, the newest "
    "global backup's age. Fails naming each problem.",
)
def vector_check_job() -> None:
    """Check that the deployment works."""
    check_deployment()
