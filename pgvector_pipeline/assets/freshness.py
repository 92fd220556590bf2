"""recent_global_backup: a check on the inventory that fails when no complete global backup is recent,
so a schedule that silently stopped shows up red in the UI."""

from datetime import datetime

import dagster as dg

from pgvector_pipeline.alerts import Alert, post_alert
from pgvector_pipeline.assets.inventory import INVENTORY
from pgvector_pipeline.contract import FRESHNESS_CHECK
from pgvector_pipeline.env_numbers import number_from_env
from pgvector_pipeline.resources import BackupStoreResource
from pgvector_pipeline.store.layout import GLOBAL_TASK_KEY

MAX_AGE_ENV = "PGVECTOR_GLOBAL_BACKUP_MAX_AGE_HOURS"
# A daily schedule plus two hours of slack for a slow or late run.
DEFAULT_MAX_AGE_HOURS = 26.0


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
    max_age_h = number_from_env(
        MAX_AGE_ENV, DEFAULT_MAX_AGE_HOURS, float, lambda h: h > 0, "is a number of hours above 0"
    )
    store = backup_store.store()
    newest = next((s for s in store.list_sets(global_only=True) if s.complete), None)
    if newest is None:
        return dg.AssetCheckResult(
            passed=False,
            description=f"There is no complete global backup in {store.location(GLOBAL_TASK_KEY)}.",
            metadata={"max_age_hours": max_age_h},
        )
    age_h = (datetime.now().astimezone() - newest.taken_at).total_seconds() / 3600
    passed = age_h <= max_age_h
    return dg.AssetCheckResult(
        passed=passed,
        description=(
            f"The newest complete global backup, {newest.timestamp}, is {age_h:.1f} h old"
            + ("." if passed else f": older than {max_age_h:g} h. Is daily_vector_backup_schedule running?")
        ),
        metadata={"newest_set": newest.timestamp, "age_hours": round(age_h, 2), "max_age_hours": max_age_h},
    )
