"""Creating and dropping databases (demo and tests), outside any transaction as PostgreSQL requires."""

from typing import cast

import psycopg2.extensions
from psycopg2 import sql

from pgvector_pipeline.postgres.catalog import single_value
from pgvector_pipeline.postgres.connection import connect


def create_database(admin_dsn: str, name: str, exist_ok: bool = False) -> None:
    """CREATE DATABASE `name` (outside any transaction); with exist_ok an existing one is fine."""
    conn = connect(admin_dsn)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone() and exist_ok:
                return
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    finally:
        conn.close()


def terminate_backends(admin_dsn: str, application_name: str) -> int:
    """Kill the server processes of every session with this application_name (fault tests use it)."""
    conn = connect(admin_dsn)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = %s AND pid <> pg_backend_pid()",
                (application_name,),
            )
            return cast(int, single_value(cur))
    finally:
        conn.close()


def create_role(admin_dsn: str, name: str, *attributes: str) -> None:
    """CREATE ROLE `name` LOGIN with `attributes` (keywords such as BYPASSRLS); roles are cluster-wide."""
    conn = connect(admin_dsn)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(
                sql.SQL("CREATE ROLE {} LOGIN {}").format(
                    sql.Identifier(name), sql.SQL(" ".join(a for a in attributes if a.replace(" ", "").isalpha()))
                )
            )
    finally:
        conn.close()


def dsn_as(dsn: str, role: str) -> str:
    """`dsn` logging in as `role` instead (the embedded server trusts local connections)."""
    params = psycopg2.extensions.parse_dsn(dsn)
    params["user"] = role
    params.pop("password", None)
    return cast(str, psycopg2.extensions.make_dsn(**params))


def run_outside_transaction(admin_dsn: str, statement: str) -> None:
    """One statement in autocommit mode (CREATE / DROP TABLESPACE refuse to run in a transaction block)."""
    conn = connect(admin_dsn)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(statement)
    finally:
        conn.close()
