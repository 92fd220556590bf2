"""vector_run_failure_alert_sensor: every failed run of this code location's jobs reaches a person (see alerts)."""

import dagster as dg

from pgvector_pipeline.alerts import Alert, post_alert
from pgvector_pipeline.contract import ALERT_SENSOR


@dg.run_failure_sensor(
    name=ALERT_SENSOR,
    monitor_all_code_locations=False,
    # On from the start: it sends nothing until PGVECTOR_ALERT_WEBHOOK_URL is set, and a failure nobody hears of is
    # what it is for.
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Posts every failed run of this code location to PGVECTOR_ALERT_WEBHOOK_URL (JSON; Slack's format).",
)
def vector_run_failure_alert_sensor(context: dg.RunFailureSensorContext) -> None:
    run = context.dagster_run
    error_type = _error_type(context)
    alert = Alert(
        title=f"{run.job_name} failed" + (f" ({error_type})" if error_type else ""),
        text=context.failure_event.message or "The run failed.",
        details={
            "job": run.job_name,
            "run_id": run.run_id,
            "partition": run.tags.get("dagster/partition", ""),
            "error_type": error_type,
        },
    )
    post_alert(alert, context.log.warning)


def _error_type(context: dg.RunFailureSensorContext) -> str:
    """The failed step's error_type (a pipeline error's, see failures), when one says it."""
    for event in context.get_step_failure_events():
        data = event.step_failure_data
        failure = data.user_failure_data if data else None
        metadata = (failure.metadata or {}) if failure else {}
        value = metadata.get("error_type")
        if value is not None:
            return str(getattr(value, "value", value))
    return ""
