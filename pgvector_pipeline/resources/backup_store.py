import os
from pathlib import Path

import dagster as dg
from pydantic import Field

BACKUP_ROOT_ENV = "PGVECTOR_BACKUP_ROOT"


def default_backup_root() -> str:
    return str(Path(os.environ.get(BACKUP_ROOT_ENV) or Path.cwd() / "vector_backups").resolve())


class BackupStoreResource(dg.ConfigurableResource):
    """Where backup sets live: {root}/vector_bak/ and {root}/{task_id}/vector_bak/."""

    root: str = Field(description=f"Backup root directory (from {BACKUP_ROOT_ENV} by default).")

    @property
    def root_path(self) -> Path:
        return Path(self.root)
