"""The backup store a root names: a directory tree (store.local), or S3-compatible object storage for
`s3://bucket/prefix` (store.s3). The one place that chooses; the Dagster resource and plain-Python callers
(the benchmark, scripts) come through here. No Dagster."""

from pathlib import Path

from pgvector_pipeline.store.files import DEFAULT_FILE_MODE
from pgvector_pipeline.store.interface import BackupStore
from pgvector_pipeline.store.keys import NO_KEYS, SetKeys
from pgvector_pipeline.store.local import LocalBackupStore
from pgvector_pipeline.store.s3 import S3BackupStore
from pgvector_pipeline.store.s3_client import S3Options, S3Root, is_s3_root, make_client

# The backup root of the code location (and of a --direct shell): a directory or s3://bucket/prefix.
BACKUP_ROOT_ENV = "PGVECTOR_BACKUP_ROOT"


def store_at(
    root: str,
    *,
    file_mode: int = DEFAULT_FILE_MODE,
    s3_options: S3Options | None = None,
    keys: SetKeys = NO_KEYS,
) -> BackupStore:
    """The store of `root`. Local roots are resolved to an absolute path; S3 roots get a client from the standard
    AWS chain (AWS_ENDPOINT_URL, AWS_REGION, credentials: the deployment's environment, never a run's config). `keys`:
    whom new sets are encrypted to and what reads encrypted ones (store.keys)."""
    if is_s3_root(root):
        return S3BackupStore(make_client(), S3Root.parse(root), s3_options, keys)
    return LocalBackupStore(Path(root).resolve(), file_mode, keys)
