"""Metadata shown in the Dagster UI: one backup CSV (the same whether Dagster wrote the set or found it on
disk), and per-table statistics of restores and truncates."""

from pathlib import Path
from typing import Any

import dagster as dg

from pgvector_pipeline.sizes import human_size


def set_file_metadata(
    *,
    path: Path,
    rows: int | None,
    size_bytes: int,
    sha256: str | None,
    columns: list[tuple[str, str]] | None,
    manifest_path: Path | None,
) -> dict:
    # Insertion order is display order: what a person checks first comes first.
    """Metadata of one backup CSV: rows, size, path, checksum, manifest and columns."""
    metadata: dict[str, Any] = {"dagster/row_count": rows} if rows is not None else {}
    metadata.update({"size": human_size(size_bytes), "path": dg.MetadataValue.path(str(path))})
    if sha256:
        metadata["sha256"] = sha256
    metadata.update(
        {
            "manifest": dg.MetadataValue.path(str(manifest_path)) if manifest_path else "none (legacy set)",
            "backup_dir": dg.MetadataValue.path(str(path.parent)),
            "bytes": size_bytes,
        }
    )
    if columns:
        metadata["dagster/column_schema"] = dg.TableSchema(
            columns=[dg.TableColumn(name, type_) for name, type_ in columns]
        )
    return metadata


def stats_table(stats: list, fields: list[str]) -> dg.TableMetadataValue:
    """One row per table of `stats` (objects with `.table` and `fields`), for restore and truncate results."""
    return dg.MetadataValue.table(
        records=[dg.TableRecord({"table": s.table, **{f: round(getattr(s, f), 3) for f in fields}}) for s in stats],
        schema=dg.TableSchema(
            columns=[dg.TableColumn("table", "string")]
            + [dg.TableColumn(f, "float" if f.endswith("_s") else "int") for f in fields]
        ),
    )
