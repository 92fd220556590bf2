"""Room on the database server for the rows a restore loads, checked before anything changes (issue 23).

Every restore that writes needs room for the set's rows while the live rows still take theirs: a TRUNCATE keeps the
old files until COMMIT (so that a rollback can bring them back) and a swapped restore keeps the live tables until it
has swapped. Running out midway is safe (PostgreSQL refuses the write and the transaction rolls back) but wastes the
load, so the restore estimates what it needs and compares it with the free space where the tables live.

PostgreSQL has no SQL function for free disk space. It can be read only when this process runs on the database
server's host and can see its data directory: the directory's postmaster.pid must name this very server (its port
and start time), so that a path that merely exists here is never mistaken for the server's. Otherwise the check says
it could not look, and the estimate is logged for the operator.
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from pgvector_pipeline.postgres.catalog import qualified, single_row, single_value, table_oid
from pgvector_pipeline.sizes import human_size

# Above the estimate: WAL, the index builds' sort space and the free space map; an estimate is not a promise.
MARGIN = 1.2


@dataclass(frozen=True)
class Need:
    """What one table's load needs: the rows the set holds for it and, when the table holds none, the size of its
    CSV (an overestimate of the stored size for vector text, which is stored in binary)."""

    set_rows: int | None  # None: a set without a manifest
    csv_bytes: int


@dataclass(frozen=True)
class Room:
    """Free space against the estimate, per file system the tables live on."""

    needed: int
    free: int | None  # None: this process cannot see the server's file system
    where: str  # the directory the free space was read from, or why it could not be

    @property
    def enough(self) -> bool:
        return self.free is None or self.free >= self.needed

    def described(self) -> str:
        if self.free is None:
            return f"the load needs about {human_size(self.needed)} of free space on the server ({self.where})"
        return f"{human_size(self.free)} free in {self.where}, about {human_size(self.needed)} needed"


def room_for(cur: psycopg2.extensions.cursor, schema: str, needs: Mapping[str, Need]) -> list[Room]:
    """Free space against the estimated size of each table's new rows (from the live table's bytes per row when it
    holds rows, else from the CSV size), summed per tablespace directory. The live rows are the planner's estimate
    (see _rows_now; a count when there is nothing to scale): this runs before the restore locks anything."""
    data_directory = _data_directory(cur)
    needed_in: dict[str, int] = {}
    for table, need in needs.items():
        oid = table_oid(cur, schema, table)
        if oid is None:
            continue
        cur.execute(
            "SELECT pg_catalog.pg_total_relation_size(c.oid), c.reltablespace, "
            "pg_catalog.pg_tablespace_location(c.reltablespace), c.reltuples, c.relpages, "
            "pg_catalog.pg_relation_size(c.oid) OPERATOR(pg_catalog./) "
            "pg_catalog.current_setting('block_size')::pg_catalog.int8 FROM pg_catalog.pg_class c "
            "WHERE c.oid OPERATOR(pg_catalog.=) %s",
            (oid,),
        )
        size, tablespace, location, counted, counted_pages, pages = single_row(cur)
        rows = _rows_now(counted, counted_pages, pages)
        if rows is None:  # never analyzed, or analyzed empty and written since: no density to scale
            cur.execute(sql.SQL("SELECT pg_catalog.count(*) FROM {}").format(qualified(schema, table)))
            rows = single_value(cur)
        estimate = int(size * need.set_rows / rows) if rows >= 1 and need.set_rows is not None else need.csv_bytes
        where = location if tablespace and location else (data_directory or "")
        needed_in[where] = needed_in.get(where, 0) + int(estimate * MARGIN)
    return [_room(where, needed, data_directory) for where, needed in needed_in.items()]


def _rows_now(counted: float, counted_pages: int, pages: int) -> float | None:
    """The table's rows now, as the planner estimates them: the rows per page of its last ANALYZE or VACUUM times the
    pages it has now (right after a bulk insert the count itself is stale; its density is not). None when there is no
    density to scale: never analyzed, or analyzed while empty and holding pages since."""
    if counted < 0 or (counted_pages == 0 and pages > 0):
        return None
    if counted_pages == 0:
        return 0.0
    return counted / counted_pages * pages


def _room(where: str, needed: int, data_directory: str | None) -> Room:
    if data_directory is None:
        return Room(needed, None, "its data directory is not readable by this role: PostgreSQL cannot say")
    try:
        stat = os.statvfs(where)
    except OSError as exc:
        return Room(needed, None, f"{where} is not visible from this host: {exc.strerror}")
    return Room(needed, stat.f_bavail * stat.f_frsize, where)


def _data_directory(cur: psycopg2.extensions.cursor) -> str | None:
    """The server's data directory when this process runs on its host and sees it (its postmaster.pid names this
    server), else None."""
    cur.execute("SAVEPOINT pgvector_disk_space")
    try:
        cur.execute(
            "SELECT pg_catalog.current_setting('data_directory'), pg_catalog.current_setting('port'), "
            "pg_catalog.floor(extract(epoch FROM pg_catalog.pg_postmaster_start_time()))::pg_catalog.int8"
        )
    except psycopg2.errors.InsufficientPrivilege:  # not a superuser nor pg_read_all_settings
        cur.execute("ROLLBACK TO SAVEPOINT pgvector_disk_space")
        return None
    directory, port, started = single_row(cur)
    cur.execute("RELEASE SAVEPOINT pgvector_disk_space")
    try:
        fd = os.open(os.path.join(directory, "postmaster.pid"), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        lines = os.read(fd, 4096).decode("utf-8", "replace").splitlines()
    finally:
        os.close(fd)
    # postmaster.pid: pid, data directory, start time (epoch, written a moment after the server's own), port, ...
    if (
        len(lines) < 4
        or lines[1] != directory
        or lines[3].strip() != port
        or not (lines[2].strip().isascii() and lines[2].strip().isdigit())
    ):
        return None
    return directory if abs(int(lines[2]) - started) <= 2 else None
