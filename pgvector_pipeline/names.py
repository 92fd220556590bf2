"""Names of the LangChain PGVector tables, columns and layouts: the one home every layer takes them from."""

import re

COLLECTION_TABLE = "langchain_pg_collection"
EMBEDDING_TABLE = "langchain_pg_embedding"
# Restore order: collections first, because embeddings reference them.
BACKUP_TABLES = (COLLECTION_TABLE, EMBEDDING_TABLE)
EMBEDDING_COLUMN = "embedding"
# A collection's name and key, and the embedding column that points at the key (both LangChain layouts).
COLLECTION_NAME_COLUMN = "name"
COLLECTION_KEY_COLUMN = "uuid"
COLLECTION_REF_COLUMN = "collection_id"
# LangChain always writes a document (possibly ''), never NULL.
DOCUMENT_COLUMN = "document"
# The metadata (jsonb, or json in old layouts) of a collection and of an embedding, in both layouts.
METADATA_COLUMN = "cmetadata"
# An embedding's key: `id` (varchar) in langchain_postgres; `uuid` (uuid) plus the app's `custom_id` in
# langchain_community. Which of them a table or file has tells the layouts apart (postgres.catalog.langchain_layout).
EMBEDDING_ID_COLUMN = "id"
COMMUNITY_KEY_COLUMN = "uuid"
COMMUNITY_CUSTOM_ID_COLUMN = "custom_id"

# The packages whose PGVector wrote the tables, told apart by column names (postgres.catalog.langchain_layout).
LANGCHAIN_POSTGRES = "langchain_postgres"
LANGCHAIN_COMMUNITY = "langchain_community"

# pgvector's column types.
VECTOR_TYPES = ("vector", "halfvec", "sparsevec")
# A column of one of pgvector's types as the catalog and manifests spell it (format_type: maybe schema-qualified, the
# declared dimension in parentheses): groups "kind" and "dimensions".
VECTOR_TYPE_PATTERN = re.compile(
    r"(?:[a-z_][a-z0-9_]*\.)?(?P<kind>vector|halfvec|sparsevec)(?:\((?P<dimensions>[0-9]+)\))?"
)

# A backup's row filter as given (run config) and as re-printed with every name qualified (postgres.row_filter), which
# the manifest records: the re-print of the longest filter taken stays below the second.
ROW_FILTER_MAX_CHARS = 4000
PRINTED_ROW_FILTER_MAX_CHARS = 32000

# A column name as this tool shows and uses it from a CSV header (file content): a plain identifier.
COLUMN_NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
