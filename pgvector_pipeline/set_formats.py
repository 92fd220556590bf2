"""How a set stores its tables' rows: the one home of the format names, their file extensions and the setting.

csv      COPY's CSV with a header row: what the old system wrote, what psql and people read (the default)
binary   PostgreSQL's binary COPY stream (see pgcopy): about a third of the bytes and a quarter of the server's
         work of CSV, readable only into columns of the same types (the manifest records them)
"""

import os
from typing import Final, Literal

from pgvector_pipeline.errors import InvalidParams

CSV: Final = "csv"
BINARY: Final = "binary"
SET_FORMATS = (CSV, BINARY)
SetFormat = Literal["csv", "binary"]
DEFAULT_SET_FORMAT: SetFormat = CSV
# The deployment's format for new sets (a run, the CLI and the client may choose another).
SET_FORMAT_ENV = "PGVECTOR_BACKUP_FORMAT"
# The extension of a table's file, before a codec's suffix: no one takes a binary stream for a CSV.
FILE_EXTENSION = {CSV: "csv", BINARY: "pgcopy"}
FORMAT_OF_EXTENSION = {extension: name for name, extension in FILE_EXTENSION.items()}


def set_format_of(name: str) -> SetFormat:
    """The format a backup asked for: `name`, else $PGVECTOR_BACKUP_FORMAT, else csv; resolved when the backup runs
    (InvalidParams naming the choices for anything else)."""
    chosen = name or os.environ.get(SET_FORMAT_ENV) or DEFAULT_SET_FORMAT
    if chosen == CSV:
        return CSV
    if chosen == BINARY:
        return BINARY
    where = "format" if name else f"${SET_FORMAT_ENV}"
    raise InvalidParams(f"{where} is {chosen[:40]!r}: a set's format is one of {', '.join(SET_FORMATS)}.")
