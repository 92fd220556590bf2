"""What the tests of binary sets share (tests/test_binary_modes.py, tests/test_binary_damage.py): the sets' options,
a store of awkward rows, and a backup of it."""

from pgvector_pipeline.names import COLLECTION_TABLE, EMBEDDING_TABLE, LANGCHAIN_POSTGRES
from pgvector_pipeline.operations.backup import BackupOptions, back_up_database
from pgvector_pipeline.set_formats import BINARY
from pgvector_pipeline.store.codecs import GZIP, NONE, Compression
from pgvector_pipeline.store.local import LocalBackupStore
from pgvector_pipeline.testing.db import query
from tests.stores import make_store

BINARY_ZSTD = BackupOptions(set_format=BINARY)
BINARY_GZIP = BackupOptions(set_format=BINARY, compression=Compression(GZIP))
BINARY_PLAIN = BackupOptions(set_format=BINARY, compression=Compression(NONE))
TABLES = (COLLECTION_TABLE, EMBEDDING_TABLE)


def rows(dsn: str) -> dict[str, list[str]]:
    return {table: [r[0] for r in query(dsn, f"SELECT t::text FROM {table} t ORDER BY 1")] for table in TABLES}


def make_tricky_store(dsn: str) -> str:
    """langchain_postgres tables holding the awkward rows of tests/stores.py: two collections ('tricky', 'no
    metadata'), CRLF, quotes, non-ASCII, '' and NULL documents, a NULL embedding, two dimensions; returns `dsn`."""
    make_store(dsn, LANGCHAIN_POSTGRES)
    return dsn


def backed_up(dsn: str, root, options: BackupOptions = BINARY_ZSTD):
    """A set of `dsn`'s public schema in `root`, as listed."""
    store = LocalBackupStore(root)
    result = back_up_database(dsn, "public", store, "global", None, options)
    return store.locate(timestamp=result.timestamp)
