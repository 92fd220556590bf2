import os
from typing import ClassVar

import dagster as dg
from pydantic import PrivateAttr

from pgvector_pipeline.errors import InvalidParams
from pgvector_pipeline.failures import refusal_at_start
from pgvector_pipeline.settings import StoreSettings
from pgvector_pipeline.store.interface import BackupStore
from pgvector_pipeline.store.roots import BACKUP_ROOT_ENV

# The second store a copy reads from or writes to (vector_copy_job): moving sets off a machine, or back.
OTHER_ROOT_ENV = "PGVECTOR_OTHER_BACKUP_ROOT"
DEFAULT_LOCAL_ROOT = "vector_backups"


class BackupStoreResource(dg.ConfigurableResource):  # type: ignore[type-arg]  # bare, as Dagster's own resources: ConfigurableResource[X] would add a class to the MRO
    """Where backup sets live: {root}/vector_bak/ and {root}/{task_id}/vector_bak/, on a local disk or on
    S3-compatible object storage.

    Nothing of it is run config, so the Launchpad shows nothing to change and Dagster refuses a run config that
    sets anything here: where backups live and how they are written and guarded is the deployment's. The root comes
    from PGVECTOR_BACKUP_ROOT (else ./vector_backups of the code server's working directory), the S3 endpoint,
    region and credentials from the standard AWS variables, the rest from settings.StoreSettings."""

    # The variable that holds the root, and the root when it is unset (None: it must be set).
    ROOT_ENV: ClassVar[str] = BACKUP_ROOT_ENV
    DEFAULT_ROOT: ClassVar[str | None] = DEFAULT_LOCAL_ROOT

    # Read once when a run (or a sensor tick) sets the resource up.
    _settings: StoreSettings | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Read the deployment's settings once, refusing the run before it starts when one is wrong."""
        try:
            self._settings = StoreSettings.from_env()
        except InvalidParams as error:
            raise refusal_at_start(error) from None

    @property
    def settings(self) -> StoreSettings:
        """The settings read at setup; outside a run (a script, a test), the environment's now."""
        return self._settings or StoreSettings.from_env()

    @property
    def timestamp_window_s(self) -> int:
        return self.settings.timestamp_window_s

    def store(self) -> BackupStore:
        """The backup store of the root (see store.interface): object storage for an s3:// root, a local directory
        tree otherwise. The root is read when a run needs it, not at import."""
        root = os.environ.get(self.ROOT_ENV) or self.DEFAULT_ROOT
        if not root:
            raise InvalidParams(
                f"No root is set for this store: set {self.ROOT_ENV} for the code server (a directory or "
                f"s3://bucket/prefix)."
            )
        return self.settings.store(root)


class OtherBackupStoreResource(BackupStoreResource):
    """The second store vector_copy_job copies sets to or from (PGVECTOR_OTHER_BACKUP_ROOT): S3 beside a local
    store, or the other way round. No default: a copy must say where it goes."""

    ROOT_ENV: ClassVar[str] = OTHER_ROOT_ENV
    DEFAULT_ROOT: ClassVar[str | None] = None
