"""How a user names a set: a timestamp, or `latest` for the newest complete set of a task's location, and the nearest
names to one that is not there (a typo should say what was meant, not only what is missing).

`latest` is resolved through the store's own listing (every store's `locate` calls `newest_complete`), never by
the names alone: a set whose name sorts last may be unfinished, damaged, incomplete, or older than its name says
(store.backup_set_info.BackupSetInfo.taken_at).
"""

import difflib
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Sequence

from pgvector_pipeline.errors import InvalidParams, ResourceNotFound
from pgvector_pipeline.store.backup_set_info import STATUS_COMPLETE, STATUS_LEGACY, L, Listed, newest_first
from pgvector_pipeline.store.layout import validate_timestamp

# The word that names the newest complete set of a location wherever a timestamp is asked for.
LATEST = "latest"
# How many near names a message offers, and how near (difflib's ratio) a name must be: our names share long
# prefixes ('langchain_pg_', the date of a timestamp), so a low cutoff would offer langchain_pg_collection for a
# correctly spelled langchain_pg_embedding (0.71); a dropped or doubled character stays above 0.9.
NEAREST_SHOWN = 3
NEAREST_CUTOFF = 0.8


def validate_set_timestamp(timestamp: str) -> str:
    """`timestamp` if it is `latest` (resolved later, through the store: see newest_complete) or a real
    YYYYMMDD_HHMMSS; InvalidParams otherwise."""
    if timestamp == LATEST:
        return timestamp
    try:
        return validate_timestamp(timestamp)
    except InvalidParams as error:
        raise InvalidParams(error.message.rstrip(".") + f", or {LATEST!r} for the newest complete set.") from None


def named_timestamp(timestamp: str | None) -> str:
    """The timestamp a request gives; InvalidParams when it gives none."""
    if not timestamp:
        raise InvalidParams(
            f"Name the set's timestamp (YYYYMMDD_HHMMSS, or {LATEST!r} for the newest complete set), or pick a "
            f"partition of the backup assets."
        )
    return timestamp


def newest_complete(sets: Iterable[L], where: str) -> L:
    """The set `latest` names among the sets of one location: the newest complete one with a manifest (by when it
    was taken). Legacy sets (no manifest) are never picked: they restore only with allow_legacy, which a user must
    ask for by naming the set. ResourceNotFound naming `where` and what is there when there is none."""
    listed = newest_first(list(sets))
    chosen = next((s for s in listed if s.status == STATUS_COMPLETE), None)
    if chosen is not None:
        return chosen
    counts = Counter(s.status for s in listed)
    found = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no sets"
    legacy = next((s for s in listed if s.status == STATUS_LEGACY), None)
    hint = (
        f" The newest old-system set without a manifest is {legacy.timestamp}: name it by its timestamp (it restores "
        f"with allow_legacy), or let backup_discovery_sensor adopt it."
        if legacy
        else " Back up first, or name another task."
    )
    raise ResourceNotFound(f"No complete backup set in {where} for {LATEST!r} ({found}).{hint}")


def latest_note(chosen: Listed) -> str:
    """What `latest` resolved to, for the log of the run that used it."""
    return (
        f"{LATEST!r} is set {chosen.timestamp} in {chosen.location}, taken at {chosen.taken_at.isoformat()}: the "
        f"newest complete set there."
    )


def check_tables_held(timestamp: str, held: Sequence[str], tables: Sequence[str] | None) -> list[str]:
    """The tables of set `timestamp` (holding `held`, in restore order) to restore: `tables` (None: all it holds) in
    restore order; InvalidParams with the nearest names for names it does not hold, or none."""
    if tables is None:
        return list(held)
    unknown = [t for t in tables if t not in held]
    if unknown or not tables:
        raise InvalidParams(
            f"Cannot restore {unknown or 'no tables'}{nearest_aside(unknown, held)}: set {timestamp} "
            f"holds {list(held)}; choose from those."
        )
    return [table for table in held if table in tables]  # the set's order: each after the tables it references


def check_collections_in(timestamp: str, held: Collection[str] | None, collections: Sequence[str]) -> None:
    """InvalidParams, with the nearest names, for `collections` that set `timestamp` does not hold (`held`: the
    collections its manifest records; None: it records none, and nothing is refused here)."""
    if held is None:
        return
    absent = [name for name in collections if name not in held]
    if absent:
        shown = ", ".join(repr(n) for n in list(held)[:20])
        raise InvalidParams(
            f"Set {timestamp} holds no collection named {', '.join(repr(n) for n in absent)}"
            f"{nearest_aside(absent, held, repr)}; it holds {shown or 'none'}. Nothing was changed."
        )


def nearest(word: str, candidates: Iterable[str], n: int = NEAREST_SHOWN) -> list[str]:
    """The `n` candidates closest to `word` (difflib's ratio, at least NEAREST_CUTOFF), best first."""
    return difflib.get_close_matches(word, list(candidates), n=n, cutoff=NEAREST_CUTOFF)


def nearest_aside(words: Iterable[str], candidates: Iterable[str], show: Callable[[str], str] = str) -> str:
    """' (nearest: a, b)': the candidate closest to each of `words` (names of one kind look alike: only the best of
    each), shown by `show`; '' when none is close."""
    pool = list(candidates)
    close = dict.fromkeys(match for word in words for match in nearest(word, pool, n=1))
    return f" (nearest: {', '.join(show(c) for c in close)})" if close else ""


def nearest_phrase(word: str, candidates: Iterable[str], kind: str) -> str:
    """'; nearest: a, b' (or, with no near one, '; there are N <kind>: a, b, …' / '; there are none'), to end a
    message about `word`, which is not among `candidates`."""
    pool = sorted(set(candidates))
    close = nearest(word, pool)
    if close:
        return f"; nearest: {', '.join(close)}"
    if not pool:
        return f"; there are no {kind}"
    shown = ", ".join(pool[:10]) + (f" and {len(pool) - 10} more" if len(pool) > 10 else "")
    return f"; the {kind}: {shown}"
