"""Back up, verify, list, truncate and restore LangChain PGVector stores, orchestrated by Dagster.

The public API, for programs: the GraphQL client of a running code location (VectorBackupClient), what each
operation takes (BackupRequest, RestoreRequest, TruncateRequest, CopyRequest, DrillRequest, RetentionRequest,
ListRequest: VectorBackupClient.launch_request launches any of them), the engine and the operations in plain Python (Engine, back_up_database, restore_backup_set,
copy_set, restore_drill, check_set, run_checks) and the errors they raise. Each name is imported when first used:
`import pgvector_pipeline` loads neither Dagster nor the code location (pgvector_pipeline.definitions).
"""

from typing import TYPE_CHECKING

__all__ = [
    # The GraphQL client (entry_points.client).
    "LaunchedRun",
    "PipelineClientError",
    "RunInfo",
    "VectorBackupClient",
    # What each operation takes (run_requests).
    "BackupRequest",
    "CopyRequest",
    "DrillRequest",
    "ListRequest",
    "Migration",
    "RestoreFlags",
    "RestoreRequest",
    "RetentionRequest",
    "TableSelection",
    "TruncateRequest",
    # The engine, and the deployment settings it is built with.
    "DatabaseSettings",
    "Engine",
    "StoreSettings",
    # The operations in plain Python (operations/).
    "BackupChoices",
    "BackupOptions",
    "back_up_database",
    "check_set",
    "copy_set",
    "restore_backup_set",
    "restore_drill",
    "run_checks",
    # The errors (errors).
    "CommitOutcomeUnknown",
    "DataError",
    "DatabaseError",
    "ErrorType",
    "FilesDamaged",
    "InvalidParams",
    "PipelineError",
    "ResourceNotFound",
    "StorageError",
]

# Where each public name is defined: imported from there at its first use (see _lazy).
_DEFINED_IN = {
    "LaunchedRun": "pgvector_pipeline.entry_points.client",
    "PipelineClientError": "pgvector_pipeline.entry_points.client",
    "RunInfo": "pgvector_pipeline.entry_points.client",
    "VectorBackupClient": "pgvector_pipeline.entry_points.client",
    "BackupRequest": "pgvector_pipeline.run_requests",
    "CopyRequest": "pgvector_pipeline.run_requests",
    "DrillRequest": "pgvector_pipeline.run_requests",
    "ListRequest": "pgvector_pipeline.run_requests",
    "Migration": "pgvector_pipeline.run_requests",
    "RestoreFlags": "pgvector_pipeline.run_requests",
    "RestoreRequest": "pgvector_pipeline.run_requests",
    "RetentionRequest": "pgvector_pipeline.run_requests",
    "TableSelection": "pgvector_pipeline.run_requests",
    "TruncateRequest": "pgvector_pipeline.run_requests",
    "DatabaseSettings": "pgvector_pipeline.settings",
    "Engine": "pgvector_pipeline.operations.engine",
    "StoreSettings": "pgvector_pipeline.settings",
    "BackupChoices": "pgvector_pipeline.operations.backup",
    "BackupOptions": "pgvector_pipeline.operations.backup",
    "back_up_database": "pgvector_pipeline.operations.backup",
    "check_set": "pgvector_pipeline.operations.set_checks",
    "copy_set": "pgvector_pipeline.operations.copy",
    "restore_backup_set": "pgvector_pipeline.operations.restore",
    "restore_drill": "pgvector_pipeline.operations.drill",
    "run_checks": "pgvector_pipeline.operations.check",
    "CommitOutcomeUnknown": "pgvector_pipeline.errors",
    "DataError": "pgvector_pipeline.errors",
    "DatabaseError": "pgvector_pipeline.errors",
    "ErrorType": "pgvector_pipeline.errors",
    "FilesDamaged": "pgvector_pipeline.errors",
    "InvalidParams": "pgvector_pipeline.errors",
    "PipelineError": "pgvector_pipeline.errors",
    "ResourceNotFound": "pgvector_pipeline.errors",
    "StorageError": "pgvector_pipeline.errors",
}

if TYPE_CHECKING:  # what type checkers see; the same names as _DEFINED_IN (tests/test_architecture.py checks it)
    from pgvector_pipeline.entry_points.client import LaunchedRun, PipelineClientError, RunInfo, VectorBackupClient
    from pgvector_pipeline.errors import (
        CommitOutcomeUnknown,
        DatabaseError,
        DataError,
        ErrorType,
        FilesDamaged,
        InvalidParams,
        PipelineError,
        ResourceNotFound,
        StorageError,
    )
    from pgvector_pipeline.operations.backup import BackupChoices, BackupOptions, back_up_database
    from pgvector_pipeline.operations.check import run_checks
    from pgvector_pipeline.operations.copy import copy_set
    from pgvector_pipeline.operations.drill import restore_drill
    from pgvector_pipeline.operations.engine import Engine
    from pgvector_pipeline.operations.restore import restore_backup_set
    from pgvector_pipeline.operations.set_checks import check_set
    from pgvector_pipeline.run_requests import (
        BackupRequest,
        CopyRequest,
        DrillRequest,
        ListRequest,
        Migration,
        RestoreFlags,
        RestoreRequest,
        RetentionRequest,
        TableSelection,
        TruncateRequest,
    )
    from pgvector_pipeline.settings import DatabaseSettings, StoreSettings
else:
    from pgvector_pipeline._lazy import lazy_names

    __getattr__, __dir__ = lazy_names(__name__, _DEFINED_IN)
