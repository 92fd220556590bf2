"""Tables compared by content, as pgcopydb's `compare data` does: a count and a digest over every row, the same
whatever order the rows are stored in (the md5 of the sorted md5s of each row's values as text)."""

from collections.abc import Sequence

import psycopg2.extensions
from psycopg2 import sql

from pgvector_pipeline.postgres.catalog import qualified, single_row

_SCRATCH_PREFIX = "pgvector_drill_"


def table_digest(cur: psycopg2.extensions.cursor, schema: str, table: str, columns: Sequence[str]) -> tuple[int, str]:
    """Rows of `schema.table` and the digest of their `columns` (in that order, so that two tables whose columns
    are ordered differently compare equal)."""
    cur.execute(
        sql.SQL(
            "SELECT pg_catalog.count(*), coalesce(pg_catalog.md5(pg_catalog.string_agg(h, '' ORDER BY h)), '') "
            "FROM (SELECT pg_catalog.md5(ROW({columns})::pg_catalog.text) AS h FROM {table}) AS rows"
        ).format(columns=sql.SQL(", ").join(sql.Identifier(c) for c in columns), table=qualified(schema, table))
    )
    rows, digest = single_row(cur)
    return rows, digest


def scratch_schema(timestamp: str) -> str:
    """The schema a restore drill loads a set into (dropped when it ends)."""
    return f"{_SCRATCH_PREFIX}{timestamp}"


def create_scratch(cur: psycopg2.extensions.cursor, schema: str) -> list[str]:
    """Drop what earlier drills left (a killed run), then create `schema`; the leftovers' names."""
    cur.execute(
        # ~~ is LIKE.
        "SELECT nspname FROM pg_catalog.pg_namespace WHERE nspname OPERATOR(pg_catalog.~~) %s ORDER BY 1",
        (_SCRATCH_PREFIX + "%",),
    )
    leftovers = [row[0] for row in cur.fetchall()]
    for name in leftovers:
        cur.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))
    cur.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    return leftovers


def drop_scratch(cur: psycopg2.extensions.cursor, schema: str) -> None:
    cur.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
