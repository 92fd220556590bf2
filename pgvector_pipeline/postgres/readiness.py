"""What the current role may do to the tables, asked of the catalog without touching a row: the questions the `check`
command (pgvector_pipeline.operations.check) asks before an operator relies on backups, truncates and restores (privileges:
catalog.lacking_privileges, which the restore's own check uses too)."""

import psycopg2.extensions

from pgvector_pipeline.postgres.catalog import single_value, table_oid


def row_security_applies(cur: psycopg2.extensions.cursor, schema: str, table: str) -> bool:
    """Whether a row-level security policy filters what the current role reads from the table: its sessions run with
    row_security off, so a backup would be refused (as pg_dump's is). PostgreSQL's own answer (row_security_active):
    false for a superuser, a role with BYPASSRLS, and the owner of a table whose security is not forced."""
    cur.execute(
        "SELECT pg_catalog.row_security_active(%s::pg_catalog.oid::pg_catalog.regclass)",
        (table_oid(cur, schema, table),),
    )
    return bool(single_value(cur))


def schema_exists(cur: psycopg2.extensions.cursor, schema: str) -> bool:
    cur.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname OPERATOR(pg_catalog.=) %s)", (schema,)
    )
    return bool(single_value(cur))
