"""What the current role may do to the tables, asked of the catalog without touching a row: the questions the `check`
command (pgvector_pipeline.check) asks before an operator relies on backups, truncates and restores."""

from collections.abc import Sequence

from pgvector_pipeline.postgres.catalog import single_value, table_oid


def lacking_privileges(cur, schema: str, tables: Sequence[str], privileges: Sequence[str]) -> list[str]:
    """The `privileges` on each of `tables` the current role lacks, as 'PRIVILEGE on schema.table' (USAGE on the
    schema first, which every one of them needs)."""
    cur.execute("SELECT pg_catalog.has_schema_privilege(%s, 'USAGE')", (schema,))
    missing = [] if single_value(cur) else [f"USAGE on schema {schema}"]
    for table in tables:
        oid = table_oid(cur, schema, table)
        for privilege in privileges:
            cur.execute("SELECT pg_catalog.has_table_privilege(%s, %s)", (oid, privilege))
            if not single_value(cur):
                missing.append(f"{privilege} on {schema}.{table}")
    return missing


def row_security_applies(cur, schema: str, table: str) -> bool:
    """Whether a row-level security policy filters what the current role reads from the table: its sessions run with
    row_security off, so a backup would be refused (as pg_dump's is). PostgreSQL's own answer (row_security_active):
    false for a superuser, a role with BYPASSRLS, and the owner of a table whose security is not forced."""
    cur.execute(
        "SELECT pg_catalog.row_security_active(%s::pg_catalog.oid::pg_catalog.regclass)",
        (table_oid(cur, schema, table),),
    )
    return bool(single_value(cur))


def schema_exists(cur, schema: str) -> bool:
    cur.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname OPERATOR(pg_catalog.=) %s)", (schema,)
    )
    return bool(single_value(cur))
