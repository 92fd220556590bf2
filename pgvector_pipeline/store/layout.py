"""Names and paths of the backup store, compatible with the system it replaces.

    {root}/vector_bak/                          global sets
    {root}/{task_id}/vector_bak/                sets made for one task
        langchain_pg_collection_YYYYMMDD_HHMMSS.csv
        langchain_pg_embedding_YYYYMMDD_HHMMSS.csv
        vector_backup_YYYYMMDD_HHMMSS.json      manifest (absent in sets made by the old system)
        vector_backup_log.txt
"""

import re
from datetime import datetime
from pathlib import Path

from pgvector_pipeline.errors import InvalidParams, ResourceNotFound

BACKUP_DIR_NAME = "vector_bak"
LOG_FILE_NAME = "vector_backup_log.txt"
TMP_SUFFIX = ".tmp"
# The task key of sets in {root}/vector_bak/. It is a valid task id too, so it is reserved.
GLOBAL_TASK_KEY = "global"
TIMESTAMP_FORMAT = "%Y%m%d_%H%M%S"

TASK_ID_PATTERN = re.compile(r"^[A-Za-z0-9_]+$")
TIMESTAMP_PATTERN = re.compile(r"^\d{8}_\d{6}$")


def validate_task_id(task_id: str) -> str:
    if not isinstance(task_id, str) or not TASK_ID_PATTERN.match(task_id):
        raise InvalidParams(
            f"Task id {task_id!r} is not valid: use only letters, digits and underscores "
            f"(pattern ^[A-Za-z0-9_]+$), for example 'task_20261123_120000'."
        )
    return task_id


def task_key(task_id: str | None) -> str:
    """The partition key of a task: GLOBAL_TASK_KEY for the global directory."""
    if task_id in (None, ""):
        return GLOBAL_TASK_KEY
    return validate_task_id(task_id)


def validate_timestamp(timestamp: str) -> str:
    if not isinstance(timestamp, str) or not TIMESTAMP_PATTERN.match(timestamp):
        raise InvalidParams(f"Timestamp {timestamp!r} is not valid: use YYYYMMDD_HHMMSS, e.g. 20261123_121700.")
    try:
        datetime.strptime(timestamp, TIMESTAMP_FORMAT)
    except ValueError as exc:
        raise InvalidParams(f"Timestamp {timestamp!r} is not a real date and time ({exc}).") from exc
    return timestamp


def new_timestamp(now: datetime | None = None) -> str:
    # Local time, as the replaced system used, so old and new sets sort together.
    return (now or datetime.now()).strftime(TIMESTAMP_FORMAT)


def backup_dir(root: Path, task: str) -> Path:
    """The vector_bak directory of a task key (GLOBAL_TASK_KEY for the global one)."""
    if task == GLOBAL_TASK_KEY:
        return Path(root) / BACKUP_DIR_NAME
    return Path(root) / validate_task_id(task) / BACKUP_DIR_NAME


def check_task_dir(root: Path, task: str, create_task_dir: bool) -> Path:
    """The vector_bak directory of `task`; a task's own directory must exist unless it may be created."""
    directory = backup_dir(root, task)
    if task != GLOBAL_TASK_KEY and not directory.parent.is_dir() and not create_task_dir:
        raise ResourceNotFound(
            f"Task directory {directory.parent} does not exist. Check the task id {task!r}, or set "
            f"create_task_dir: true to create it."
        )
    return directory


def prepare_backup_dir(root: Path, task: str, create_task_dir: bool) -> Path:
    """Create the vector_bak directory to write into (see check_task_dir)."""
    directory = check_task_dir(root, task, create_task_dir)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def csv_name(table: str, timestamp: str) -> str:
    return f"{table}_{timestamp}.csv"


def manifest_name(timestamp: str) -> str:
    return f"vector_backup_{timestamp}.json"
