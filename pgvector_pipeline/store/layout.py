"""Names and paths of the backup store, compatible with the system it replaces.

    {root}/vector_bak/                          global sets
    {root}/{task_id}/vector_bak/                sets made for one task
        {table}_YYYYMMDD_HHMMSS.csv[.zst|.gz]   one per table the manifest lists (langchain_pg_collection_…,
                                                langchain_pg_embedding_…); compressed sets end in .zst or .gz
        {table}_YYYYMMDD_HHMMSS.pgcopy[.zst|.gz]   the same in a binary set: PostgreSQL's binary COPY stream
        vector_backup_YYYYMMDD_HHMMSS.json      manifest (absent in sets made by the old system)
        vector_backup_YYYYMMDD_HHMMSS.lock      held (flock) by the run writing that set; gone once it ends
        vector_backup_YYYYMMDD_HHMMSS.damaged   the published set failed a read-back: never complete (store.damage)
        *.tmp                                   files of a set still being written
        vector_backup_log.txt

On object storage (store.s3), where objects cannot be appended to or locked, the same names plus:
        vector_backup_YYYYMMDD_HHMMSS.lock      the claim of the run writing that set (refreshed while it runs)
        vector_backup_YYYYMMDD_HHMMSS.<hex>.hold   a reader's hold on the set (retention skips held sets)
        vector_backup_log/<time>_<hex>[_set_YYYYMMDD_HHMMSS].txt   one object per log entry

Every name, pattern and path rule of the store lives here. Patterns are matched whole (`fullmatch`)
and with ASCII classes only: `$` would accept a trailing newline and `\\d` non-ASCII digits.
"""

import re
from dataclasses import dataclass
from datetime import datetime

from pgvector_pipeline.errors import InvalidParams
from pgvector_pipeline.names import COLUMN_NAME_PATTERN
from pgvector_pipeline.set_formats import CSV, FILE_EXTENSION, FORMAT_OF_EXTENSION
from pgvector_pipeline.store.codecs import CODEC_BY_SUFFIX, NONE, codec_of

BACKUP_DIR_NAME = "vector_bak"
LOG_FILE_NAME = "vector_backup_log.txt"
TMP_SUFFIX = ".tmp"
# The task key of sets in {root}/vector_bak/. It is a valid task id too, so it is reserved.
GLOBAL_TASK_KEY = "global"
TIMESTAMP_FORMAT = "%Y%m%d_%H%M%S"
# The years a set may be stamped with, by its name or its manifest's times: sets are ordered by these times, and at
# the ends of the calendar converting them between time zones overflows.
MIN_YEAR, MAX_YEAR = 1970, 9998
# Task ids become directory names and partition keys: keep them well below NAME_MAX (255).
TASK_ID_MAX_LENGTH = 128

TASK_ID_PATTERN = re.compile(rf"[A-Za-z0-9_]{{1,{TASK_ID_MAX_LENGTH}}}")
TIMESTAMP_PATTERN = re.compile(r"[0-9]{8}_[0-9]{6}")
_TS = TIMESTAMP_PATTERN.pattern
_TMP = re.escape(TMP_SUFFIX)
_SUFFIXES = "|".join(re.escape(suffix) for suffix in CODEC_BY_SUFFIX if suffix)
# Any table whose name is a plain identifier: a set is what its manifest says, not a fixed pair of tables.
_EXTENSIONS = "|".join(FORMAT_OF_EXTENSION)
_TABLE_FILE = re.compile(
    rf"(?P<table>{COLUMN_NAME_PATTERN.pattern})_(?P<timestamp>{_TS})\.(?P<extension>{_EXTENSIONS})"
    rf"(?P<suffix>{_SUFFIXES})?(?P<tmp>{_TMP})?"
)
_SET_META_FILE = re.compile(rf"vector_backup_(?P<timestamp>{_TS})\.(?P<ext>json|lock|damaged)(?P<tmp>{_TMP})?")
_KIND_BY_EXT = {"json": "manifest", "lock": "lock", "damaged": "damaged"}
# Object storage only (see above).
LOG_ENTRIES_DIR = "vector_backup_log"
_HOLD_FILE = re.compile(rf"vector_backup_(?P<timestamp>{_TS})\.(?P<token>[0-9a-f]{{32}})\.hold")
_LOG_ENTRY = re.compile(rf"{LOG_ENTRIES_DIR}/[0-9]{{8}}T[0-9]{{12}}Z_[0-9a-f]{{32}}(?:_set_(?P<timestamp>{_TS}))?\.txt")


def _shown(value: object) -> str:
    """A user value for an error message: repr, cut short (a 10,000-character id helps nobody)."""
    text = repr(value)
    return text if len(text) <= 80 else text[:60] + f"… ({len(text)} characters)"


def validate_task_id(task_id: str) -> str:
    """`task_id` if it is 1 to 128 ASCII letters, digits or underscores; InvalidParams otherwise."""
    if not isinstance(task_id, str) or not TASK_ID_PATTERN.fullmatch(task_id):
        raise InvalidParams(
            f"Task id {_shown(task_id)} is not valid: use 1 to {TASK_ID_MAX_LENGTH} letters, digits and "
            f"underscores (pattern ^[A-Za-z0-9_]+$), for example 'task_20261123_120000'."
        )
    return task_id


def task_key(task_id: str | None) -> str:
    """The partition key of a task: GLOBAL_TASK_KEY for the global directory."""
    if task_id in (None, ""):
        return GLOBAL_TASK_KEY
    return validate_task_id(task_id)


def validate_timestamp(timestamp: str) -> str:
    """`timestamp` if it is a real YYYYMMDD_HHMMSS; InvalidParams otherwise."""
    if not isinstance(timestamp, str) or not TIMESTAMP_PATTERN.fullmatch(timestamp):
        raise InvalidParams(f"Timestamp {_shown(timestamp)} is not valid: use YYYYMMDD_HHMMSS, e.g. 20261123_121700.")
    try:
        year = datetime.strptime(timestamp, TIMESTAMP_FORMAT).year
    except ValueError as exc:
        raise InvalidParams(f"Timestamp {timestamp!r} is not a real date and time ({exc}).") from exc
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise InvalidParams(f"Timestamp {timestamp!r} is not a real date and time from {MIN_YEAR} to {MAX_YEAR}.")
    return timestamp


def new_timestamp(now: datetime | None = None) -> str:
    """The timestamp of now (local time, as the replaced system used, so old and new sets sort together)."""
    return (now or datetime.now()).strftime(TIMESTAMP_FORMAT)


def timestamp_time(timestamp: str) -> datetime:
    """The local time a valid timestamp names."""
    return datetime.strptime(validate_timestamp(timestamp), TIMESTAMP_FORMAT)


# The deployment's window of check_stamped_now (read by settings.StoreSettings).
TIMESTAMP_WINDOW_ENV = "PGVECTOR_BACKUP_TIMESTAMP_WINDOW_S"


def check_stamped_now(timestamp: str, window_s: float, now: datetime | None = None) -> str:
    """`timestamp` if it is within `window_s` of now; InvalidParams otherwise.

    A set's timestamp says when its snapshot was taken. Writing a set stamped long before or after that
    (a partition picked from the grid, a backfill) would label data with a time it was not taken at.
    """
    offset = timestamp_time(timestamp) - (now or datetime.now())
    if abs(offset.total_seconds()) > window_s:
        when = "in the future" if offset.total_seconds() > 0 else "ago"
        raise InvalidParams(
            f"Set {timestamp} is stamped {abs(offset)} {when}; a backup run writes only a set stamped within "
            f"{window_s:g} s of the time it runs ({TIMESTAMP_WINDOW_ENV}), so no set carries a "
            f"time it was not taken at. To back up now, launch request_vector_backup_job (it stamps the set "
            f"itself), or the partition of the current time."
        )
    return timestamp


def table_file_name(table: str, timestamp: str, codec: str = NONE, set_format: str = CSV) -> str:
    """File name of a table's file in a set of `set_format` (see set_formats), stored with `codec` (see
    store.codecs)."""
    return f"{table}_{timestamp}.{FILE_EXTENSION[set_format]}{codec_of(codec).suffix}"


def csv_name(table: str, timestamp: str, codec: str = NONE) -> str:
    """File name of a table's CSV in a set, stored with `codec` (see store.codecs)."""
    return table_file_name(table, timestamp, codec, CSV)


def manifest_name(timestamp: str) -> str:
    """File name of a set's manifest."""
    return f"vector_backup_{timestamp}.json"


def lock_name(timestamp: str) -> str:
    """File name of the lock held by the run writing a set."""
    return f"vector_backup_{timestamp}.lock"


def damaged_name(timestamp: str) -> str:
    """File name of the marker of a published set that failed a read-back (see store.damage)."""
    return f"vector_backup_{timestamp}.damaged"


def hold_name(timestamp: str, token: str) -> str:
    """Object storage: the name of one reader's hold on a set."""
    return f"vector_backup_{timestamp}.{token}.hold"


def parse_hold_name(name: str) -> str | None:
    """The timestamp of the set a hold's name holds, or None for anything else."""
    match = _HOLD_FILE.fullmatch(name)
    return match["timestamp"] if match else None


def log_entry_name(when: datetime, token: str, published_set: str | None) -> str:
    """Object storage: the name of one log entry (its time in UTC first, so names sort by time); an entry that
    records a published set names it, so listing learns which manifests the log records without reading it."""
    tag = f"_set_{published_set}" if published_set else ""
    return f"{LOG_ENTRIES_DIR}/{when.strftime('%Y%m%dT%H%M%S%f')}Z_{token}{tag}.txt"


def parse_log_entry_name(name: str) -> tuple[bool, str | None]:
    """Whether `name` is a log entry, and the set whose publication it records (None for other entries)."""
    match = _LOG_ENTRY.fullmatch(name)
    return (match is not None, match["timestamp"] if match else None)


def tmp_name(name: str) -> str:
    """The name a file has while it is written."""
    return name + TMP_SUFFIX


def stored_codec(name: str) -> str:
    """How a set's table file is stored, told by its name ("none" for anything that is not one)."""
    parsed = parse_set_file_name(name)
    return parsed.codec if parsed else NONE


@dataclass(frozen=True)
class SetFileName:
    """What a file name in a vector_bak directory says: which set, which part, finished or not."""

    timestamp: str
    kind: str  # "table" (a table's rows), "manifest", "lock" or "damaged"
    table: str | None  # for kind "table"
    tmp: bool
    codec: str = NONE  # for kind "table": how the file is compressed, told by its suffix
    set_format: str = CSV  # for kind "table": how it holds the rows (see set_formats), told by its extension


def parse_set_file_name(name: str) -> SetFileName | None:
    """The set file a directory entry is, or None for anything else (the log, notes, foreign files)."""
    if match := _TABLE_FILE.fullmatch(name):
        codec = CODEC_BY_SUFFIX[match["suffix"] or ""]
        set_format = FORMAT_OF_EXTENSION[match["extension"]]
        return SetFileName(match["timestamp"], "table", match["table"], bool(match["tmp"]), codec, set_format)
    if match := _SET_META_FILE.fullmatch(name):
        return SetFileName(match["timestamp"], _KIND_BY_EXT[match["ext"]], None, bool(match["tmp"]))
    return None
