"""Before a run is launched: does the set a request names exist, and does it hold the tables and collections the
request names? A typo should be refused at once with what was probably meant, not leave a failed run behind.

Plain Python, no Dagster, no database, two ways to see the sets: a store (`check_named_set`: --direct, through the
store interface) or the records of a listing (`check_listed_set`: the GraphQL client, which sees the sets only as the
inventory lists them, see store.backup_set_info.set_record). Both match a name the same way (`ListedSet`, the
refusals below, store.naming for `latest`, tables and collections). The run checks everything again (the set may
change in between), so this is a courtesy, never the guard.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pgvector_pipeline.errors import InvalidParams, ResourceNotFound
from pgvector_pipeline.store.backup_set_info import BackupSetInfo
from pgvector_pipeline.store.interface import BackupStore
from pgvector_pipeline.store.layout import GLOBAL_TASK_KEY, task_key, timestamp_time
from pgvector_pipeline.store.naming import (
    LATEST,
    check_collections_in,
    check_tables_held,
    named_timestamp,
    nearest_phrase,
    newest_complete,
)


@dataclass(frozen=True)
class ListedSet:
    """A set as a listing names it: what matching a request's names needs."""

    task: str
    timestamp: str
    status: str
    taken_at: datetime
    location: str
    tables: tuple[str, ...] | None  # in restore order; None: the listing does not say
    collections: tuple[str, ...] | None  # None: not recorded (old manifests), or too many to list

    @classmethod
    def of_info(cls, info: BackupSetInfo) -> "ListedSet":
        record = info.manifest.collections if info.manifest else None
        collections = None if record is None else tuple(record.embeddings)
        return cls(
            info.task, info.timestamp, info.status, info.taken_at, info.location, tuple(info.tables), collections
        )

    @classmethod
    def of_record(cls, record: Mapping[str, Any]) -> "ListedSet":
        """A record of set_record, as a client reads it back (a code server of an older version wrote fewer
        fields: what is missing is not checked)."""
        tables, collections = record.get("table_names"), record.get("collection_names")
        return cls(
            str(record["task_id"]),
            str(record["timestamp"]),
            str(record["status"]),
            _taken_at(record.get("taken_at"), str(record["timestamp"])),
            str(record.get("location") or ""),
            None if tables is None else tuple(tables),
            None if collections is None else tuple(collections),
        )


def _taken_at(taken_at: object, timestamp: str) -> datetime:
    """When a listed set was taken: its record's time, else its name read as local time (as BackupSetInfo.taken_at)."""
    if isinstance(taken_at, str):
        try:
            moment = datetime.fromisoformat(taken_at)
            if moment.tzinfo is not None:
                return moment
        except ValueError:
            pass
    try:
        return timestamp_time(timestamp).astimezone()
    except InvalidParams:
        return datetime.min.replace(tzinfo=UTC)


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
    task = task_key(task_id)
    if task != GLOBAL_TASK_KEY:
        refuse_unknown_task(task, store.task_ids(), store.where)
    backup_set = _existing_set(store, task, named_timestamp(timestamp))
    check_held(ListedSet.of_info(backup_set), tables, collections)
    return backup_set


def check_listed_set(
    records: Sequence[Mapping[str, Any]],
    where: str,
    task_id: str | None,
    timestamp: str | None,
    tables: Sequence[str] | None = None,
    collections: Sequence[str] = (),
    *,
    stale_hint: str = "",
) -> ListedSet:
    """check_named_set on the records of a listing (set_record's) of the store `where`: the set named, as listed.
    `stale_hint` ends each refusal (what to do when the listing may be older than the store)."""
    sets = [ListedSet.of_record(record) for record in records]
    task = task_key(task_id)
    if task != GLOBAL_TASK_KEY:
        refuse_unknown_task(task, {s.task for s in sets}, where, stale_hint)
    of_task = [s for s in sets if s.task == task]
    location = of_task[0].location if of_task else where
    named = named_timestamp(timestamp)
    if named == LATEST:
        try:
            chosen = newest_complete(of_task, location)
        except ResourceNotFound as error:
            raise ResourceNotFound(error.message + stale_hint) from None
    else:
        found = next((s for s in of_task if s.timestamp == named), None)
        if found is None:
            raise unknown_timestamp(named, [s.timestamp for s in of_task], location, stale_hint)
        chosen = found
    check_held(chosen, tables, collections)
    return chosen


def check_held(chosen: ListedSet, tables: Sequence[str] | None, collections: Sequence[str]) -> None:
    """InvalidParams with the nearest names when the set does not hold `tables` (None: whatever it holds) or
    `collections` (as far as its listing records them)."""
    if tables is not None and chosen.tables is not None:
        check_tables_held(chosen.timestamp, chosen.tables, tables)
    if collections:
        check_collections_in(chosen.timestamp, chosen.collections, collections)


def refuse_unknown_task(task: str, known: Iterable[str], where: str, stale_hint: str = "") -> None:
    """InvalidParams naming the nearest tasks when `task` is not among `known` (the tasks of the store `where`)."""
    known = set(known) - {GLOBAL_TASK_KEY}  # named apart, at the end
    if task not in known:
        raise InvalidParams(
            f"No task {task!r} in {where}{nearest_phrase(task, known, 'tasks')}. List the tasks "
            f"(vector_backup_inventory) and name one of them, or {GLOBAL_TASK_KEY!r}.{stale_hint}"
        )


def unknown_timestamp(timestamp: str, there: Iterable[str], location: str, stale_hint: str = "") -> InvalidParams:
    """The refusal of a timestamp that names no set of `location` (whose sets are `there`), with the nearest ones."""
    return InvalidParams(
        f"No set {timestamp} in {location}{nearest_phrase(timestamp, there, 'sets')}. Name a set by its "
        f"timestamp (YYYYMMDD_HHMMSS), or {LATEST!r} for the newest complete set.{stale_hint}"
    )


def _existing_set(store: BackupStore, task: str, timestamp: str) -> BackupSetInfo:
    """The set, found as a run finds it (`locate`); a name that is not there, well formed or not, is answered with the
    names that are."""
    try:
        return store.locate(task_id=task, timestamp=timestamp)
    except (InvalidParams, ResourceNotFound):
        if timestamp == LATEST:
            raise
    there = [s.timestamp for s in store.list_sets(task_id=task, global_only=task == GLOBAL_TASK_KEY)]
    raise unknown_timestamp(timestamp, there, store.location(task))
