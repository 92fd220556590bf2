"""Is there a recent complete global backup? The newest complete set in {root}/vector_bak/ against
PGVECTOR_GLOBAL_BACKUP_MAX_AGE_HOURS: plain Python, so that the inventory's asset check (assets.freshness) and the
`check` command (pgvector_pipeline.operations.check) give one answer."""

from dataclasses import dataclass, field
from datetime import datetime

from pgvector_pipeline.env_numbers import number_from_env
from pgvector_pipeline.store.interface import BackupStore
from pgvector_pipeline.store.layout import GLOBAL_TASK_KEY

MAX_AGE_ENV = "PGVECTOR_GLOBAL_BACKUP_MAX_AGE_HOURS"
# A daily schedule plus two hours of slack for a slow or late run.
DEFAULT_MAX_AGE_HOURS = 26.0


@dataclass(frozen=True)
class Freshness:
    """Whether the newest complete global set is recent enough, said for people and as data for scripts."""

    passed: bool
    description: str
    metadata: dict[str, str | int | float] = field(default_factory=dict)


def max_age_hours() -> float:
    """The allowed age from the environment; InvalidParams naming the variable when it is not a positive number."""
    return number_from_env(MAX_AGE_ENV, DEFAULT_MAX_AGE_HOURS, float, lambda h: h > 0, "is a number of hours above 0")


def global_freshness(store: BackupStore, now: datetime | None = None) -> Freshness:
    """The age of the newest complete global set (by when it was taken) against the allowed maximum."""
    max_age_h = max_age_hours()
    newest = next((s for s in store.list_sets(global_only=True) if s.complete), None)
    if newest is None:
        return Freshness(
            False,
            f"There is no complete global backup in {store.location(GLOBAL_TASK_KEY)}.",
            {"max_age_hours": max_age_h},
        )
    age_h = ((now or datetime.now()).astimezone() - newest.taken_at).total_seconds() / 3600
    passed = age_h <= max_age_h
    return Freshness(
        passed,
        f"The newest complete global backup, {newest.timestamp}, is {age_h:.1f} h old"
        + ("." if passed else f": older than {max_age_h:g} h. Is daily_vector_backup_schedule running?"),
        {"newest_set": newest.timestamp, "age_hours": round(age_h, 2), "max_age_hours": max_age_h},
    )
