"""recent_global_backup: a check on the inventory that fails when no complete global backup is recent,
so a schedule that silently stopped shows up red in the UI."""

import dagster as dg

from pgvector_pipeline.alerts import Alert, post_alert
from pgvector_pipeline.assets.inventory import INVENTORY
from pgvector_pipeline.contract import FRESHNESS_CHECK
from pgvector_pipeline.operations.global_freshness import DEFAULT_MAX_AGE_HOURS, MAX_AGE_ENV, global_freshness
from pgvector_pipeline.resources import BackupStoreResource


@dg.asset_check(
    asset=INVENTORY,
    name=FRESHNESS_CHECK,
    description=(
        f"Fails when the newest complete set in {{root}}/vector_bak/ is older than {MAX_AGE_ENV} hours (default "
        f"{DEFAULT_MAX_AGE_HOURS:g}), or there is none. Runs with every inventory refresh and hourly."
    ),
)
def recent_global_backup(
    context: dg.AssetCheckExecutionContext, backup_store: BackupStoreResource
) -> dg.AssetCheckResult:
    """Age of the newest complete global set against the allowed maximum; a failure is also posted as an alert."""
    result = _freshness(backup_store)
    if not result.passed:
        post_alert(
            Alert("No recent global backup", result.description or "", {"check": FRESHNESS_CHECK}), context.log.warning
        )
    return result


def _freshness(backup_store: BackupStoreResource) -> dg.AssetCheckResult:
    result = global_freshness(backup_store.store())
    return dg.AssetCheckResult(passed=result.passed, description=result.description, metadata=result.metadata)
