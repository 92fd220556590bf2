"""Before a restore changes a row: what must exist (the vector extension and the tables, created when the restore
may), whether each file's header fits its table, the role's privileges, room on the server's disk, and whether a
truncating restore can swap new tables in. Each refuses, saying what to do, while nothing has changed."""

from collections.abc import Callable

import psycopg2.extensions
from psycopg2 import sql

from pgvector_pipeline.errors import DatabaseError, DataError, ResourceNotFound, advice, setting
from pgvector_pipeline.names import EMBEDDING_TABLE
from pgvector_pipeline.postgres import catalog, ddl
from pgvector_pipeline.postgres.disk_space import Need, room_for
from pgvector_pipeline.postgres.migrate import check_layouts, loaded_columns
from pgvector_pipeline.postgres.restore_types import RestoreOptions, TableDDL, TableLoad
from pgvector_pipeline.postgres.swap import swap_blockers


def ensure_vector_extension(cur: psycopg2.extensions.cursor, schema: str, may_create: bool) -> list[str]:
    """The vector extension, created when missing if `may_create`, else ResourceNotFound. What it created."""
    ext_schema = catalog.extension_schema(cur)
    created = []
    if ext_schema is None:
        if not may_create:
            raise ResourceNotFound(
                "The target database has no pgvector extension. Run CREATE EXTENSION vector there, or ",
                advice("create_missing"),
                " to create it with the tables (needs a set with a manifest).",
            )
        # In public, as CREATE EXTENSION does by default (sessions run with an empty search_path).
        cur.execute("CREATE EXTENSION vector SCHEMA public")
        created.append("extension vector")
    return created


def placement_of(cur: psycopg2.extensions.cursor, schema: str) -> ddl.Placement:
    """Where a manifest's DDL creates its tables and finds pgvector's names, in this database."""
    return ddl.Placement(schema, catalog.extension_schema(cur) or "public", catalog.pgvector_operator_classes(cur))


def ensure_schema_objects(
    cur: psycopg2.extensions.cursor, schema: str, loads: list[TableLoad], table_ddl: dict[str, TableDDL] | None
) -> list[str]:
    """The vector extension and the tables, created from `table_ddl` when missing (without it, a missing loaded table
    is ResourceNotFound); what was created."""
    # The manifest's DDL names tables without a schema: they are created in the target schema.
    created = ensure_vector_extension(cur, schema, may_create=table_ddl is not None)
    # The DDL's tables come in restore order (a table after those it references), then any other loaded table.
    tables = list(table_ddl or {}) + [load.table for load in loads if load.table not in (table_ddl or {})]
    for table in tables:
        if catalog.table_oid(cur, schema, table) is not None:
            continue
        if table_ddl is None:
            if table in {load.table for load in loads}:
                raise ResourceNotFound(
                    f"Table {schema}.{table} does not exist in the target database. ",
                    advice("create_missing"),
                    " to create it from the set's manifest, or create it first (LangChain does on first use).",
                )
            continue
        cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        cur.execute(ddl.placed(table_ddl[table].create_table, placement_of(cur, schema)))
        created.append(table)
    return created


def target_columns(
    cur: psycopg2.extensions.cursor, schema: str, load: TableLoad, options: RestoreOptions
) -> tuple[catalog.TableDescription, tuple[str, ...]]:
    """The target's description and the columns left to NULL/defaults; DataError if the header does not fit."""
    target = catalog.describe_table(cur, schema, load.table)
    assert target is not None  # ensure_schema_objects made sure it exists
    check_layouts(target, load.columns, options.migrate_ids)
    # A migrated embedding file fills id from columns the target lacks (postgres.migrate).
    columns = loaded_columns(load.columns) if options.migrate_ids and load.table == EMBEDDING_TABLE else load.columns
    unknown = [c for c in columns if target.column(c) is None]
    generated = [c.name for c in target.columns if c.generated and c.name in columns]
    if generated:
        raise DataError(
            f"The CSV of {load.table} holds {', '.join(generated)}, a generated column in the target table: "
            f"PostgreSQL computes it and COPY cannot load it. This set was written by a version that exported "
            f"generated columns; restore it into a table where {', '.join(generated)} is an ordinary column, or "
            f"restore a newer set. Nothing was changed."
        )
    # Generated columns fill themselves: they are never "extra".
    extra = [column for column in target.data_columns if column.name not in columns]
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    if unknown or duplicated:
        raise DataError(
            f"The CSV header of {load.table} does not match the target table: columns only in the file "
            f"{unknown or 'none'}{f', named twice {duplicated}' if duplicated else ''}. File columns: "
            f"{load.columns}; table columns: {target.column_names}. Add the missing columns to the target table, "
            f"or restore into a table of the set's layout."
        )
    if not extra:
        return target, ()
    described = [
        f"{c.name} ({'has a default' if c.has_default else 'NOT NULL, no default' if c.not_null else 'nullable'})"
        for c in extra
    ]
    unfillable = [c.name for c in extra if c.not_null and not c.has_default]
    if not options.fill_extra_columns or unfillable:
        what_to_do = (
            (
                f"{', '.join(unfillable)} cannot be filled: give it a default (ALTER TABLE ... ALTER COLUMN ... SET "
                f"DEFAULT ...) or allow NULL in it, then restore again with ",
                setting("fill_extra_columns"),
                ".",
            )
            if unfillable
            else ("To load anyway, ", advice("fill_extra_columns"), ": each of them gets NULL or its default.")
        )
        raise DataError(
            f"The CSV header of {load.table} does not match the target table: columns only in the table "
            f"{[c.name for c in extra]} ({'; '.join(described)}). ",
            *what_to_do,
            " Nothing was changed.",
        )
    return target, tuple(c.name for c in extra)


def check_privileges(cur: psycopg2.extensions.cursor, schema: str, tables: list[str], truncate: bool) -> None:
    """Refuse before anything changes when the role cannot do what the restore needs."""
    missing = catalog.missing_privileges(cur, schema, tables, truncate)
    if missing:
        raise DatabaseError(
            f"The database role cannot restore into {', '.join(tables)}: it lacks {', '.join(missing)}. Nothing "
            f"was changed. Grant them (GRANT SELECT, INSERT{', TRUNCATE' if truncate else ''} ON ... TO role), or "
            f"restore as the tables' owner."
        )


def check_room(
    cur: psycopg2.extensions.cursor, schema: str, loads: list[TableLoad], log: Callable[[str], None]
) -> None:
    """Refuse before anything changes when the server's disk cannot hold the set's rows beside the live ones (see
    postgres.disk_space); when this process cannot see the server's disk, log the estimate instead."""
    needs = {load.table: Need(load.expected_rows, load.file_bytes or 0) for load in loads}
    rooms = room_for(cur, schema, needs)
    short = [room for room in rooms if not room.enough]
    if short:
        raise DatabaseError(
            f"Not enough disk space on the database server for this restore: {'; '.join(r.described() for r in short)}. "
            f"Nothing was changed. Until it commits, a restore keeps the live rows beside the new ones (a TRUNCATE "
            f"keeps the old files so that a rollback can bring them back; a swapped restore keeps the live tables "
            f"until the swap). Free space on the server, or restore fewer tables or collections."
        )
    log(f"Disk space: {'; '.join(room.described() for room in rooms)}.")


def swap_refusal(
    cur: psycopg2.extensions.cursor, schema: str, tables: list[str], options: RestoreOptions, created: list[str]
) -> str | None:
    """Why this restore loads in place instead of swapping; None when it can swap."""
    if options.chosen is not None or options.migrate_ids:
        return "restores of some collections and migrations load into the live tables"
    if created:
        return f"{', '.join(created)} were created by this restore, so nobody reads them yet"
    reasons = swap_blockers(cur, schema, tables)
    for table in tables:
        refusal = catalog.index_rebuild_refusal(cur, schema, table)
        if refusal:
            reasons.append(refusal)
    return "; ".join(reasons) or None
