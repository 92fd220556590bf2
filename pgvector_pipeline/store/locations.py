"""Opening the backup root and its vector_bak directories without following anything planted in them.

    {root}/vector_bak/                  the global location
    {root}/{task_id}/vector_bak/        a task's location

The root is deployment configuration and is opened as configured; every directory below it is opened
relative to its parent (see store.directory), so a task directory or vector_bak that is a symlink is
refused, and one swapped for a symlink after it was opened cannot redirect what is read or written.
"""

import errno
import os
from pathlib import Path

from pgvector_pipeline.errors import InvalidParams, ResourceNotFound
from pgvector_pipeline.store.directory import Directory, UnsafeEntry
from pgvector_pipeline.store.layout import (
    BACKUP_DIR_NAME,
    GLOBAL_TASK_KEY,
    TASK_ID_PATTERN,
    validate_task_id,
)


def location_path(root: Path, task: str) -> Path:
    """Where the location of a task key is (for messages and metadata)."""
    if task == GLOBAL_TASK_KEY:
        return Path(root) / BACKUP_DIR_NAME
    return Path(root) / validate_task_id(task) / BACKUP_DIR_NAME


def _unsafe(exc: UnsafeEntry) -> InvalidParams:
    return InvalidParams(
        f"{exc.strerror}. Only real directories inside the backup root are read or written; remove the link "
        f"(or whatever stands there) or replace it with a directory."
    )


def open_root(root: Path, create: bool = False) -> Directory | None:
    """The backup root, created when asked; None when it does not exist (and is not to be created)."""
    try:
        if create:
            os.makedirs(root, exist_ok=True)
        return Directory.open_root(Path(root))
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        raise InvalidParams(f"The backup root {root} is not a directory. Check PGVECTOR_BACKUP_ROOT.") from None
    except OSError as exc:
        raise InvalidParams(
            f"Cannot open the backup root {root}: {exc.strerror}. Check PGVECTOR_BACKUP_ROOT and its permissions."
        ) from None


def open_location(root: Path, task: str, *, create: bool = False, create_task_dir: bool = False) -> Directory:
    """The vector_bak directory of a task key, opened without following links.

    With `create`, vector_bak (and the root) are created when missing, and the task's own directory only with
    `create_task_dir`: a missing task directory is ResourceNotFound otherwise. Anything but a real directory
    on the way is InvalidParams.
    """
    if task != GLOBAL_TASK_KEY:
        validate_task_id(task)
    where = location_path(root, task)
    root_dir = open_root(root, create=create)
    if root_dir is None:
        raise ResourceNotFound(f"The backup root {root} does not exist, so {where} holds no sets.")
    try:
        with root_dir:
            if task == GLOBAL_TASK_KEY:
                return root_dir.child(BACKUP_DIR_NAME, create=create)
            try:
                task_dir = root_dir.child(task, create=create and create_task_dir)
            except FileNotFoundError:
                hint = "or set create_task_dir: true to create it" if create else "and list the sets that exist"
                raise ResourceNotFound(
                    f"Task directory {where.parent} does not exist. Check the task id {task!r}, {hint}."
                ) from None
            with task_dir:
                return task_dir.child(BACKUP_DIR_NAME, create=create)
    except UnsafeEntry as exc:
        raise _unsafe(exc) from None
    except FileNotFoundError:
        raise ResourceNotFound(f"{where} does not exist: no set was ever written there.") from None
    except OSError as exc:
        if exc.errno == errno.EACCES:
            raise InvalidParams(
                f"Cannot open {where}: {exc.strerror}. Check the permissions of the backup root."
            ) from None
        raise


def task_directories(root_dir: Directory) -> list[str]:
    """The task ids of the real directories under the root (named as a task id can be; symlinks are not
    followed). The global key is reserved for {root}/vector_bak, and vector_bak itself is the global directory:
    neither {root}/global/ nor {root}/vector_bak/ is a task."""
    return sorted(
        entry.name
        for entry in root_dir.entries()
        if entry.is_dir
        and TASK_ID_PATTERN.fullmatch(entry.name)
        and entry.name not in (GLOBAL_TASK_KEY, BACKUP_DIR_NAME)
    )
