"""How people and programs reach the pipeline: the command line (`cli`), its `--direct` commands (`direct`), and
the GraphQL client other tools use (`client`, its documents in `client_queries`). No Dagster definitions here.

Its public names (`__all__`: the client) are imported when first used: the client loads no Dagster."""

from typing import TYPE_CHECKING

__all__ = ["LaunchedRun", "PipelineClientError", "RunInfo", "VectorBackupClient"]

# Where each public name is defined: imported from there at its first use (see pgvector_pipeline._lazy).
_DEFINED_IN = {
    "LaunchedRun": "pgvector_pipeline.entry_points.client",
    "PipelineClientError": "pgvector_pipeline.entry_points.client",
    "RunInfo": "pgvector_pipeline.entry_points.client",
    "VectorBackupClient": "pgvector_pipeline.entry_points.client",
}

if TYPE_CHECKING:  # what type checkers see; the same names as _DEFINED_IN (tests/test_architecture.py checks it)
    from pgvector_pipeline.entry_points.client import LaunchedRun, PipelineClientError, RunInfo, VectorBackupClient
else:
    from pgvector_pipeline._lazy import lazy_names

    __getattr__, __dir__ = lazy_names(__name__, _DEFINED_IN)
