"""The use cases in plain Python: backup, restore, copy, drill, migration, set checks, `check`; no Dagster (the
Dagster jobs and `--direct` both call them through operations.engine.Engine)."""
