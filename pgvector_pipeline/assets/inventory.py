"""Every backup set under the root as one table: global and per task, newest first."""

import json

import dagster as dg
import pandas as pd

from pgvector_pipeline.assets.metadata import Metadata
from pgvector_pipeline.contract import INVENTORY_ASSET
from pgvector_pipeline.resources import BackupStoreResource
from pgvector_pipeline.store.backup_set_info import BackupSetInfo, set_record
from pgvector_pipeline.tables import DEFAULT_TABLES

# The UI group of the backup assets and the inventory.
BACKUP_GROUP = "vector_backups"
INVENTORY = dg.AssetKey(INVENTORY_ASSET)
# What a person looks for first comes first: which set, its status, how large and how compressed.
INVENTORY_COLUMNS = [
    "task_id",
    "timestamp",
    "taken_at",
    "status",
    "size",
    "format",
    "compression",
    "compression_ratio",
    "collections",
    # age encryption (store.keys): whether, and to the recipients with which fingerprints.
    "encrypted",
    "recipients",
    *(f"{table.label}_rows" for table in DEFAULT_TABLES.tables),
    *(f"{table.label}_bytes" for table in DEFAULT_TABLES.tables),
    "tables",
    "complete",
    "has_manifest",
    "has_log",
    "duration_s",
    "source_database",
    "source_schema",
    "location",
    "store",
    "table_names",
    "collection_names",
]
# Columns holding lists: the metadata table (scalars only) holds them as JSON text, which the client reads back.
LIST_COLUMNS = ("table_names", "collection_names")
# The metadata table (UI and GraphQL) holds the newest sets; the DataFrame holds them all.
UI_TABLE_ROWS = 1000


# Counts a set may lack (legacy sets have no row counts): nullable integers, so one missing count does not
# turn every other count into a float (300.0).
_COUNT_COLUMNS = [c for c in INVENTORY_COLUMNS if c.endswith(("_rows", "_bytes"))]


def inventory_frame(sets: list[BackupSetInfo], where: str) -> pd.DataFrame:
    """The inventory's DataFrame: one row per set of the store `where`, newest first."""
    frame = pd.DataFrame([set_record(s, where) for s in sets], columns=INVENTORY_COLUMNS)
    return frame.astype({column: "Int64" for column in _COUNT_COLUMNS})


def inventory_metadata(frame: pd.DataFrame, where: str) -> Metadata:
    """The inventory's metadata: counts, and a table of the newest sets (what the UI and GraphQL show)."""
    records = [
        dg.TableRecord({k: _cell(k, v) for k, v in row.items()})
        for row in frame.head(UI_TABLE_ROWS).astype(object).to_dict("records")
    ]
    schema = dg.TableSchema(
        columns=[
            dg.TableColumn(
                c,
                "bool"
                if c in ("complete", "has_manifest", "has_log", "encrypted")
                else "int"
                if c in _COUNT_COLUMNS
                else "float"
                if c in ("compression_ratio", "duration_s")
                else "string",
            )
            for c in INVENTORY_COLUMNS
        ]
    )
    return {
        "dagster/row_count": len(frame),
        "complete_sets": int(frame["complete"].sum()),
        "incomplete_sets": int((~frame["complete"]).sum()),
        "root": dg.MetadataValue.path(where),
        "sets_in_table": len(records),
        "sets": dg.MetadataValue.table(records=records, schema=schema),
    }


def _cell(column: str, value: object) -> str | int | float | bool | None:
    """A value of the DataFrame as a cell of the metadata table."""
    if column in LIST_COLUMNS:
        return None if value is None else json.dumps(value)
    if pd.isna(value):
        return None
    return int(value) if column in _COUNT_COLUMNS else value  # type: ignore[call-overload,return-value]


def inventory_refreshed(where: str, sets: list[BackupSetInfo]) -> dg.AssetMaterialization:
    """A materialization of the inventory from `sets`, the store's listing as it is now: runs that add or
    delete sets log one, so a listing right after them includes what they did."""
    return dg.AssetMaterialization(INVENTORY, metadata=inventory_metadata(inventory_frame(sets, where), where))


@dg.asset(
    key=INVENTORY,
    group_name=BACKUP_GROUP,
    kinds={"pandas"},
    description=(
        "All backup sets on disk (global and per task), newest first, with their status: complete, legacy "
        "(old system, not adopted yet), unfinished (being written, or its run died), incomplete, damaged. "
        "Refreshed by every run that adds or deletes sets, and by backup_discovery_sensor."
    ),
)
def vector_backup_inventory(backup_store: BackupStoreResource) -> dg.Output[pd.DataFrame]:
    """Every backup set on disk as a DataFrame, with a table of the newest sets for the UI and GraphQL."""
    store = backup_store.store()
    frame = inventory_frame(store.list_sets(), store.where)
    return dg.Output(frame, metadata=inventory_metadata(frame, store.where))
