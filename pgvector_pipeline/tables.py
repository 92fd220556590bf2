"""What a backup set holds: the tables it backs up, described once. Backup, manifest, listing, restore,
truncate and the Dagster assets all take their tables from here; no other module spells a table name.

A set is what its manifest says (store.manifest lists its tables); the table set below is what a new
backup writes, and what a set without a manifest (the old system's) is taken to hold.

To back up a further table, add a BackupTable to DEFAULT_TABLES (in restore order: a table after the
tables it references) and give it an asset key in assets/backup.py's BACKUP_ASSETS; nothing else changes.
"""

from collections.abc import Iterable
from dataclasses import dataclass

from pgvector_pipeline.names import COLLECTION_TABLE, EMBEDDING_TABLE


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
