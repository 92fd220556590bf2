"""What a backup set holds: the tables it backs up, described once. Backup, manifest, listing, restore,
truncate and the Dagster assets all take their tables from here; no other module spells a table name.

A set is what its manifest says (store.manifest lists its tables); the table set below is what a new
backup writes, and what a set without a manifest (the old system's) is taken to hold.

A run may name other tables instead (`tables`: any table with a vector, halfvec or sparsevec column, and the
tables they reference): postgres.table_sets checks the names against the catalog and builds their TableSet, in
restore order from the catalog's foreign keys (TableSet.in_dependency_order).
"""

from collections.abc import Iterable
from dataclasses import dataclass

from pgvector_pipeline.errors import InvalidParams
from pgvector_pipeline.names import COLLECTION_TABLE, COLUMN_NAME_PATTERN, EMBEDDING_TABLE


@dataclass(frozen=True)
class BackupTable:
    """One table of a set, as backup, restore and truncate treat it."""

    name: str
    # The short name inventory columns and messages use ("collection_rows").
    label: str
    # Tables whose rows this table's rows reference (foreign keys): restored before it, truncated with it.
    references: tuple[str, ...] = ()
    # Emptied by "truncate after backup" and by the truncate job's default.
    truncated_by_default: bool = False
    # Holds the vectors: its dimensions are recorded, and its columns tell which LangChain layout wrote it.
    holds_embeddings: bool = False
    # Only the rows this condition keeps (checked and re-printed by postgres.row_filter); None: every row.
    row_filter: str | None = None


@dataclass(frozen=True)
class TableSpec:
    """A table a run names to back up (run config: untrusted until checked): its name, its schema ('': the run's
    db_schema), and an optional row filter (a SQL condition on its columns, checked by postgres.row_filter)."""

    name: str
    row_filter: str = ""
    schema: str = ""

    def __post_init__(self) -> None:
        for what, value in (("Table name", self.name), ("Schema name", self.schema or "public")):
            if not isinstance(value, str) or not COLUMN_NAME_PATTERN.fullmatch(value):
                raise InvalidParams(
                    f"{what} {value!r} is not a plain name (letters, digits, underscores, at most 63, not starting "
                    f"with a digit); name it as the catalog spells it, the schema apart (schema: name)."
                )


def schema_of(specs: Iterable[TableSpec], default: str) -> str:
    """The one schema the tables named are in (`default`, the run's db_schema, for those that name none); a set
    holds tables of one schema, so InvalidParams for several."""
    schemas = sorted({spec.schema or default for spec in specs}) or [default]
    if len(schemas) > 1:
        raise InvalidParams(
            f"tables names tables of schemas {', '.join(schemas)}; a set holds tables of one schema (its manifest "
            f"records it, and a restore loads them into one). Back up each schema in a run of its own."
        )
    return schemas[0]


@dataclass(frozen=True)
class TableSet:
    """The tables a backup writes, in restore order (a table after those it references)."""

    tables: tuple[BackupTable, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(table.name for table in self.tables)

    def get(self, name: str) -> BackupTable | None:
        return next((table for table in self.tables if table.name == name), None)

    @property
    def truncated_by_default(self) -> list[str]:
        return [table.name for table in self.tables if table.truncated_by_default]

    @property
    def embedding_table(self) -> str | None:
        return next((table.name for table in self.tables if table.holds_embeddings), None)

    def in_order(self, names: Iterable[str]) -> list[str]:
        """`names` in restore order; names outside the set go last, in the order given."""
        wanted = list(dict.fromkeys(names))
        return [name for name in self.names if name in wanted] + [name for name in wanted if name not in self.names]

    def references_of(self, name: str) -> tuple[str, ...]:
        """The tables `name`'s foreign keys may reference (none for a table outside the set)."""
        table = self.get(name)
        return table.references if table else ()

    def referencing(self, name: str) -> list[str]:
        """The tables whose rows reference `name`'s rows."""
        return [table.name for table in self.tables if name in table.references]

    @classmethod
    def in_dependency_order(cls, tables: Iterable[BackupTable]) -> "TableSet":
        """The tables in restore order (each after the tables of the set it references; otherwise as given);
        InvalidParams naming a cycle of foreign keys, which no load order satisfies."""
        pending, ordered = list(tables), list[BackupTable]()
        names = {table.name for table in pending}
        while pending:
            done = {table.name for table in ordered}
            ready = next((t for t in pending if all(r in done or r not in names for r in t.references)), None)
            if ready is None:
                raise InvalidParams(
                    f"The foreign keys of {', '.join(t.name for t in pending)} reference each other in a cycle: no "
                    f"order loads them. Back them up in separate sets, or drop a foreign key of the cycle."
                )
            ordered.append(ready)
            pending.remove(ready)
        return cls(tuple(ordered))


DEFAULT_TABLES = TableSet(
    (
        BackupTable(COLLECTION_TABLE, label="collection"),
        BackupTable(
            EMBEDDING_TABLE,
            label="embedding",
            references=(COLLECTION_TABLE,),
            truncated_by_default=True,
            holds_embeddings=True,
        ),
    )
)
