"""Reading table definitions from the PostgreSQL catalog, by column name, never by position."""

import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

import psycopg2.extensions
from psycopg2 import sql

from pgvector_pipeline.names import (
    COMMUNITY_CUSTOM_ID_COLUMN,
    COMMUNITY_KEY_COLUMN,
    EMBEDDING_COLUMN,
    EMBEDDING_ID_COLUMN,
    LANGCHAIN_COMMUNITY,
    LANGCHAIN_POSTGRES,
    VECTOR_TYPE_PATTERN,
    VECTOR_TYPES,
)

_TEXT_TYPES = re.compile(r"(?:text|character varying|character|varchar|char)(?:\([0-9]+\))?")

# pg_attribute.attgenerated: 's' stored, 'v' virtual (PostgreSQL 18); '' for ordinary columns.
_GENERATED_KINDS = {"s": "STORED", "v": "VIRTUAL"}


@dataclass(frozen=True)
class Column:
    """One column of a table as the catalog describes it."""

    name: str
    type: str
    not_null: bool
    has_default: bool = False
    # GENERATED ALWAYS AS (...): computed by the server, so never in a CSV (COPY FROM cannot name it).
    generated: bool = False
    # The type as SQL of ours names it (a cast, a staging table): qualified wherever it lives outside pg_catalog
    # (`public.vector(8)`), since sessions run with an empty search_path. `type` is the schema-independent spelling.
    sql_type: str = ""

    @property
    def is_text(self) -> bool:
        return bool(_TEXT_TYPES.fullmatch(self.type))


@dataclass(frozen=True)
class TableDescription:
    """A table's columns and the DDL to recreate it and its non-constraint indexes."""

    name: str
    columns: tuple[Column, ...]
    create_table: str
    # CREATE INDEX statements for indexes that do not back a constraint (GIN, HNSW, IVFFlat, ...).
    indexes: tuple[str, ...]

    @property
    def column_names(self) -> list[str]:
        return [column.name for column in self.columns]

    @property
    def data_columns(self) -> tuple[Column, ...]:
        """The columns a CSV of the table carries: all but generated ones."""
        return tuple(column for column in self.columns if not column.generated)

    def column(self, name: str) -> Column | None:
        return next((column for column in self.columns if column.name == name), None)

    @property
    def vector_columns(self) -> list[str]:
        """The columns of pgvector's types (vector, halfvec, sparsevec)."""
        return [column.name for column in self.columns if VECTOR_TYPE_PATTERN.fullmatch(column.type)]

    @property
    def fixed_embedding_dimension(self) -> int | None:
        column = self.column(EMBEDDING_COLUMN)
        match = VECTOR_TYPE_PATTERN.fullmatch(column.type) if column else None
        return int(match["dimensions"]) if match and match["dimensions"] else None


def qualified(schema: str, table: str) -> sql.Composed:
    """schema.table as quoted identifiers."""
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table))


def all_of(*conditions: sql.Composable | None) -> sql.Composable | None:
    """ "(a) AND (b)" of the conditions given (None ones left out); None when none is."""
    given = [condition for condition in conditions if condition is not None]
    if not given:
        return None
    return sql.SQL(" AND ").join(sql.SQL("({})").format(c) for c in given)


def where_clause(*conditions: sql.Composable | None) -> sql.Composable:
    """ " WHERE (a) AND (b)" of the conditions given (None ones left out); nothing when none is."""
    condition = all_of(*conditions)
    return sql.SQL("") if condition is None else sql.SQL(" WHERE {}").format(condition)


def single_value(cur: psycopg2.extensions.cursor) -> Any:
    """The one value of the one row a query returned."""
    row = cur.fetchone()
    if row is None:
        raise LookupError("the query returned no row")
    return row[0]


def single_row(cur: psycopg2.extensions.cursor) -> tuple[Any, ...]:
    """The one row a query returned (one that always returns a row: an aggregate, SHOW, a function call)."""
    row = cur.fetchone()
    if row is None:
        raise LookupError("the query returned no row")
    return row


def table_oid(cur: psycopg2.extensions.cursor, schema: str, table: str) -> int | None:
    """The table's oid, or None when `schema.table` does not exist."""
    cur.execute(
        "SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) "
        "c.relnamespace WHERE n.nspname OPERATOR(pg_catalog.=) %s AND c.relname OPERATOR(pg_catalog.=) %s "
        "AND c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p}'::pg_catalog.\"char\"[])",
        (schema, table),
    )
    row = cur.fetchone()
    return row[0] if row else None


def table_extent(cur: psycopg2.extensions.cursor, schema: str, table: str) -> tuple[int, int]:
    """(heap blocks, bytes of heap and TOAST) of the table as it is now, for splitting an export into ranges."""
    oid = table_oid(cur, schema, table)
    if oid is None:
        return 0, 0
    cur.execute(
        "SELECT pg_catalog.pg_relation_size(%(oid)s::pg_catalog.regclass) OPERATOR(pg_catalog./) "
        "pg_catalog.current_setting('block_size')::pg_catalog.int8, pg_catalog.pg_table_size(%(oid)s::pg_catalog.regclass)",
        {"oid": oid},
    )
    heap_blocks, table_bytes = single_row(cur)
    return int(heap_blocks), int(table_bytes)


@contextmanager
def deparsed_relative_to(cur: psycopg2.extensions.cursor, schema: str) -> Iterator[None]:
    """Within the block, the server prints names (format_type, pg_get_expr, pg_get_*def) without the schema when
    they live in `schema` or in pgvector's: DDL that fits any target schema and extension schema. The block's own
    statements must name everything they call (pg_catalog.…, OPERATOR(pg_catalog.=)): the path holds schemas
    other roles may create objects in. The empty path is set again on the way out."""
    ext_schema = extension_schema(cur)
    path = sql.SQL(", ").join(sql.Identifier(s) for s in dict.fromkeys([schema, ext_schema or schema]))
    cur.execute("SELECT pg_catalog.set_config('search_path', %s, true)", (path.as_string(cur),))
    try:
        yield
    finally:
        if not cur.connection.closed and cur.connection.get_transaction_status() != _IN_ERROR:
            cur.execute("SELECT pg_catalog.set_config('search_path', '', true)")


# psycopg2.extensions.TRANSACTION_STATUS_INERROR: a failed transaction takes no statement (and ends the local path).
_IN_ERROR = 3


def describe_table(cur: psycopg2.extensions.cursor, schema: str, table: str) -> TableDescription | None:
    """The table's columns and the DDL to recreate it, or None when it does not exist.

    Names in the DDL are qualified only where they live outside the table's schema and pgvector's
    (see deparsed_relative_to): schema-independent DDL.
    """
    oid = table_oid(cur, schema, table)
    if oid is None:
        return None
    with deparsed_relative_to(cur, schema):
        column_rows, constraint_rows, index_rows = _definitions(cur, oid)
    sql_types = _column_types(cur, oid)
    # pg_get_indexdef always qualifies the table; drop the schema so the DDL fits any target schema.
    cur.execute(
        "SELECT ' ON ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(%s) OPERATOR(pg_catalog.||) '.' "
        "OPERATOR(pg_catalog.||) pg_catalog.quote_ident(%s) OPERATOR(pg_catalog.||) ' USING '",
        (schema, table),
    )
    qualified_on = single_value(cur)
    unqualified_on = " ON " + sql.Identifier(table).as_string(cur) + " USING "
    indexes = tuple(definition.replace(qualified_on, unqualified_on, 1) for definition in index_rows)

    definitions = []
    for name, type_sql, not_null, default, generated in column_rows:
        parts = [sql.Identifier(name), sql.SQL(type_sql)]
        if generated in _GENERATED_KINDS:
            # For a generated column pg_attrdef holds the generation expression, not a default.
            parts += [
                sql.SQL("GENERATED ALWAYS AS ({}) {}").format(sql.SQL(default), sql.SQL(_GENERATED_KINDS[generated]))
            ]
        elif default is not None:
            parts += [sql.SQL("DEFAULT"), sql.SQL(default)]
        if not_null:
            parts.append(sql.SQL("NOT NULL"))
        definitions.append(sql.SQL(" ").join(parts))
    for name, definition in constraint_rows:
        definitions.append(sql.SQL("CONSTRAINT {} {}").format(sql.Identifier(name), sql.SQL(definition)))
    create_table = (
        sql.SQL("CREATE TABLE {} (\n    {}\n)")
        .format(sql.Identifier(table), sql.SQL(",\n    ").join(definitions))
        .as_string(cur)
    )

    columns = tuple(
        Column(name, type_sql, not_null, default is not None and not generated, bool(generated), sql_types[name])
        for name, type_sql, not_null, default, generated in column_rows
    )
    return TableDescription(table, columns, create_table, indexes)


def _column_types(cur: psycopg2.extensions.cursor, oid: int) -> dict[str, str]:
    """Each column's type as the server prints it under the empty search_path: qualified outside pg_catalog."""
    cur.execute(
        "SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod) FROM pg_catalog.pg_attribute a "
        "WHERE a.attrelid OPERATOR(pg_catalog.=) %s AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped",
        (oid,),
    )
    return dict(cur.fetchall())


def _definitions(
    cur: psycopg2.extensions.cursor, oid: int
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[str]]:
    """The table's columns, constraints and non-constraint indexes as the server prints them."""
    cur.execute(
        "SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull, "
        "       pg_catalog.pg_get_expr(d.adbin, d.adrelid), a.attgenerated::pg_catalog.text "
        "FROM pg_catalog.pg_attribute a LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid OPERATOR(pg_catalog.=) "
        "a.attrelid AND d.adnum OPERATOR(pg_catalog.=) a.attnum WHERE a.attrelid OPERATOR(pg_catalog.=) %s "
        "AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped ORDER BY a.attnum",
        (oid,),
    )
    column_rows = cur.fetchall()
    # NOT NULL rows (contype 'n', PostgreSQL 18+) are left out: the column definitions carry them, and
    # older servers reject the constraint syntax. Foreign keys last, for the reader.
    cur.execute(
        "SELECT conname, pg_catalog.pg_get_constraintdef(oid) FROM pg_catalog.pg_constraint "
        "WHERE conrelid OPERATOR(pg_catalog.=) %s AND contype OPERATOR(pg_catalog.<>) 'n' "
        "ORDER BY contype OPERATOR(pg_catalog.=) 'f', conname",
        (oid,),
    )
    constraint_rows = cur.fetchall()
    cur.execute(
        "SELECT pg_catalog.pg_get_indexdef(i.indexrelid) FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class ic "
        "ON ic.oid OPERATOR(pg_catalog.=) i.indexrelid WHERE i.indrelid OPERATOR(pg_catalog.=) %s AND NOT EXISTS "
        "(SELECT 1 FROM pg_catalog.pg_constraint c WHERE c.conindid OPERATOR(pg_catalog.=) i.indexrelid) "
        "ORDER BY ic.relname",
        (oid,),
    )
    return column_rows, constraint_rows, [row[0] for row in cur.fetchall()]


def extension_version(cur: psycopg2.extensions.cursor, name: str = "vector") -> str | None:
    """The installed version of the extension, or None."""
    cur.execute("SELECT extversion FROM pg_catalog.pg_extension WHERE extname OPERATOR(pg_catalog.=) %s", (name,))
    row = cur.fetchone()
    return row[0] if row else None


def extension_schema(cur: psycopg2.extensions.cursor, name: str = "vector") -> str | None:
    """The schema the extension lives in, or None when it is not installed."""
    cur.execute(
        "SELECT n.nspname FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n "
        "ON n.oid OPERATOR(pg_catalog.=) e.extnamespace WHERE e.extname OPERATOR(pg_catalog.=) %s",
        (name,),
    )
    row = cur.fetchone()
    return row[0] if row else None


# The spelling of a type a manifest may record (format_type's: `vector(1536)`, `character varying(255)`,
# `timestamp(3) with time zone`, `text[]`, `"Mixed"`): checked before the server parses it as a type name.
_TYPE_NAME = re.compile(r'[A-Za-z_"][A-Za-z0-9_ ."]{0,150}(\([0-9, ]{1,20}\))?[A-Za-z ]{0,20}(\[\])*')


@dataclass(frozen=True)
class ColumnType:
    """A column's type as the server knows it: its oid (what a binary COPY field must be), and how SQL of ours
    spells it under the empty search_path (qualified outside pg_catalog; without a typmod for a set's types)."""

    oid: int
    sql_type: str


def relation_column_types(cur: psycopg2.extensions.cursor, relation: sql.Composable) -> dict[str, ColumnType]:
    """The columns of a table (or temporary table) by name."""
    cur.execute(
        "SELECT a.attname, a.atttypid, pg_catalog.format_type(a.atttypid, a.atttypmod) FROM pg_catalog.pg_attribute a "
        "WHERE a.attrelid OPERATOR(pg_catalog.=) %s::pg_catalog.regclass AND a.attnum OPERATOR(pg_catalog.>) 0 "
        "AND NOT a.attisdropped",
        (relation.as_string(cur),),
    )
    return {name: ColumnType(oid, sql_type) for name, oid, sql_type in cur.fetchall()}


def set_column_types(cur: psycopg2.extensions.cursor, type_names: Sequence[str]) -> list[ColumnType | None]:
    """The types a set's manifest records (as the source printed them, relative to pgvector's schema), resolved in
    this database: None for one it does not have. pgvector's schema is searched after pg_catalog (always first), never
    a schema other roles may create types in; a spelling format_type would not print is None without being parsed."""
    spelled = [name if _TYPE_NAME.fullmatch(name) else None for name in type_names]
    ext_schema = extension_schema(cur)
    path = sql.Identifier(ext_schema).as_string(cur) if ext_schema else ""
    cur.execute("SELECT pg_catalog.set_config('search_path', %s, true)", (path,))
    try:
        oids = []
        for name in spelled:  # a handful of columns: one short query each
            cur.execute("SELECT pg_catalog.to_regtype(%s)::pg_catalog.oid", (name,))
            oids.append(single_value(cur))
    finally:
        if not cur.connection.closed and cur.connection.get_transaction_status() != _IN_ERROR:
            cur.execute("SELECT pg_catalog.set_config('search_path', '', true)")
    printed = []
    for oid in oids:
        cur.execute("SELECT pg_catalog.format_type(%s, NULL)", (oid or 0,))
        printed.append(single_value(cur))
    return [
        ColumnType(oid, sql_type) if name is not None and oid else None
        for name, oid, sql_type in zip(spelled, oids, printed, strict=True)
    ]


def server_version(cur: psycopg2.extensions.cursor) -> str:
    """The server's version string (SHOW server_version)."""
    cur.execute("SHOW server_version")
    return cast(str, single_value(cur))


def pgvector_name(cur: psycopg2.extensions.cursor, name: str) -> sql.Composed:
    """`name` (a type or function of pgvector) qualified by the extension's schema: sessions run with an empty
    search_path, in which pgvector's names resolve only so."""
    return sql.SQL("{}.{}").format(sql.Identifier(extension_schema(cur) or "public"), sql.Identifier(name))


def pgvector_operator_classes(cur: psycopg2.extensions.cursor) -> frozenset[str]:
    """The operator classes the vector extension defines (vector_cosine_ops, …): an index definition names them
    through the extension's schema."""
    cur.execute(
        "SELECT o.opcname FROM pg_catalog.pg_opclass o JOIN pg_catalog.pg_depend d ON d.objid OPERATOR(pg_catalog.=) "
        "o.oid AND d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_opclass'::pg_catalog.regclass AND d.deptype "
        "OPERATOR(pg_catalog.=) 'e' JOIN pg_catalog.pg_extension e ON e.oid OPERATOR(pg_catalog.=) d.refobjid "
        "WHERE e.extname OPERATOR(pg_catalog.=) 'vector'"
    )
    return frozenset(row[0] for row in cur.fetchall())


def langchain_layout(embedding_columns: Iterable[str]) -> str:
    """Which LangChain package wrote the store, told apart by the embedding table's (or file's) column names."""
    names = set(embedding_columns)
    if {COMMUNITY_CUSTOM_ID_COLUMN, COMMUNITY_KEY_COLUMN} <= names:
        return LANGCHAIN_COMMUNITY
    if EMBEDDING_ID_COLUMN in names:
        return LANGCHAIN_POSTGRES
    return "unknown"


@dataclass(frozen=True)
class RebuildableIndex:
    """An index a restore may drop before loading an emptied table and build again after: its name and
    the server's own definition of it (pg_get_indexdef)."""

    name: str
    definition: str


def referenced_tables(cur: psycopg2.extensions.cursor, schema: str, table: str) -> list[str]:
    """The tables of `schema` that `table`'s foreign keys reference (itself left out), by name."""
    cur.execute(
        "SELECT DISTINCT r.relname FROM pg_catalog.pg_constraint k JOIN pg_catalog.pg_class r "
        "ON r.oid OPERATOR(pg_catalog.=) k.confrelid JOIN pg_catalog.pg_namespace n "
        "ON n.oid OPERATOR(pg_catalog.=) r.relnamespace WHERE k.contype OPERATOR(pg_catalog.=) 'f' "
        "AND k.conrelid OPERATOR(pg_catalog.=) %s AND n.nspname OPERATOR(pg_catalog.=) %s "
        "AND k.confrelid OPERATOR(pg_catalog.<>) k.conrelid ORDER BY 1",
        (table_oid(cur, schema, table), schema),
    )
    return [row[0] for row in cur.fetchall()]


def owned_sequences(cur: psycopg2.extensions.cursor, schema: str, table: str) -> list[tuple[str, str]]:
    """(column, sequence) of the table's columns that draw from a sequence they own (serial, identity)."""
    cur.execute(
        "SELECT a.attname, s.seq FROM pg_catalog.pg_attribute a, LATERAL (SELECT pg_catalog.pg_get_serial_sequence("
        "a.attrelid::pg_catalog.regclass::pg_catalog.text, a.attname) AS seq) s WHERE a.attrelid OPERATOR(pg_catalog.=) "
        "%s AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped AND s.seq IS NOT NULL ORDER BY a.attnum",
        (table_oid(cur, schema, table),),
    )
    return [(column, sequence) for column, sequence in cur.fetchall()]


def tables_with_vectors(cur: psycopg2.extensions.cursor, schema: str) -> list[str]:
    """The tables of `schema` with a column of pgvector's types, by name."""
    cur.execute(
        # pgvector's own types (the extension's schema): a type of the same name in another schema is not one.
        "SELECT DISTINCT c.relname FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid "
        "OPERATOR(pg_catalog.=) a.attrelid JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) "
        "c.relnamespace JOIN pg_catalog.pg_type t ON t.oid OPERATOR(pg_catalog.=) a.atttypid "
        "JOIN pg_catalog.pg_extension e ON e.extnamespace OPERATOR(pg_catalog.=) t.typnamespace "
        "AND e.extname OPERATOR(pg_catalog.=) 'vector' WHERE n.nspname OPERATOR(pg_catalog.=) %s "
        "AND c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p}'::pg_catalog.\"char\"[]) AND a.attnum OPERATOR(pg_catalog.>) 0 "
        "AND NOT a.attisdropped AND t.typname OPERATOR(pg_catalog.=) ANY (%s) ORDER BY 1",
        (schema, list(VECTOR_TYPES)),
    )
    return [row[0] for row in cur.fetchall()]


def rebuildable_indexes(cur: psycopg2.extensions.cursor, schema: str, table: str) -> list[RebuildableIndex]:
    """The table's indexes that nothing else needs while it is empty: not behind a constraint (primary
    key, unique, exclusion: foreign keys may depend on those), not unique, valid, in the default
    tablespace (pg_get_indexdef omits it) and without a comment (dropping would lose it)."""
    cur.execute(
        """
        SELECT c.relname, pg_catalog.pg_get_indexdef(i.indexrelid)
        FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) i.indexrelid
        WHERE i.indrelid OPERATOR(pg_catalog.=) %s AND i.indisvalid AND NOT i.indisunique
          AND c.reltablespace OPERATOR(pg_catalog.=) 0
          AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k WHERE k.conindid OPERATOR(pg_catalog.=) i.indexrelid)
          AND pg_catalog.obj_description(i.indexrelid, 'pg_class') IS NULL
        ORDER BY c.relname
        """,
        (table_oid(cur, schema, table),),
    )
    return [RebuildableIndex(name, definition) for name, definition in cur.fetchall()]


def missing_privileges(cur: psycopg2.extensions.cursor, schema: str, tables: list[str], truncate: bool) -> list[str]:
    """The privileges a restore into `tables` needs that the current role lacks, as 'PRIVILEGE on schema.table'."""
    return lacking_privileges(cur, schema, tables, ["SELECT", "INSERT"] + (["TRUNCATE"] if truncate else []))


def lacking_privileges(
    cur: psycopg2.extensions.cursor, schema: str, tables: Sequence[str], privileges: Sequence[str]
) -> list[str]:
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


def index_rebuild_refusal(cur: psycopg2.extensions.cursor, schema: str, table: str) -> str | None:
    """Why the current role cannot drop and rebuild the table's indexes (not its owner, or no CREATE on the
    schema, which CREATE INDEX needs); None when it can."""
    cur.execute(
        "SELECT pg_catalog.pg_has_role(c.relowner, 'USAGE'), pg_catalog.pg_get_userbyid(c.relowner), "
        "pg_catalog.has_schema_privilege(%s, 'CREATE'), current_user FROM pg_catalog.pg_class c "
        "WHERE c.oid OPERATOR(pg_catalog.=) %s",
        (schema, table_oid(cur, schema, table)),
    )
    owns, owner, can_create, user = single_row(cur)
    if not owns:
        return f"role {user} does not own {table} (its owner is {owner})"
    if not can_create:
        return f"role {user} has no CREATE privilege on schema {schema}"
    return None
