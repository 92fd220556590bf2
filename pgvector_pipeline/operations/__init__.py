"""The use cases in plain Python: backup, restore, copy, drill, migration, set checks, `check`; no Dagster (the
Dagster jobs and `--direct` both call them through operations.engine.Engine).

Its public names (`__all__`) are imported when first used: `python -m pgvector_pipeline.operations.parse_workers`
loads the parse workers alone."""

from typing import TYPE_CHECKING

__all__ = [
    "Engine",
    "Log",
    "BackupChoices",
    "BackupOptions",
    "BackupResult",
    "back_up_database",
    "RestoreResult",
    "restore_backup_set",
    "CopyResult",
    "copy_set",
    "DrillResult",
    "restore_drill",
    "set_to_drill",
    "SetCheck",
    "check_set",
    "check_files_and_embeddings",
    "CheckReport",
    "run_checks",
]

# Where each public name is defined: imported from there at its first use (see pgvector_pipeline._lazy).
_DEFINED_IN = {
    "Engine": "pgvector_pipeline.operations.engine",
    "Log": "pgvector_pipeline.operations.backup",
    "BackupChoices": "pgvector_pipeline.operations.backup",
    "BackupOptions": "pgvector_pipeline.operations.backup",
    "BackupResult": "pgvector_pipeline.operations.backup",
    "back_up_database": "pgvector_pipeline.operations.backup",
    "RestoreResult": "pgvector_pipeline.operations.restore",
    "restore_backup_set": "pgvector_pipeline.operations.restore",
    "CopyResult": "pgvector_pipeline.operations.copy",
    "copy_set": "pgvector_pipeline.operations.copy",
    "DrillResult": "pgvector_pipeline.operations.drill",
    "restore_drill": "pgvector_pipeline.operations.drill",
    "set_to_drill": "pgvector_pipeline.operations.drill",
    "SetCheck": "pgvector_pipeline.operations.set_checks",
    "check_set": "pgvector_pipeline.operations.set_checks",
    "check_files_and_embeddings": "pgvector_pipeline.operations.set_checks",
    "CheckReport": "pgvector_pipeline.operations.check",
    "run_checks": "pgvector_pipeline.operations.check",
}

if TYPE_CHECKING:  # what type checkers see; the same names as _DEFINED_IN (tests/test_architecture.py checks it)
    from pgvector_pipeline.operations.backup import BackupChoices, BackupOptions, BackupResult, Log, back_up_database
    from pgvector_pipeline.operations.check import CheckReport, run_checks
    from pgvector_pipeline.operations.copy import CopyResult, copy_set
    from pgvector_pipeline.operations.drill import DrillResult, restore_drill, set_to_drill
    from pgvector_pipeline.operations.engine import Engine
    from pgvector_pipeline.operations.restore import RestoreResult, restore_backup_set
    from pgvector_pipeline.operations.set_checks import SetCheck, check_files_and_embeddings, check_set
else:
    from pgvector_pipeline._lazy import lazy_names

    __getattr__, __dir__ = lazy_names(__name__, _DEFINED_IN)
