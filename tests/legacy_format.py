"""Writes backup sets the way the replaced system did, to test that they list and restore.

It exported `SELECT *` through a client-side cursor into csv.writer, so json/jsonb values (parsed into
dicts by psycopg2) became Python reprs such as {'source': 'x', 'ok': True}, and NULL became an empty
field. Its log was rewritten on every backup, and it wrote no manifest.

    python -m tests.legacy_format DSN DIRECTORY TIMESTAMP    # regenerate a fixture
"""

import csv
import sys
from pathlib import Path

from pgvector_pipeline.names import BACKUP_TABLES
from pgvector_pipeline.store.layout import LOG_FILE_NAME, csv_name
from pgvector_pipeline.testing.db import app_connection


def write_legacy_set(dsn: str, directory: Path, timestamp: str) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    conn = app_connection(dsn)
    try:
        for table in BACKUP_TABLES:
            with conn.cursor() as cur:
                cur.execute(f"SELECT * FROM {table}")  # as the old system did; fixed table names
                path = directory / csv_name(table, timestamp)
                with open(path, "w", newline="", encoding="utf-8") as file:
                    writer = csv.writer(file)
                    writer.writerow([d[0] for d in cur.description])
                    for row in cur:
                        writer.writerow(row)
                written.append(path)
    finally:
        conn.close()
    (directory / LOG_FILE_NAME).write_text(
        f"=== Vector Table Backup Log ===\nBackup Time: {timestamp}\nTask ID: legacy\n", encoding="utf-8"
    )
    return written


if __name__ == "__main__":
    write_legacy_set(sys.argv[1], Path(sys.argv[2]), sys.argv[3])
