"""Dressed LangChain tables (indexes, grants, policies, triggers, comments) and what the catalog says of them: the
fingerprint a table swapped in must share with the live one (tests/test_shadow.py, tests/test_swap_restore.py)."""

from pgvector_pipeline.names import COLLECTION_TABLE, EMBEDDING_TABLE
from pgvector_pipeline.testing.db import execute, query
from pgvector_pipeline.testing.langchain_tables import insert_sample_store

TABLES = [COLLECTION_TABLE, EMBEDDING_TABLE]
EXTRAS = f"""
DO $$ BEGIN CREATE ROLE app_reader; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
DO $$ BEGIN CREATE ROLE "App Owner"; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
CREATE INDEX ix_embedding_hnsw ON {EMBEDDING_TABLE} USING hnsw ((embedding::vector(8)) vector_cosine_ops)
  WITH (m = 8);
CREATE INDEX ix_document ON {EMBEDDING_TABLE} (lower(document)) WHERE document <> '';
ALTER TABLE {EMBEDDING_TABLE} SET (fillfactor = 90, autovacuum_vacuum_scale_factor = 0.05);
ALTER TABLE {EMBEDDING_TABLE} ADD CONSTRAINT document_not_huge CHECK (length(document) < 100000);
ALTER TABLE {EMBEDDING_TABLE} ALTER COLUMN document SET DEFAULT '';
ALTER TABLE {EMBEDDING_TABLE} REPLICA IDENTITY FULL;
COMMENT ON TABLE {EMBEDDING_TABLE} IS 'vectors of the RAG app';
COMMENT ON COLUMN {EMBEDDING_TABLE}.document IS 'chunk text';
COMMENT ON INDEX ix_embedding_hnsw IS 'search';
COMMENT ON CONSTRAINT {EMBEDDING_TABLE}_pkey ON {EMBEDDING_TABLE} IS 'ids';
GRANT SELECT ON {EMBEDDING_TABLE}, {COLLECTION_TABLE} TO app_reader;
GRANT UPDATE (document) ON {EMBEDDING_TABLE} TO app_reader WITH GRANT OPTION;
ALTER TABLE {EMBEDDING_TABLE} ENABLE ROW LEVEL SECURITY;
CREATE POLICY readers ON {EMBEDDING_TABLE} FOR SELECT TO app_reader USING (cmetadata->>'source' IS NOT NULL);
CREATE POLICY owners ON {EMBEDDING_TABLE} AS RESTRICTIVE FOR ALL TO "App Owner" USING (true) WITH CHECK (document <> 'x');
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN NEW.document := NEW.document; RETURN NEW; END $f$;
CREATE TRIGGER touch_documents BEFORE INSERT OR UPDATE ON {EMBEDDING_TABLE} FOR EACH ROW EXECUTE FUNCTION touch();
CREATE TRIGGER disabled_one AFTER DELETE ON {EMBEDDING_TABLE} FOR EACH ROW EXECUTE FUNCTION touch();
ALTER TABLE {EMBEDDING_TABLE} DISABLE TRIGGER disabled_one;
ALTER TABLE {COLLECTION_TABLE} OWNER TO "App Owner";
ALTER TABLE {EMBEDDING_TABLE} ALTER COLUMN document SET STATISTICS 500;
ALTER TABLE {EMBEDDING_TABLE} ALTER COLUMN collection_id SET (n_distinct = -0.5);
ALTER TABLE {EMBEDDING_TABLE} CLUSTER ON {EMBEDDING_TABLE}_pkey;
"""

# What the catalog says of a table, with nothing that names its oid: compared before and after a swap.
FINGERPRINT = """
SELECT 'column', a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || ' notnull=' || a.attnotnull
  || ' default=' || coalesce(pg_get_expr(d.adbin, d.adrelid), '-') || ' storage=' || a.attstorage::text
  || ' comment=' || coalesce(col_description(c.oid, a.attnum), '-') || ' acl=' || coalesce(a.attacl::text, '-')
  || ' statistics=' || coalesce(a.attstattarget::text, '-') || ' options=' || coalesce(a.attoptions::text, '-')
FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum WHERE c.oid = %(t)s::regclass
UNION ALL SELECT 'constraint', conname || ' ' || contype::text || ' ' || pg_get_constraintdef(oid)
  || ' comment=' || coalesce(obj_description(oid, 'pg_constraint'), '-')
FROM pg_constraint WHERE conrelid = %(t)s::regclass
UNION ALL SELECT 'index', pg_get_indexdef(indexrelid) || ' comment=' || coalesce(obj_description(indexrelid, 'pg_class'), '-')
  || ' clustered=' || indisclustered
FROM pg_index WHERE indrelid = %(t)s::regclass
UNION ALL SELECT 'table', 'options=' || coalesce(reloptions::text, '-') || ' owner=' || relowner::regrole::text
  || ' acl=' || coalesce(relacl::text, '-') || ' rls=' || relrowsecurity || '/' || relforcerowsecurity
  || ' replident=' || relreplident::text || ' comment=' || coalesce(obj_description(oid, 'pg_class'), '-')
FROM pg_class WHERE oid = %(t)s::regclass
UNION ALL SELECT 'policy', polname || ' ' || polpermissive || ' ' || polcmd::text || ' ' || polroles::regrole[]::text
  || ' ' || coalesce(pg_get_expr(polqual, polrelid), '-') || ' ' || coalesce(pg_get_expr(polwithcheck, polrelid), '-')
FROM pg_policy WHERE polrelid = %(t)s::regclass
UNION ALL SELECT 'trigger', pg_get_triggerdef(oid) || ' ' || tgenabled::text FROM pg_trigger
WHERE tgrelid = %(t)s::regclass AND NOT tgisinternal
ORDER BY 1, 2
"""


def fingerprint(dsn: str) -> dict[str, list[tuple]]:
    return {table: query(dsn, FINGERPRINT, {"t": f"public.{table}"}) for table in TABLES}


def contents(dsn: str) -> dict[str, list[tuple]]:
    return {table: query(dsn, f"SELECT t::text FROM {table} t ORDER BY 1") for table in TABLES}


def dress(dsn: str) -> str:
    """Fill `dsn` with LangChain tables of 40 rows (2 collections, dimension 8) dressed with EXTRAS; returns it."""
    execute(
        dsn, lambda cur: insert_sample_store(cur, "public", collections=2, embeddings_per_collection=20, dimension=8)
    )
    execute(dsn, lambda cur: cur.execute(EXTRAS))
    return dsn
