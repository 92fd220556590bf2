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

# The packages whose PGVector wrote the tables, told apart by column names (postgres.catalog.langchain_layout).
LANGCHAIN_POSTGRES = "langchain_postgres"
LANGCHAIN_COMMUNITY = "langchain_community"

# A column name as this tool shows and uses it from a CSV header (file content): a plain identifier.
COLUMN_NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
