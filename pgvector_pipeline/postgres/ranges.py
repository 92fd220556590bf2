"""Exporting one table through several sessions that share the backup's snapshot, in heap order.

The server formats every vector as text, and that costs it more CPU than anything else in a backup:
one COPY keeps one core busy. Here the table is cut into ranges of heap blocks (`ctid` ranges, a TID
range scan each), read by sessions that imported the backup transaction's snapshot (as pgcopydb does:
`pg_export_snapshot` / `SET TRANSACTION SNAPSHOT`), so every session sees exactly the rows the backup's
own transaction sees. Ranges are written in block order, so the file holds the same bytes a single
COPY of a sequential scan writes. Each range is buffered whole; at most `sessions + 2` ranges of
about RANGE_BYTES are in memory at once.

    export_ranges        the ranges of a table of known size
    SnapshotSession      one more session on the exported snapshot, its table lock taken or refused at once
    OrderedRangeCopy     the sessions' COPYs on threads, handed to one sink in range order
"""

import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING

import psycopg2
import psycopg2.errors
import psycopg2.extensions
from psycopg2 import sql

import pgvector_pipeline.pgcopy as pgcopy
from pgvector_pipeline.errors import DataError
from pgvector_pipeline.postgres.catalog import qualified
from pgvector_pipeline.postgres.connection import SessionUnavailable, classify_error, further_session

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

# Sessions exporting a large table. Two measured 0.7x the time of one on a 2-core server (bench/); more
# help only where the database server has more cores.
DEFAULT_EXPORT_SESSIONS = 2
# Aim of each range's share of the CSV. Small enough to keep memory low, large enough that the
# statements' own cost stays small (about 400 statements per GB of CSV).
RANGE_BYTES = 2 << 20
# Tables whose CSV is estimated below this are exported by the backup's own session alone.
MIN_PARALLEL_BYTES = 64 << 20
# CSV bytes per byte of table (heap and TOAST) when estimating a range: a float4 takes 4 bytes in the
# table and about 10 in the CSV. An estimate off by a factor only changes how many ranges there are.
CSV_BYTES_PER_TABLE_BYTE = 2.5


@dataclass(frozen=True)
class BlockRange:
    """Heap blocks [first, end) of a table; `end` None: to the end of the table, however long it is now."""

    first: int
    end: int | None

    def condition(self) -> sql.Composable:
        """A WHERE condition PostgreSQL plans as a TID range scan."""
        lower = sql.SQL("ctid OPERATOR(pg_catalog.>=) {}::pg_catalog.tid").format(sql.Literal(f"({self.first},0)"))
        if self.end is None:
            return lower
        return sql.SQL("{} AND ctid OPERATOR(pg_catalog.<) {}::pg_catalog.tid").format(
            lower, sql.Literal(f"({self.end},0)")
        )


def export_ranges(heap_blocks: int, table_bytes: int) -> list[BlockRange]:
    """Consecutive block ranges covering the table, each about RANGE_BYTES of CSV, the last one open; [] when
    the table's CSV is estimated below MIN_PARALLEL_BYTES (one session exports it faster than several start)
    or it makes a single range."""
    csv_bytes = table_bytes * CSV_BYTES_PER_TABLE_BYTE
    if csv_bytes < MIN_PARALLEL_BYTES or heap_blocks < 2:
        return []
    step = max(1, int(RANGE_BYTES / (csv_bytes / heap_blocks)))
    starts = list(range(0, heap_blocks, step))
    if len(starts) < 2:
        return []
    return [BlockRange(first, end) for first, end in zip(starts, [*starts[1:], None], strict=True)]


# The COPY of one range; `header`: the first range writes the CSV header.
RangeStatement = Callable[[BlockRange, bool], sql.Composable]


class SnapshotSession:
    """One more session reading the exported snapshot `snapshot_id`: the same rows, another server process.

    Entering takes the table's ACCESS SHARE lock with NOWAIT. Queueing for it could hang the backup:
    the backup's own transaction already holds that lock, so a session waiting behind someone's ACCESS
    EXCLUSIVE request (queued behind the backup) would wait for the backup, which waits for the
    session, a cycle PostgreSQL cannot see. Any failure to open the session (that, or no free
    connection slot) is SessionUnavailable: the backup's own session can still export the table.
    """

    def __init__(self, dsn: str, snapshot_id: str, schema: str, table: str):
        self._dsn, self._snapshot_id, self._schema, self._table = dsn, snapshot_id, schema, table

    def __enter__(self) -> "SnapshotSession":
        self.conn = further_session(self._dsn)
        try:
            self.conn.set_session(
                isolation_level=psycopg2.extensions.ISOLATION_LEVEL_REPEATABLE_READ, readonly=True, autocommit=False
            )
            with self.conn.cursor() as cur:
                cur.execute("SET TRANSACTION SNAPSHOT %s", (self._snapshot_id,))
                cur.execute(
                    sql.SQL("LOCK TABLE {} IN ACCESS SHARE MODE NOWAIT").format(qualified(self._schema, self._table))
                )
        except psycopg2.errors.LockNotAvailable as exc:
            self.conn.close()
            raise SessionUnavailable(
                f"a lock request waiting on {self._table} (an ALTER TABLE or TRUNCATE queued behind this backup) "
                f"would make it queue: {str(exc).strip()}"
            ) from None
        except psycopg2.Error as exc:
            self.conn.close()
            raise SessionUnavailable(str(exc).strip()) from None
        except BaseException:
            self.conn.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.conn.close()  # a read-only transaction: closing rolls it back

    def cancel(self) -> None:
        """End a COPY in flight from another thread (libpq's cancel request is thread-safe); best effort."""
        if self.conn.closed:
            return
        try:
            self.conn.cancel()
        except psycopg2.Error:
            pass  # the session died or the request was lost: its COPY ends with its range, and is joined

    def copy(self, statement: sql.Composable, sink: "SupportsWrite[bytes]", block_range: BlockRange) -> int:
        """Run one COPY ... TO STDOUT into `sink`; the rows PostgreSQL sent. Driver errors are classified here,
        where the connection they came from is known."""
        try:
            with self.conn.cursor() as cur:
                cur.copy_expert(statement, sink)
                return cur.rowcount
        except psycopg2.Error as exc:
            doing = f"exporting {self._table} (heap blocks from {block_range.first}, in a second session)"
            raise classify_error(exc, doing, self.conn) from exc


def joined_parts(parts: list[bytes], *, first: bool, last: bool) -> list[bytes]:
    """One range's binary COPY messages as a piece of one stream: its header kept only in the first range, its
    trailer only in the last. The server sends the header with the first tuple and the trailer alone (with the header
    when the range is empty), so the messages stay one per tuple plus one, as a single COPY's are."""
    where = "a range of the binary export"
    if not parts or not parts[-1].endswith(pgcopy.TRAILER):
        raise DataError(f"{where} ended without the binary COPY trailer.")
    parts = list(parts)
    if not last:
        parts[-1] = parts[-1][: -len(pgcopy.TRAILER)]
    if not first:
        parts[0] = pgcopy.without_header(parts[0], where)
    return [part for part in parts if part]


class _Parts:
    """A range's CSV as psycopg2 hands it over: one bytes object per row."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.parts.append(data)
        return len(data)


class OrderedRangeCopy:
    """The COPY of every range, run by `sessions` on threads and written to one sink in range order.

    A context manager: entering starts one thread per session; `write_to(sink)` hands each range's rows
    to the sink in order and returns the rows copied. A session's error stops the others and is raised
    by `write_to`; leaving (also on the caller's error) cancels what still runs and joins the threads.
    """

    def __init__(
        self,
        sessions: list[SnapshotSession],
        ranges: list[BlockRange],
        statement_for: RangeStatement,
        binary: bool = False,
    ):
        self._binary = binary  # binary COPY: each range's stream has its own header and trailer (see joined_part)
        self._sessions = sessions
        self._ranges = ranges
        self._statement_for = statement_for
        self._count = len(ranges)
        self._limit = len(sessions) + 2  # ranges claimed but not yet written: what memory holds at most
        self._done: dict[int, tuple[list[bytes], int]] = {}
        self._claimed = 0
        self._written = 0
        self._error: BaseException | None = None
        self._stop = False
        self._changed = threading.Condition()
        self._threads = [threading.Thread(target=self._work, args=(s,), daemon=True) for s in sessions]

    def __enter__(self) -> "OrderedRangeCopy":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        with self._changed:
            unfinished = self._written < self._count
            self._stop = True
            self._changed.notify_all()
        if unfinished:
            for session in self._sessions:
                session.cancel()
        for thread in self._threads:
            thread.join()

    def _claim(self) -> int | None:
        with self._changed:
            while not self._stop and self._claimed < self._count and self._claimed >= self._written + self._limit:
                self._changed.wait()
            if self._stop or self._claimed >= self._count:
                return None
            self._claimed += 1
            return self._claimed - 1

    def _work(self, session: SnapshotSession) -> None:
        try:
            while (index := self._claim()) is not None:
                rows = _Parts()
                block_range = self._ranges[index]
                copied = session.copy(self._statement_for(block_range, index == 0), rows, block_range)
                with self._changed:
                    self._done[index] = (rows.parts, copied)
                    self._changed.notify_all()
        except BaseException as exc:  # handed to the caller's thread, which raises it
            with self._changed:
                if self._error is None and not self._stop:
                    self._error = exc
                self._stop = True
                self._changed.notify_all()

    def write_to(self, sink: "SupportsWrite[bytes]") -> int:
        copied = 0
        for index in range(self._count):
            with self._changed:
                while index not in self._done and self._error is None:
                    self._changed.wait()
                if self._error is not None:
                    raise self._error
                parts, rows = self._done.pop(index)
            if self._binary:
                parts = joined_parts(parts, first=index == 0, last=index == self._count - 1)
            for part in parts:
                sink.write(part)
            copied += rows
            with self._changed:
                self._written += 1
                self._changed.notify_all()
        return copied
