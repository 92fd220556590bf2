import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from pgvector_pipeline.errors import InvalidParams
from pgvector_pipeline.failures import refusal_at_start
from pgvector_pipeline.run_config import refuse_nul_at_start
from pgvector_pipeline.store.files import (
    ALLOWED_FILE_MODES,
    DEFAULT_FILE_MODE,
    check_file_mode,
)
from pgvector_pipeline.store.interface import BackupStore
from pgvector_pipeline.store.roots import BACKUP_ROOT_ENV, store_at
from pgvector_pipeline.store.s3_client import S3Options, is_s3_root
from pgvector_pipeline.store.s3_upload import DEFAULT_IN_FLIGHT, DEFAULT_PART_SIZE, MIN_PART_SIZE

RESOURCE_KEY = "backup_store"
# The second store a copy reads from or writes to (vector_copy_job): moving sets off a machine, or back.
OTHER_ROOT_ENV = "PGVECTOR_OTHER_BACKUP_ROOT"
OTHER_RESOURCE_KEY = "other_backup_store"
DEFAULT_LOCAL_ROOT = "vector_backups"
DEFAULT_TIMESTAMP_WINDOW_S = 900


class BackupStoreResource(dg.ConfigurableResource):
    """Where backup sets live: {root}/vector_bak/ and {root}/{task_id}/vector_bak/, on a local disk or on
    S3-compatible object storage."""

    root: str = Field(
        default="",
        description=(
            f"Backup root: a directory, or s3://bucket/prefix on S3-compatible object storage. Empty: "
            f"{BACKUP_ROOT_ENV}, else ./vector_backups of the code server's working directory, resolved when a run "
            f"needs it. Deployment configuration: set it in the code location or the environment; a run whose "
            f"config sets it is refused."
        ),
    )
    root_env: str = Field(
        default=BACKUP_ROOT_ENV,
        description=(
            f"The environment variable that holds the root when root is empty ({BACKUP_ROOT_ENV} for the backup "
            f"store, {OTHER_ROOT_ENV} for the other store copies go to or come from)."
        ),
    )
    s3_endpoint_url: str = Field(
        default="",
        description=(
            "S3 roots: the server's URL (MinIO, SeaweedFS, GCS's https://storage.googleapis.com). Empty: "
            "AWS_ENDPOINT_URL, else AWS S3. Credentials and region come from the standard AWS chain (AWS_ACCESS_KEY_ID "
            "/ AWS_SECRET_ACCESS_KEY, AWS_PROFILE, AWS_REGION, instance and pod roles), never from config. Deployment "
            "configuration, like the root."
        ),
    )
    s3_region: str = Field(default="", description="S3 roots: the region. Empty: AWS_REGION or the profile's.")
    s3_part_size_mb: int = Field(
        default=DEFAULT_PART_SIZE >> 20,
        ge=MIN_PART_SIZE >> 20,
        le=5 << 10,
        description=(
            "S3 roots: the size of each uploaded part in MiB (at least 5; doubled after every 1,000 parts, as S3 "
            f"allows 10,000). A backup holds at most about {DEFAULT_IN_FLIGHT + 2} parts in memory at once."
        ),
    )
    s3_sse: str = Field(
        default="",
        description="S3 roots: server-side encryption of every object written: 'AES256' or 'aws:kms' (empty: the bucket's default).",
    )
    s3_sse_kms_key_id: str = Field(default="", description="S3 roots with s3_sse 'aws:kms': the KMS key id or ARN.")
    s3_claim_stale_after_s: float = Field(
        default=600.0,
        gt=0,
        description=(
            "S3 roots: a running backup refreshes its claim on its set, and a reader its hold, every "
            "1/20 of this (at most 30 s); a claim or hold not refreshed for this long is a dead run's, whose "
            "leftovers the next backup into that location removes (a claim whose process is gone from the same "
            "machine at once). A run whose claim was taken over this way publishes nothing."
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
        restore read, or a backup or retention write and delete, anywhere the code server can. Config holding a NUL
        is refused too."""
        refuse_nul_at_start(context, "backup store")
        moved = context.run is not None and root_in_run_config(context.run.run_config)
        if moved:
            raise refusal_at_start(
                InvalidParams(
                    f"The run config sets the backup_store {moved}. Where backups live is deployment configuration: "
                    f"set {BACKUP_ROOT_ENV} (and AWS_ENDPOINT_URL for S3) for the code server, or the resource in the "
                    f"code location's definitions, and launch the run without resources.backup_store.config.{moved}. "
                    f"Nothing was done."
                )
            )

    def store(self) -> BackupStore:
        """The backup store this resource configures (see store.interface): object storage for an s3:// root, a
        local directory tree otherwise."""
        root = self.root_setting
        return store_at(
            root,
            file_mode=self.mode,
            s3_options=self.s3_options if is_s3_root(root) else None,
            endpoint_url=self.s3_endpoint_url,
            region=self.s3_region,
        )

    @property
    def root_setting(self) -> str:
        """The root as configured: config, else the root_env variable, else (for the backup store only)
        ./vector_backups."""
        root = self.root or os.environ.get(self.root_env)
        if root:
            return root
        if self.root_env != BACKUP_ROOT_ENV:
            raise InvalidParams(
                f"No root is set for this store: set {self.root_env} for the code server (a directory or "
                f"s3://bucket/prefix)."
            )
        return DEFAULT_LOCAL_ROOT

    @property
    def root_path(self) -> Path:
        return Path(self.root_setting).resolve()

    @property
    def s3_options(self) -> S3Options:
        return S3Options(
            part_size=self.s3_part_size_mb << 20,
            refresh_s=min(30.0, self.s3_claim_stale_after_s / 20),
            stale_after_s=self.s3_claim_stale_after_s,
            sse=self.s3_sse or None,
            sse_kms_key_id=self.s3_sse_kms_key_id or None,
        )

    @property
    def mode(self) -> int:
        """The file mode as a number; InvalidParams for anything but the allowed modes."""
        try:
            mode = int(self.file_mode, 8)
        except ValueError:
            raise InvalidParams(f"file_mode {self.file_mode!r:.40} is not an octal mode such as '0600'.") from None
        return check_file_mode(mode)


# Settings that say where backups are read and written: a run's config may not move them.
DEPLOYMENT_SETTINGS = ("root", "root_env", "s3_endpoint_url")


def root_in_run_config(run_config: Mapping[str, Any]) -> str | None:
    """The setting of where backups live that a run's config sets for either store (any value, empty included),
    if any."""
    for key in (RESOURCE_KEY, OTHER_RESOURCE_KEY):
        entry = (run_config.get("resources") or {}).get(key) or {}
        config = (entry.get("config") or {}) if isinstance(entry, Mapping) else {}
        found = next((name for name in DEPLOYMENT_SETTINGS if name in config), None)
        if found:
            return found
    return None
