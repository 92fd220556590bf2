"""Deleting old backup sets by policy, never the ones a location cannot do without.

A set is kept when any rule keeps it: it is among the newest `keep_newest` sets of its location (a
`vector_bak` directory), it is younger than `max_age_days`, it is the newest complete set of its
location (always), or a run is writing or reading it (its lock, or a reader's, is held). Everything else is
deleted by the store it is in (BackupStore.delete_set: under the set's own lock, CSVs before the manifest), and the
deletion is appended to the location's log. What dead runs left (interrupted sets) is removed by the next backup into the location and, before it
decides, by a retention run that deletes (remove_interrupted_everywhere).
"""

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from pgvector_pipeline.errors import InvalidParams
from pgvector_pipeline.sizes import human_size
from pgvector_pipeline.store.backup_set_info import STATUS_UNFINISHED, BackupSetInfo, newest_first
from pgvector_pipeline.store.interface import BackupStore, InterruptedSet
from pgvector_pipeline.store.layout import GLOBAL_TASK_KEY


@dataclass(frozen=True)
class RetentionPolicy:
    """Which sets to keep: the newest N per location and/or those younger than D days (at least one rule)."""

    keep_newest: int | None = None
    max_age_days: float | None = None

    def __post_init__(self) -> None:
        if self.keep_newest is None and self.max_age_days is None:
            raise InvalidParams(
                "A retention policy needs keep_newest (sets to keep per location) and/or max_age_days "
                "(keep sets younger than this); with neither, every set but the newest would be deleted."
            )
        if self.keep_newest is not None and self.keep_newest < 1:
            raise InvalidParams(f"keep_newest must be at least 1, not {self.keep_newest}.")
        if self.max_age_days is not None and not self.max_age_days > 0:
            raise InvalidParams(f"max_age_days must be more than 0, not {self.max_age_days}.")

    def describe(self) -> str:
        """The policy in words, for logs and metadata."""
        rules = []
        if self.keep_newest is not None:
            rules.append(f"the newest {self.keep_newest} per location")
        if self.max_age_days is not None:
            rules.append(f"sets younger than {self.max_age_days:g} days")
        return "keep " + " and ".join(rules) + ", and always the newest complete set of each location"


@dataclass(frozen=True)
class RetentionDecision:
    """What retention does with one set, and why."""

    backup_set: BackupSetInfo
    delete: bool
    reason: str


def plan_retention(
    sets: list[BackupSetInfo], policy: RetentionPolicy, now: datetime | None = None
) -> list[RetentionDecision]:
    """A decision for every set, newest first; deletes nothing."""
    # Aware: compared with each set's absolute taken_at (a naive `now` is read as local time).
    oldest_kept = (now or datetime.now()).astimezone() - timedelta(days=policy.max_age_days or 0)
    decisions = []
    newer_in_location: Counter[str] = Counter()  # sets of each location met so far, all newer
    locations_with_complete: set[str] = set()
    for backup_set in newest_first(sets):
        location = backup_set.location
        reason = None
        if backup_set.status == STATUS_UNFINISHED:
            reason = "being written, or interrupted (the next backup there removes it)"
        elif backup_set.complete and location not in locations_with_complete:
            reason = "the newest complete set of its location"
        elif policy.keep_newest is not None and newer_in_location[location] < policy.keep_newest:
            reason = f"one of the newest {policy.keep_newest} of its location"
        elif policy.max_age_days is not None and backup_set.taken_at >= oldest_kept:
            reason = f"younger than {policy.max_age_days:g} days"
        newer_in_location[location] += 1
        if backup_set.complete:
            locations_with_complete.add(location)
        decisions.append(RetentionDecision(backup_set, reason is None, reason or f"not kept by: {policy.describe()}"))
    return decisions


def remove_interrupted_everywhere(store: BackupStore, log_info: Callable[[str], None]) -> list[InterruptedSet]:
    """What dead backup runs left in every location of the store, removed (each logged): on object storage a
    location nobody backs up into again would otherwise keep them."""
    removed = []
    for task in [GLOBAL_TASK_KEY, *store.task_ids()]:
        for leftover in store.remove_interrupted(task):
            log_info(
                f"Removed the leftovers of set {leftover.timestamp} in {store.location(task)}, whose backup run ended "
                f"without finishing it: {', '.join(leftover.files)} ({human_size(leftover.bytes)})."
            )
            removed.append(leftover)
    return removed


@dataclass(frozen=True)
class RetentionResult:
    """What a retention pass decided and did."""

    decisions: list[RetentionDecision]
    deleted: list[BackupSetInfo]
    skipped_busy: list[BackupSetInfo]
    bytes_freed: int
    dry_run: bool


def apply_retention(
    sets: list[BackupSetInfo],
    policy: RetentionPolicy,
    *,
    dry_run: bool,
    log_info: Callable[[str], None],
    warn: Callable[[str], None],
    now: datetime | None = None,
) -> RetentionResult:
    """Decide for every set, then (unless `dry_run`) delete the sets the policy does not keep."""
    decisions = plan_retention(sets, policy, now)
    deleted, busy, freed = [], [], 0
    for decision in (d for d in decisions if d.delete):
        backup_set = decision.backup_set
        where = backup_set.location
        if dry_run:
            log_info(f"Would delete set {backup_set.timestamp} in {where} ({human_size(backup_set.total_bytes)}).")
            deleted.append(backup_set)
            freed += backup_set.total_bytes
            continue
        assert backup_set.store is not None, "listed sets know their store"
        bytes_freed = backup_set.store.delete_set(backup_set, warn)
        if bytes_freed is None:
            warn(f"Set {backup_set.timestamp} in {where} is in use by a run now (written or read); it was not deleted.")
            busy.append(backup_set)
            continue
        log_info(f"Deleted set {backup_set.timestamp} in {where} ({human_size(bytes_freed)}).")
        deleted.append(backup_set)
        freed += bytes_freed
    return RetentionResult(decisions, deleted, busy, freed, dry_run)
