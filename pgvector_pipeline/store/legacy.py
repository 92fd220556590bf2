"""Reading sets written by the replaced system, whose JSON columns hold Python dict reprs ({'k': 'v'})."""

import ast
import csv
import io
import json
from typing import BinaryIO

from pgvector_pipeline.errors import DataError

# The JSON columns of both LangChain layouts.
LEGACY_JSON_COLUMNS = frozenset({"cmetadata"})


def _as_json(value: str, column: str, line: int) -> str:
    if value == "":
        return value
    try:
        json.loads(value)
        return value
    except ValueError:
        pass
    try:
        # literal_eval evaluates literals only (dicts, lists, strings, numbers, True/False/None), never code.
        parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
        raise DataError(
            f"Column {column} on CSV line {line} is neither JSON nor a Python literal: {value[:120]!r}"
        ) from exc
    return json.dumps(parsed, ensure_ascii=False)


class JsonRepairingCsvStream:
    """A read()-able stream of the CSV with each JSON column rewritten as real JSON, one row at a time.

    The file is never loaded whole: rows are parsed (binary in, `newline=''`, so CR/LF inside quoted
    documents survive) and re-emitted as they are read by COPY.
    """

    def __init__(self, binary: BinaryIO, json_columns: frozenset[str] = LEGACY_JSON_COLUMNS):
        self._reader = csv.reader(io.TextIOWrapper(binary, encoding="utf-8", newline=""))
        self._out = io.StringIO()
        # csv.writer quotes a field when it holds a character of the line terminator. With "\r\n" every
        # field holding a CR or an LF (a lone CR included) is quoted, as PostgreSQL's CSV reader requires;
        # PostgreSQL accepts CRLF line ends, and the old writer used them too.
        self._writer = csv.writer(self._out, lineterminator="\r\n")
        header = next(self._reader)
        self._json_indexes = [(i, name) for i, name in enumerate(header) if name in json_columns]
        self._writer.writerow(header)
        self._pending = bytearray()

    def _fill(self, size: int) -> None:
        while size < 0 or len(self._pending) < size:
            row = next(self._reader, None)
            if row is None:
                break
            for index, name in self._json_indexes:
                if index < len(row):
                    row[index] = _as_json(row[index], name, self._reader.line_num)
            self._writer.writerow(row)
            if self._out.tell() > (1 << 16):
                self._flush()
        self._flush()

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
