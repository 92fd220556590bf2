"""The TableSet of the tables a run names (TableSpec), checked against the catalog: each exists, holds a vector,
halfvec or sparsevec column (or is referenced by a named table that does), its row filter is safe; restore order
from the catalog's foreign keys. LangChain's two tables keep their own descriptions (DEFAULT_TABLES)."""

import dataclasses
from collections.abc import Callable, Sequence

import psycopg2.extensions

from pgvector_pipeline.errors import DataError, InvalidParams, ResourceNotFound, named
from pgvector_pipeline.postgres import catalog
from pgvector_pipeline.postgres.row_filter import checked_row_filter
from pgvector_pipeline.tables import DEFAULT_TABLES, BackupTable, TableSet, TableSpec

# A listing of the schema's vector tables, in a message, stops after this many names.
_SHOWN = 20


def resolve_table_set(
    cur: psycopg2.extensions.cursor, schema: str, specs: Sequence[TableSpec], warn: Callable[[str], None]
) -> TableSet:
    """The TableSet of `specs` in `schema`; ResourceNotFound for a missing table, InvalidParams for a table without
    vectors that no named table references, a table named twice, a refused row filter or a cycle of foreign keys."""
    names = [spec.name for spec in specs]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice or not specs:
        raise InvalidParams(f"tables names {', '.join(twice)} twice." if twice else "tables names no table.")
    described = {spec.name: _described(cur, schema, spec.name) for spec in specs}
    references = {name: catalog.referenced_tables(cur, schema, name) for name in names}
    referenced = {target for targets in references.values() for target in targets}
    without = [name for name, d in described.items() if not d.vector_columns and name not in referenced]
    if without:
        raise InvalidParams(
            f"{', '.join(without)} in schema {schema} has no vector, halfvec or sparsevec column, and no table named "
            f"references it. Name pgvector tables (and the tables they reference); {_vector_tables(cur, schema)}."
        )
    for name, targets in references.items():
        outside = [target for target in targets if target not in described]
        if outside:
            warn(
                f"{name} references {', '.join(outside)}, which the set does not hold: a restore needs their rows "
                f"in the target already (or restore with the foreign key's rows present)."
            )
    return TableSet.in_dependency_order(
        _backup_table(spec, described[spec.name], references[spec.name]) for spec in specs
    )


def _described(cur: psycopg2.extensions.cursor, schema: str, name: str) -> catalog.TableDescription:
    description = catalog.describe_table(cur, schema, name)
    if description is None:
        raise ResourceNotFound(
            f"Table {schema}.{name} does not exist in this database; {_vector_tables(cur, schema)}. Check the name "
            f"and the run's schema (",
            named("db_schema"),
            ").",
        )
    return description


def _backup_table(spec: TableSpec, description: catalog.TableDescription, references: list[str]) -> BackupTable:
    known = DEFAULT_TABLES.get(spec.name)
    row_filter = (
        checked_row_filter(spec.row_filter, spec.name, [c.name for c in description.data_columns])
        if spec.row_filter
        else None
    )
    if known is not None:  # LangChain's own tables keep their label, truncate default and embedding role
        return dataclasses.replace(known, row_filter=row_filter)
    return BackupTable(spec.name, label=spec.name, references=tuple(references), row_filter=row_filter)


def _vector_tables(cur: psycopg2.extensions.cursor, schema: str) -> str:
    held = catalog.tables_with_vectors(cur, schema)
    shown = ", ".join(held[:_SHOWN]) + (", …" if len(held) > _SHOWN else "")
    return f"the schema's tables with vectors are {shown}" if held else f"schema {schema} has no table with vectors"


def refuse_tables_no_backup_takes(cur: psycopg2.extensions.cursor, schema: str, tables: Sequence[str]) -> None:
    """DataError unless each of `tables` (a set's, being restored into `schema`) is one a backup takes: it has a
    vector, halfvec or sparsevec column in the target's catalog, or a table of the schema that has one references
    it. A set is untrusted input: a table added to its manifest (with a correct checksum) must not let a restore
    replace an app's table that holds no vectors."""
    with_vectors = set(catalog.tables_with_vectors(cur, schema))
    referenced = {target for table in with_vectors for target in catalog.referenced_tables(cur, schema, table)}
    others = [table for table in tables if table not in with_vectors and table not in referenced]
    if others:
        raise DataError(
            f"The set holds {', '.join(others)}, which in schema {schema} has no vector, halfvec or sparsevec "
            f"column and no table with one references: a backup never takes such a table, so the set was changed or "
            f"damaged. Nothing was restored. Restore another set, or name the set's vector tables (",
            named("tables"),
            ").",
        )
