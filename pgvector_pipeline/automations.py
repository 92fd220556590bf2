"""What the code location's schedules and sensors being on or off means for a deployment: the `automations` check of
`check` (operations.check). Plain data in and out, no Dagster import: the client reads the states from the webserver
(GraphQL) and adds this check to the report of vector_check_job's run; `--direct` has no Dagster to ask.

The verdict: a schedule or sensor that is off by design until an operator switches it on (retention deletes, the task
sensor truncates, the drill needs room in the database) is listed, nothing more. One whose being off leaves something
undone that a deployment relies on is a warning (the check holds). A failure only when nothing backs up at all: the
backup schedule is off *and* the newest global backup is not recent (recent_backup fails), so no other scheduler is
taking its place either. A stopped backup schedule beside recent global backups is someone else's cron running
`pgvector-pipeline backup`, which is a fine way to run it.
"""

from collections.abc import Mapping
from typing import Any

from pgvector_pipeline.contract import ALERT_SENSOR, BACKUP_SCHEDULE, DISCOVERY_SENSOR, FRESHNESS_SCHEDULE

AUTOMATIONS_CHECK = "automations"
RUNNING = "RUNNING"
STOPPED = "STOPPED"

# What is left undone while each of these is stopped.
WARN_WHEN_STOPPED = {
    BACKUP_SCHEDULE: "no global backup is taken on a schedule (fine when another scheduler runs `pgvector-pipeline "
    f"backup`; else `pgvector-pipeline start {BACKUP_SCHEDULE}`)",
    FRESHNESS_SCHEDULE: "nothing checks on its own that the newest global backup is recent, so an overdue backup "
    "raises no alert",
    ALERT_SENSOR: "failed runs are posted to no one",
    DISCOVERY_SENSOR: "sets copied into the store are not registered, and only runs refresh the inventory",
}


def automations_check(states: Mapping[str, str], recent_backup_holds: bool) -> dict[str, Any]:
    """The `automations` check (as Check.as_dict shapes it) of the schedules' and sensors' `states` ({name: RUNNING or
    STOPPED}), given whether the newest global backup is recent (the recent_backup check)."""
    running = sorted(name for name, status in states.items() if status == RUNNING)
    stopped = sorted(name for name, status in states.items() if status != RUNNING)
    warnings = [f"{name} is stopped: {why}." for name, why in WARN_WHEN_STOPPED.items() if name in stopped]
    data = {"known": True, "running": running, "stopped": stopped, "warnings": warnings}
    if BACKUP_SCHEDULE in stopped and not recent_backup_holds:
        return {
            "name": AUTOMATIONS_CHECK,
            "ok": False,
            "detail": f"Nothing backs up: {BACKUP_SCHEDULE} is stopped and the newest global backup is not recent "
            f"(recent_backup). Start it (`pgvector-pipeline start {BACKUP_SCHEDULE}`), or have another scheduler run "
            f"`pgvector-pipeline backup`.",
            "data": data,
        }
    detail = f"Running: {', '.join(running) or 'none'}. Stopped: {', '.join(stopped) or 'none'}."
    return {
        "name": AUTOMATIONS_CHECK,
        "ok": True,
        "detail": " ".join([detail, *(f"Warning: {warning}" for warning in warnings)]),
        "data": data,
    }


def automations_unknown(why: str) -> dict[str, Any]:
    """The `automations` check where the states cannot be asked for (`why`); not a failure."""
    return {
        "name": AUTOMATIONS_CHECK,
        "ok": True,
        "detail": f"Not known {why}: `pgvector-pipeline schedules` (or the Dagster UI's Automation page) shows which "
        f"schedules and sensors run.",
        "data": {"known": False},
    }


WITHOUT_WEBSERVER = "without the webserver"
