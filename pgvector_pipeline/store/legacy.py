"""Reading sets written by the replaced system, whose JSON columns hold Python dict reprs ({'k': 'v'})."""

import ast
import csv
import io
import json
from typing import Any, BinaryIO, TextIO

from pgvector_pipeline.errors import DataError
from pgvector_pipeline.names import METADATA_COLUMN

# The JSON columns of both LangChain layouts.
LEGACY_JSON_COLUMNS = frozenset({METADATA_COLUMN})
# The largest field PostgreSQL stores (1 GB): legacy fields up to that read (csv's default limit is 128 KiB).
MAX_FIELD_BYTES = 1 << 30


def legacy_csv_reader(text: TextIO) -> Any:  # csv.reader's type is private (_csv.Reader)
    """A csv.reader over an old-system CSV that accepts every field PostgreSQL could have stored."""
    csv.field_size_limit(MAX_FIELD_BYTES)  # process-wide in the csv module: raised, never lowered
    return csv.reader(text)


def _as_json(value: str, column: str, line: int, file_name: str) -> str:
    if value == "":
        return value
    try:
        json.loads(value)
        return value
    except (ValueError, RecursionError):
        pass
    try:
        # literal_eval evaluates literals only (dicts, lists, strings, numbers, True/False/None), never code.
        # Literals JSON cannot hold fail too: {[1]: 2} (TypeError), a set, bytes, deep nesting.
        return json.dumps(ast.literal_eval(value), ensure_ascii=False)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as exc:
        raise DataError(
            f"{file_name}, CSV line {line}: column {column} is neither JSON nor a Python literal that JSON can hold "
            f"({type(exc).__name__}; {len(value)} characters, not shown). Fix that field (for example in a copy of "
            f"the set), or "
            f"restore another set."
        ) from None


class JsonRepairingCsvStream:
    """A read()-able stream of the CSV with each JSON column rewritten as real JSON, one row at a time.

    The file is never loaded whole: rows are parsed (binary in, `newline=''`, so CR/LF inside quoted
    documents survive) and re-emitted as they are read by COPY.
    """

    def __init__(
        self, binary: BinaryIO, file_name: str = "the CSV", json_columns: frozenset[str] = LEGACY_JSON_COLUMNS
    ):
        self._file_name = file_name
        self._reader = legacy_csv_reader(io.TextIOWrapper(binary, encoding="utf-8", newline=""))
        self._out = io.StringIO()
        # csv.writer quotes a field when it holds a character of the line terminator. With "\r\n" every
        # field holding a CR or an LF (a lone CR included) is quoted, as PostgreSQL's CSV reader requires;
        # PostgreSQL accepts CRLF line ends, and the old writer used them too.
        self._writer = csv.writer(self._out, lineterminator="\r\n")
        header = self._next_row() or []
        self._json_indexes = [(i, name) for i, name in enumerate(header) if name in json_columns]
        self._writer.writerow(header)
        self._pending = bytearray()

    def _fill(self, size: int) -> None:
        while size < 0 or len(self._pending) < size:
            row = self._next_row()
            if row is None:
                break
            for index, name in self._json_indexes:
                if index < len(row):
                    row[index] = _as_json(row[index], name, self._reader.line_num, self._file_name)
            self._writer.writerow(row)
            if self._out.tell() > (1 << 16):
                self._flush()
        self._flush()

    def _next_row(self) -> list[str] | None:
        try:
            return next(self._reader, None)
        except (csv.Error, UnicodeDecodeError) as exc:
            raise DataError(
                f"{self._file_name}, near CSV line {self._reader.line_num + 1}: cannot be read as UTF-8 CSV ({exc}). "
                f"The file is damaged: restore another set."
            ) from None

    def _flush(self) -> None:
        self._pending += self._out.getvalue().encode("utf-8")
        self._out.seek(0)
        self._out.truncate()

    def read(self, size: int = -1) -> bytes:
        self._fill(size)
        if size < 0:
            size = len(self._pending)
        chunk = bytes(self._pending[:size])
        del self._pending[:size]
        return chunk
