"""One CSV loaded by several sessions at once (issue 23): the server parses vector text on one core per COPY, so a
large table loads faster when its file is cut into slices at row boundaries and each slice is COPYed by its own
session. Only into a new table nobody reads yet (postgres.shadow), committed before the load, since sessions cannot
write into another session's uncommitted table.

One thread reads the file (through the reader that checks its size and sha256), cuts it into blocks of whole rows
and hands them out in turn to the sessions' queues (a few blocks each: memory stays bounded whatever the file's
size). Each session COPYs its blocks in its own transaction and commits only once every session has loaded all its
blocks and the file's checksums matched; otherwise every session rolls back, and nothing of the file remains.
"""

import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, closing
from typing import cast

import psycopg2
from psycopg2 import sql

import pgvector_pipeline.pgcopy as pgcopy
from pgvector_pipeline.errors import DataError, PipelineError
from pgvector_pipeline.postgres.catalog import qualified
from pgvector_pipeline.postgres.connection import COPY_MESSAGE_BYTES, classify_error, further_session, rollback_quietly
from pgvector_pipeline.postgres.restore_types import CsvSource

# Sessions that load a large file into a new table (a swapped restore): the server parses on one core per session.
DEFAULT_LOAD_SESSIONS = 2
# Bytes a block holds, at most one row more; each session's queue holds this many blocks.
BLOCK_BYTES = 1 << 20
_QUEUED_BLOCKS = 3
_END = b""


def row_blocks(read: Callable[[int], bytes], block_bytes: int = BLOCK_BYTES) -> Iterator[bytes]:
    """Blocks of whole CSV rows from `read`, the header line left out. A newline ends a row only outside quotes:
    CSV doubles a quote inside a quoted field, so the count of quote characters before a row's end is even."""
    pending, header_done = b"", False
    while True:
        data = read(block_bytes)
        if not data:
            break
        pending += data
        if not header_done:
            end = pending.find(b"\n")
            if end < 0:
                continue
            pending, header_done = pending[end + 1 :], True
        cut = _last_row_end(pending)
        if cut > 0:
            yield pending[:cut]
            pending = pending[cut:]
    if pending:
        yield pending if pending.endswith(b"\n") else pending + b"\n"


def _last_row_end(data: bytes) -> int:
    """The offset just after the last newline of `data` that ends a row (0: none). `data` starts at a row start."""
    end = data.rfind(b"\n")
    while end >= 0:
        if data.count(b'"', 0, end) % 2 == 0:
            return end + 1
        end = data.rfind(b"\n", 0, end)
    return 0


class _BlockQueue:
    """A session's blocks as a file for copy_expert: read() hands out the next block's bytes; an error put in the
    queue is raised inside COPY, which then fails (and the session rolls back)."""

    def __init__(self) -> None:
        self.blocks: queue.Queue[bytes | BaseException] = queue.Queue(maxsize=_QUEUED_BLOCKS)
        self._current = memoryview(b"")

    def read(self, size: int = -1) -> bytes:
        while not self._current:
            block = self.blocks.get()
            if isinstance(block, BaseException):
                raise block
            if block == _END:
                return b""
            self._current = memoryview(block)
        size = len(self._current) if size < 0 else size
        piece, self._current = bytes(self._current[:size]), self._current[size:]
        return piece

    def readline(self, size: int = -1) -> bytes:  # part of the file protocol copy_expert is typed with; COPY FROM reads
        return self.read(size)


def parallel_copy(
    dsn: str,
    schema: str,
    table: str,
    columns: list[str],
    open_csv: Callable[[], AbstractContextManager[CsvSource]],
    sessions: int,
    on_sessions: Callable[[list[int]], None] | None = None,
    binary: bool = False,
) -> int:
    """COPY the CSV `open_csv()` gives (header first), or its binary COPY stream (`binary`), into `schema.table` by
    `sessions` sessions; the rows loaded. All sessions commit, or none does. `on_sessions` gets their server
    processes' pids once they are connected (for progress lines)."""
    statement = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT {})").format(
        qualified(schema, table),
        sql.SQL(", ").join(map(sql.Identifier, columns)),
        sql.SQL("binary" if binary else "csv"),
    )
    with ExitStack() as stack:
        # SessionUnavailable when one cannot connect: the caller loads in its own session instead.
        conns = [stack.enter_context(closing(further_session(dsn))) for _ in range(sessions)]
        if on_sessions is not None:
            on_sessions([conn.get_backend_pid() for conn in conns])
        feeds = [_BlockQueue() for _ in conns]
        results: list[int | BaseException | None] = [None] * sessions

        def load(index: int) -> None:
            try:
                with conns[index].cursor() as cur:
                    cur.copy_expert(statement, feeds[index], size=COPY_MESSAGE_BYTES)
                    results[index] = cur.rowcount
            except BaseException as exc:  # handed to the caller, which rolls every session back
                results[index] = exc

        threads = [threading.Thread(target=load, args=(i,), name=f"load-{table}-{i}") for i in range(sessions)]
        for thread in threads:
            thread.start()
        failure = _feed(open_csv, feeds, threads, _binary_blocks(table) if binary else _Cut(row_blocks))
        for thread in threads:
            thread.join()
        failure = failure or next((r for r in results if isinstance(r, BaseException)), None)
        if failure is not None:
            for conn in conns:
                rollback_quietly(conn)
            if isinstance(failure, (PipelineError, KeyboardInterrupt, SystemExit)):
                raise failure  # an interrupt stays one: the caller says what was rolled back
            if isinstance(failure, psycopg2.Error):
                conn = next(c for c, r in zip(conns, results, strict=True) if r is failure)
                raise classify_error(failure, f"loading {table}", conn) from failure
            raise DataError(f"Loading {table} failed: {failure}") from failure
        for conn in conns:
            conn.commit()
        return sum(cast(list[int], results))  # every session loaded: each result is its row count


class _Cut:
    """How a file is cut into blocks of whole rows, and what each session's stream starts and ends with."""

    def __init__(
        self, blocks: Callable[[Callable[[int], bytes]], Iterator[bytes]], start: bytes = b"", end: bytes = b""
    ):
        self.blocks, self.start, self.end = blocks, start, end


def _binary_blocks(table: str) -> _Cut:
    """A binary COPY stream cut at tuple boundaries: each session's stream gets a header, whole tuples, a trailer."""
    return _Cut(
        lambda read: pgcopy.tuple_blocks(read, f"the file of {table}", BLOCK_BYTES), pgcopy.HEADER, pgcopy.TRAILER
    )


def _feed(
    open_csv: Callable[[], AbstractContextManager[CsvSource]],
    feeds: list[_BlockQueue],
    threads: list[threading.Thread],
    cut: _Cut,
) -> BaseException | None:
    """Read the file and hand its blocks out in turn; at the end (or on an error) tell every session. The error, if
    any: the file's own (damaged, checksum) or a session's that stopped taking blocks."""
    turn = 0
    try:
        if cut.start:
            for feed, thread in zip(feeds, threads, strict=True):
                _put(feed, cut.start, thread)
        with open_csv() as stream:
            for block in cut.blocks(stream.read):
                if not _put(feeds[turn], block, threads[turn]):  # that session failed: stop feeding
                    raise _SessionEnded()
                turn = (turn + 1) % len(feeds)
        for feed, thread in zip(feeds, threads, strict=True):
            if cut.end:
                _put(feed, cut.end, thread)
            _put(feed, _END, thread)
        return None
    except _SessionEnded:
        error: BaseException | None = None
    except BaseException as exc:  # noqa: BLE001 - every session must hear of it, then the caller raises it
        error = exc
    for feed, thread in zip(feeds, threads, strict=True):
        _put(feed, error or _SessionEnded(), thread)
    return error


class _SessionEnded(Exception):
    """A loading session ended before its blocks did (its own error says why)."""


def _put(feed: _BlockQueue, item: bytes | BaseException, thread: threading.Thread) -> bool:
    """Put `item` in a session's queue, waiting while it is full; False when the session has ended (then it takes
    nothing more)."""
    while thread.is_alive():
        try:
            feed.blocks.put(item, timeout=0.5)
            return True
        except queue.Full:
            continue
    return False
