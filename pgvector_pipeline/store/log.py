"""The human-readable vector_backup_log.txt, appended to (never overwritten) once per backup."""

import os
from datetime import datetime
from pathlib import Path

from pgvector_pipeline.store.layout import LOG_FILE_NAME


def append_log_entry(directory: Path, headline: str, details: list[str]) -> Path:
    path = Path(directory) / LOG_FILE_NAME
    stamp = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %z")
    entry = f"[{stamp}] {headline}\n" + "".join(f"    {line}\n" for line in details)
    with open(path, "a", encoding="utf-8") as file:
        file.write(entry)
        file.flush()
        os.fsync(file.fileno())
    return path
