import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from pgvector_pipeline.errors import InvalidParams
from pgvector_pipeline.failures import refusal_at_start
from pgvector_pipeline.store.files import (
    ALLOWED_FILE_MODES,
    DEFAULT_FILE_MODE,
    check_file_mode,
)
from pgvector_pipeline.store.interface import BackupStore
from pgvector_pipeline.store.local import LocalBackupStore

BACKUP_ROOT_ENV = "PGVECTOR_BACKUP_ROOT"
RESOURCE_KEY = "backup_store"
DEFAULT_TIMESTAMP_WINDOW_S = 900


class BackupStoreResource(dg.ConfigurableResource):
    """Where backup sets live: {root}/vector_bak/ and {root}/{task_id}/vector_bak/."""

    root: str = Field(
        default="",
        description=(
            f"Backup root directory. Empty: {BACKUP_ROOT_ENV}, else ./vector_backups of the code server's working "
            f"directory, resolved when a run needs it. Deployment configuration: set it in the code location or "
            f"the environment; a run whose config sets it is refused."
        ),
    )
    file_mode: str = Field(
        default=f"{DEFAULT_FILE_MODE:04o}",
        description=(
            "Permissions of the CSVs, manifests and logs written: "
            + " or ".join(f"'{mode:04o}'" for mode in ALLOWED_FILE_MODES)
            + " (owner only by default: a backup holds the whole vector store)."
        ),
    )

    timestamp_window_s: int = Field(
        default=DEFAULT_TIMESTAMP_WINDOW_S,
        ge=0,
        description=(
            "A backup run of a chosen partition writes the set only when its timestamp is within this many "
            "seconds of the time the run starts: no set is labelled with a time it was not taken at."
        ),
    )

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Refuse a run whose config moves the backup root: anyone who can launch a run could otherwise make a
        restore read, or a backup or retention write and delete, anywhere the code server can."""
        if context.run is not None and root_in_run_config(context.run.run_config):
            raise refusal_at_start(
                InvalidParams(
                    f"The run config sets the backup_store root. The backup root is deployment configuration: set "
                    f"{BACKUP_ROOT_ENV} for the code server (or the root in the code location's definitions) and "
                    f"launch the run without resources.backup_store.config.root. Nothing was done."
                )
            )

    def store(self) -> BackupStore:
        """The backup store this resource configures (a local directory tree; see store.interface)."""
        return LocalBackupStore(self.root_path, self.mode)

    @property
    def root_path(self) -> Path:
        return Path(self.root or os.environ.get(BACKUP_ROOT_ENV) or "vector_backups").resolve()

    @property
    def mode(self) -> int:
        """The file mode as a number; InvalidParams for anything but the allowed modes."""
        try:
            mode = int(self.file_mode, 8)
        except ValueError:
            raise InvalidParams(f"file_mode {self.file_mode!r:.40} is not an octal mode such as '0600'.") from None
        return check_file_mode(mode)


def root_in_run_config(run_config: Mapping[str, Any]) -> bool:
    """Whether a run's config sets the backup store's root (any value, empty included)."""
    entry = (run_config.get("resources") or {}).get(RESOURCE_KEY) or {}
    return isinstance(entry, Mapping) and "root" in (entry.get("config") or {})
