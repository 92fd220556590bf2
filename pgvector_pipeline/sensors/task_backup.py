"""task_backup_sensor: a new task directory under the backup root gets a backup into its vector_bak/.

A training task about to rewrite the vectors creates {root}/{task_id}/; this sensor starts a backup into
{root}/{task_id}/vector_bak/ (and, when PGVECTOR_TASK_BACKUP_TRUNCATE is set, truncates the embeddings
after the backup is verified). Each directory is handled once: the cursor remembers it and the run key
is the task id, so a lost cursor cannot start a second backup.
"""

import json
import os

import dagster as dg

from pgvector_pipeline.contract import TASK_SENSOR, request_run_config
from pgvector_pipeline.env_numbers import number_from_env, whole_number
from pgvector_pipeline.errors import InvalidParams
from pgvector_pipeline.jobs.request_backup import request_vector_backup_job
from pgvector_pipeline.resources import BackupStoreResource

TRUNCATE_ENV = "PGVECTOR_TASK_BACKUP_TRUNCATE"
TASK_TAG = "pgvector_pipeline/task"
MAX_RUNS_ENV = "PGVECTOR_TASK_BACKUP_MAX_RUNS_PER_TICK"
# Backups one tick may request: a root that suddenly holds thousands of task directories (a restore of the
# root, a script gone wrong) must not start thousands of full backups at once.
DEFAULT_MAX_RUNS = 5
# New directories one tick looks into (each costs a listing): the rest wait for the next ticks.
MAX_DIRECTORIES_PER_TICK = 200


def max_runs_per_tick() -> int:
    """Backups one tick may request (read at each tick): a whole number of at least 1."""
    return number_from_env(
        MAX_RUNS_ENV, DEFAULT_MAX_RUNS, whole_number, lambda runs: runs >= 1, "must be a whole number of at least 1"
    )


def truncate_requested() -> bool:
    """Whether task backups truncate the embeddings afterwards (read at each tick; off by default)."""
    return (os.environ.get(TRUNCATE_ENV) or "").strip().lower() in ("1", "true", "yes", "on")


@dg.sensor(
    name=TASK_SENSOR,
    job=request_vector_backup_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description=(
        "A new {root}/{task_id}/ directory without backups gets one backup into its vector_bak/ (truncate after "
        f"it when {TRUNCATE_ENV} is set). Off until switched on."
    ),
)
def task_backup_sensor(
    context: dg.SensorEvaluationContext, backup_store: BackupStoreResource
) -> dg.SensorResult | dg.SkipReason:
    """Request one backup for each task directory that is new since the last tick and has no sets yet."""
    handled = set(json.loads(context.cursor)) if context.cursor else set()
    store = backup_store.store()
    new_tasks = sorted(set(store.task_ids()) - handled)
    if not new_tasks:
        return dg.SkipReason(f"No new task directory in {store.where}.")
    try:
        limit = max_runs_per_tick()
    except InvalidParams as error:
        return dg.SkipReason(error.message)
    truncate = truncate_requested()
    requests: list[dg.RunRequest] = []
    looked_at: list[str] = []
    for task in new_tasks[:MAX_DIRECTORIES_PER_TICK]:
        if len(requests) >= limit:
            break
        looked_at.append(task)
        if store.list_sets(task_id=task):
            context.log.info(f"Task directory {task} already holds backup sets; not backing it up again.")
            continue
        requests.append(
            dg.RunRequest(
                run_key=f"task-backup-{task}",
                run_config=request_run_config(task, truncate_after_backup=truncate),
                tags={TASK_TAG: task},
            )
        )
    if requests:
        context.log.info(
            f"Backing up for new tasks {', '.join(r.tags[TASK_TAG] for r in requests)}"
            + (" (truncate after)" if truncate else "")
            + "."
        )
    waiting = len(new_tasks) - len(looked_at)
    if waiting:
        context.log.info(
            f"{waiting} more new task directories wait for the next ticks: at most {limit} backups ({MAX_RUNS_ENV}) "
            f"and {MAX_DIRECTORIES_PER_TICK} directories per tick."
        )
    # Only the directories looked at are remembered: the others are new on the next tick.
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(sorted(handled | set(looked_at))))
