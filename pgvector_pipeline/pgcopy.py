"""PostgreSQL's binary COPY stream, as bytes: its header, its tuples, its trailer. No SQL and nothing of ours but
errors: the export joins ranges into one stream with it (postgres.ranges), the parallel load cuts a stream into
streams of whole tuples (postgres.parallel_load), and the set checks read vectors out of it (operations.set_checks).

    signature   11 bytes  PGCOPY\\n\\377\\r\\n\\0
    flags       int32     0 (bit 16 would mean OIDs follow: never written by servers since 12)
    extension   int32     length of a header extension that follows (0)
    tuple       int16 field count, then per field an int32 length (-1: NULL) and that many bytes
    trailer     int16     -1

Integers are big-endian (network order). See https://www.postgresql.org/docs/current/sql-copy.html.
"""

import struct
from collections.abc import Callable, Iterator
from typing import Protocol, cast

from pgvector_pipeline.errors import DataError

SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
HEADER = SIGNATURE + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"  # no flags, no extension: what servers write
TRAILER = b"\xff\xff"
# Bounds that make a damaged or crafted stream an error instead of a huge allocation: PostgreSQL's own limits.
_MAX_FIELDS = 1664  # MaxTupleAttributeNumber
_MAX_FIELD_BYTES = 1 << 30  # a varlena's largest value
_INT16 = struct.Struct(">h")
_INT32 = struct.Struct(">i")


def header_length(data: bytes, where: str) -> int:
    """The length of the header at the start of `data` (19 and any extension); DataError when it is no binary COPY
    header."""
    if len(data) < len(HEADER) or not data.startswith(SIGNATURE):
        raise DataError(f"{where} does not start with PostgreSQL's binary COPY signature: it is not a binary set file.")
    flags, extension = cast(tuple[int, int], struct.unpack_from(">ii", data, len(SIGNATURE)))
    if flags & 0x1FFFF:  # bits 0-15: formats this reader does not know; bit 16: OIDs follow each tuple
        raise DataError(f"{where}: the binary COPY header has flags {flags:#x} this tool does not read.")
    if not 0 <= extension <= 1 << 20:
        raise DataError(f"{where}: the binary COPY header has an extension of {extension} bytes.")
    return len(HEADER) + extension


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class CheckedStream:
    """A binary COPY stream read through `source`, its structure checked as it passes: the header, each tuple's field
    count (`fields`: the set's columns), each field's length, the trailer, nothing after it, and no end before it.
    DataError naming `where` for anything else, raised by the read that brings the offending bytes, before they are
    handed on: the server never reads a crafted length or count. Field values are counted past, never buffered."""

    def __init__(self, source: _Readable, where: str, fields: int):
        self._source, self._where, self._fields = source, where, fields
        self._pending = b""  # the start of a header, field count or length that the last read cut off
        self._skip = 0  # bytes still to come of a field's value (or of the header's extension)
        self._left = 0  # fields still to come of the current tuple; 0: a field count comes next
        self._started = False  # the header was read
        self._ended = False  # the trailer was read

    def read(self, size: int = -1, /) -> bytes:
        data = self._source.read(size)
        if data:
            self._walk(memoryview(data))
        elif not self._ended:
            what = "inside a tuple (no trailer)" if self._started else "before its binary COPY header"
            raise DataError(f"{self._where}: the binary COPY stream ends {what}: the file is cut short.")
        return data

    def _walk(self, view: memoryview) -> None:
        pos, end = 0, len(view)
        while pos < end:
            if self._skip:
                step = min(self._skip, end - pos)
                self._skip -= step
                pos += step
                continue
            if self._ended:
                raise DataError(f"{self._where}: bytes follow the binary COPY trailer: the file is damaged.")
            need = len(HEADER) if not self._started else 4 if self._left else 2
            if self._pending or end - pos < need:  # an item cut by the read: gather it from this one and the next
                taken = min(need - len(self._pending), end - pos)
                self._pending += view[pos : pos + taken]
                pos += taken
                if len(self._pending) == need:
                    item, self._pending = self._pending, b""
                    self._take(item, 0)
            else:
                self._take(view, pos)
                pos += need

    def _take(self, data: bytes | memoryview, at: int) -> None:
        """One item at `at` of `data`: the header, a tuple's field count or a field's length."""
        if not self._started:
            self._skip = header_length(bytes(data[at : at + len(HEADER)]), self._where) - len(HEADER)
            self._started = True
        elif self._left:
            (length,) = _INT32.unpack_from(data, at)
            if length < -1 or length > _MAX_FIELD_BYTES:
                raise DataError(
                    f"{self._where}: a field of the binary COPY stream claims {length} bytes: the file is damaged."
                )
            self._skip = max(length, 0)
            self._left -= 1
        else:
            (count,) = _INT16.unpack_from(data, at)
            if count == -1:
                self._ended = True
            elif count != self._fields:
                raise DataError(
                    f"{self._where}: a tuple of the binary COPY stream has {count} fields where the set's table has "
                    f"{self._fields} columns: the file is damaged."
                )
            else:
                self._left = count


def without_header(part: bytes, where: str) -> bytes:
    """`part` (the start of a stream) without its header."""
    return part[header_length(part, where) :]


def tuple_end(data: bytes | memoryview, start: int, where: str) -> int | None:
    """The offset just after the tuple that starts at `start` of `data`; -1 when `start` holds the trailer; None
    when `data` ends inside the tuple. DataError for a field count or length no server writes."""
    if start + 2 > len(data):
        return None
    (fields,) = _INT16.unpack_from(data, start)
    if fields == -1:
        return -1
    if not 0 < fields <= _MAX_FIELDS:
        raise DataError(f"{where}: a tuple of the binary COPY stream claims {fields} fields: the file is damaged.")
    offset = start + 2
    for _ in range(fields):
        if offset + 4 > len(data):
            return None
        (length,) = _INT32.unpack_from(data, offset)
        if length < -1 or length > _MAX_FIELD_BYTES:
            raise DataError(f"{where}: a field of the binary COPY stream claims {length} bytes: the file is damaged.")
        offset += 4 + max(length, 0)
        if offset > len(data):
            return None
    return offset


def tuple_blocks(read: Callable[[int], bytes], where: str, block_bytes: int) -> Iterator[bytes]:
    """Blocks of whole tuples of the stream `read` gives (about `block_bytes` each, at least one tuple), header and
    trailer left out. DataError for a stream that is cut short, has bytes after its trailer, or none."""
    pending = b""
    while len(pending) < len(HEADER):
        data = read(block_bytes)
        if not data:
            break
        pending += data
    pending = pending[header_length(pending, where) :]
    ended = False
    while not ended:
        view, offset, last = memoryview(pending), 0, 0
        while True:
            end = tuple_end(view, offset, where)
            if end is None:
                break
            if end == -1:
                ended = True
                break
            offset = last = end
        if last:
            yield pending[:last]
        if ended:
            rest = pending[last + len(TRAILER) :] + read(block_bytes)
            if rest:
                raise DataError(f"{where}: bytes follow the binary COPY trailer: the file is damaged.")
            return
        data = read(max(block_bytes, len(pending) - last))
        if not data:
            raise DataError(f"{where}: the binary COPY stream ends inside a tuple (no trailer): the file is cut short.")
        pending = pending[last:] + data


def fields_of(block: bytes | memoryview, where: str) -> Iterator[list[memoryview | None]]:
    """The fields of each tuple of a block of whole tuples (tuple_blocks), None for NULL."""
    view, offset = memoryview(block), 0
    while offset < len(view):
        (count,) = _INT16.unpack_from(view, offset)
        offset += 2
        fields: list[memoryview | None] = []
        for _ in range(count):
            (length,) = _INT32.unpack_from(view, offset)
            offset += 4
            if length < 0:
                fields.append(None)
            else:
                fields.append(view[offset : offset + length])
                offset += length
        yield fields
    if offset != len(view):
        raise DataError(f"{where}: a tuple of the binary COPY stream is cut short: the file is damaged.")
