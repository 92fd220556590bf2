"""Metadata shown in the Dagster UI: one backup CSV (the same whether Dagster wrote the set or found it on
disk), and per-table statistics of restores and truncates."""

from collections.abc import Sequence
from typing import Protocol

import dagster as dg

from pgvector_pipeline.sizes import human_size
from pgvector_pipeline.store.layout import parse_set_file_name
from pgvector_pipeline.store.manifest import ManifestCollections, ManifestTable

# Metadata as this code location gives it: Dagster's MetadataValues, or the plain values Dagster wraps in one (its
# RawMetadataValue, which holds these and more, is not exported).
Metadata = dict[str, dg.MetadataValue | dg.TableSchema | str | int | float | None]


class TableStats(Protocol):
    """Statistics of one table (of a restore, a truncate): stats_table reads `table` and the fields it is given."""

    @property
    def table(self) -> str: ...


def set_file_metadata(
    *, location: str, file_name: str, size_bytes: int, entry: ManifestTable | None, manifest_name: str | None
) -> Metadata:
    # Insertion order is display order: what a person checks first comes first.
    """Metadata of one table file of a set in `location` (a directory, or an s3:// URL): rows, size, path,
    checksum, manifest, columns and compression, from its manifest entry (None for a set without a manifest:
    size and path only)."""
    metadata: Metadata = {"dagster/row_count": entry.rows} if entry else {}
    metadata.update({"size": human_size(size_bytes), "path": dg.MetadataValue.path(f"{location}/{file_name}")})
    if entry:
        metadata["sha256"] = entry.file_sha256
    metadata.update(
        {
            "manifest": dg.MetadataValue.path(f"{location}/{manifest_name}") if manifest_name else "none (legacy set)",
            "backup_dir": dg.MetadataValue.path(location),
            "bytes": size_bytes,
        }
    )
    if entry:
        metadata["dagster/column_schema"] = dg.TableSchema(
            columns=[dg.TableColumn(column.name, column.type) for column in entry.columns]
        )
        metadata.update(
            {
                "compression": entry.codec,
                "format": parsed.set_format if (parsed := parse_set_file_name(file_name)) else "csv",
                "content_bytes": entry.bytes,
                "compression_ratio": round(entry.bytes / max(entry.file_bytes, 1), 2),
            }
        )
    return metadata


def encryption_metadata(recipients: list[str] | tuple[str, ...]) -> Metadata:
    """Whether a set is age-encrypted, and to the recipients with which fingerprints (store.keys; never the keys)."""
    if not recipients:
        return {"encrypted": False}
    return {"encrypted": True, "recipients": ", ".join(recipients)}


def collections_metadata(record: ManifestCollections | None) -> Metadata:
    """Which collections a set holds and the embeddings of each (nothing when its manifest does not say)."""
    if record is None:
        return {}
    return {
        "collections": "all" if record.selected is None else "chosen: " + ", ".join(record.selected),
        "embeddings_per_collection": dg.MetadataValue.table(
            records=[dg.TableRecord({"collection": n, "embeddings": c}) for n, c in record.embeddings.items()],
            schema=dg.TableSchema(
                columns=[dg.TableColumn("collection", "string"), dg.TableColumn("embeddings", "int")]
            ),
        ),
    }


def stats_table(stats: Sequence[TableStats], fields: list[str]) -> dg.TableMetadataValue:
    """One row per table of `stats` (objects with `.table` and `fields`), for restore and truncate results."""
    return dg.MetadataValue.table(
        records=[dg.TableRecord({"table": s.table, **{f: round(getattr(s, f), 3) for f in fields}}) for s in stats],
        schema=dg.TableSchema(
            columns=[dg.TableColumn("table", "string")]
            + [dg.TableColumn(f, "float" if f.endswith("_s") else "int") for f in fields]
        ),
    )
