"""Before a run is launched: does the set a request names exist, and does it hold the tables and collections the
request names? A typo should be refused at once with what was probably meant, not leave a failed run behind.

Plain Python over the store interface (no Dagster, no database): the command line and the Python client call
`check_named_set` before they launch a restore, copy or drill; the run checks everything again (the set may change
in between), so this is a courtesy, never the guard.
"""

from collections.abc import Sequence

from pgvector_pipeline.errors import InvalidParams, ResourceNotFound
from pgvector_pipeline.operations.restore import check_collections_held, check_restore_tables
from pgvector_pipeline.store.backup_set_info import BackupSetInfo
from pgvector_pipeline.store.interface import BackupStore
from pgvector_pipeline.store.layout import GLOBAL_TASK_KEY, task_key
from pgvector_pipeline.store.naming import LATEST, named_timestamp, nearest_phrase


def check_named_set(
    store: BackupStore,
    task_id: str | None,
    timestamp: str | None,
    tables: Sequence[str] | None = None,
    collections: Sequence[str] = (),
) -> BackupSetInfo:
    """The set `task_id` (None or 'global': the global sets) and `timestamp` (or `latest`) name in `store`, once it is
    known to hold `tables` (None: whatever it holds) and `collections` (as far as its manifest records them).

    InvalidParams with the nearest names for a task, timestamp, table or collection that is not there;
    ResourceNotFound when `latest` finds no complete set."""
    task = _existing_task(store, task_id)
    backup_set = _existing_set(store, task, named_timestamp(timestamp))
    if tables is not None:
        check_restore_tables(backup_set, tables)
    if collections:
        check_collections_held(backup_set, collections)
    return backup_set


def _existing_task(store: BackupStore, task_id: str | None) -> str:
    task = task_key(task_id)
    if task == GLOBAL_TASK_KEY:
        return task
    known = store.task_ids()
    if task not in known:
        raise InvalidParams(
            f"No task {task!r} in {store.where}{nearest_phrase(task, known, 'tasks')}. List the tasks "
            f"(vector_backup_inventory) and name one of them, or {GLOBAL_TASK_KEY!r}."
        )
    return task


def _existing_set(store: BackupStore, task: str, timestamp: str) -> BackupSetInfo:
    """The set, found as a run finds it (`locate`); a name that is not there, well formed or not, is answered with the
    names that are."""
    try:
        return store.locate(task_id=task, timestamp=timestamp)
    except (InvalidParams, ResourceNotFound):
        if timestamp == LATEST:
            raise
    there = [s.timestamp for s in store.list_sets(task_id=task, global_only=task == GLOBAL_TASK_KEY)]
    raise InvalidParams(
        f"No set {timestamp} in {store.location(task)}{nearest_phrase(timestamp, there, 'sets')}. Name a set by its "
        f"timestamp (YYYYMMDD_HHMMSS), or {LATEST!r} for the newest complete set."
    )
