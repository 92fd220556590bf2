"""The per-set JSON manifest: what a set holds and how to verify and recreate it."""

import json
from pathlib import Path

from pgvector_pipeline.errors import DataError

MANIFEST_FORMAT = "pgvector-pipeline-backup/1"


def read_manifest(path: Path) -> dict:
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"Manifest {path} cannot be read ({exc}). The set may be damaged.") from exc
    if not isinstance(document, dict) or document.get("format") != MANIFEST_FORMAT:
        raise DataError(f"{path} is not a manifest this version understands (expected format {MANIFEST_FORMAT}).")
    return document
