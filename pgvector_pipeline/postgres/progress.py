"""Progress of a long COPY or index build, read from PostgreSQL's own progress views by a second session.

The session doing the work is busy inside one statement (COPY, CREATE INDEX) for minutes; the server
reports how far it is in pg_stat_progress_copy and pg_stat_progress_create_index. A thread with its own
autocommit connection reads both for the worker's backend every few seconds and logs a line, so a person
watching the run sees it move and roughly when it ends. It only reads: if it cannot connect or query,
the work goes on without progress lines.
"""

import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

import psycopg2
import psycopg2.extensions
from pglast import ast, parse_sql

from pgvector_pipeline.errors import PipelineError
from pgvector_pipeline.postgres.connection import APPLICATION_NAME, connect
from pgvector_pipeline.sizes import human_size

PROGRESS_INTERVAL_S = 10.0


@dataclass(frozen=True)
class ProgressEvent:
    """One measurement of long work, for a display that draws bars (the CLI's --direct mode): what is being done
    (`task`, e.g. 'COPY langchain_pg_embedding' or 'index ix_hnsw: building index'), how far (`done` of `total`, in
    `unit`), and bytes when known."""

    task: str
    done: int
    total: int | None
    unit: str
    bytes_done: int | None = None
    bytes_total: int | None = None


# Receives progress events; a log may offer one as its `progress` method (see report_progress).
ProgressSink = Callable[[ProgressEvent], None]


def progress_sink(log: object) -> ProgressSink | None:
    """The log's `progress` method when it has one (a display that draws bars), else None."""
    sink = getattr(log, "progress", None)
    return sink if callable(sink) else None


_COPY_PROGRESS = """
SELECT relid::pg_catalog.regclass::pg_catalog.text, bytes_processed, bytes_total, tuples_processed
FROM pg_catalog.pg_stat_progress_copy WHERE pid OPERATOR(pg_catalog.=) ANY (%s)
"""
# An index built inside the restore's transaction is not visible to this session yet (index_relid shows as "-"):
# its name is read from the statement the restore is running.
_INDEX_PROGRESS = """
SELECT p.index_relid::pg_catalog.regclass::pg_catalog.text, p.phase, p.blocks_done, p.blocks_total, p.tuples_done,
       p.tuples_total, a.query
FROM pg_catalog.pg_stat_progress_create_index p LEFT JOIN pg_catalog.pg_stat_activity a
  ON a.pid OPERATOR(pg_catalog.=) p.pid
WHERE p.pid OPERATOR(pg_catalog.=) %s
"""


def _share(done: int, total: int) -> str:
    return f" ({100 * done / total:.0f} %)" if total else ""


class ProgressMonitor:
    """Logs the progress of backend `pid` every `interval_s` while the `with` block runs.

    `expected` gives totals the server cannot know (rows and bytes of a CSV sent through STDIN), by table.
    """

    def __init__(
        self,
        dsn: str,
        pid: int,
        log: Callable[[str], None],
        expected: dict[str, tuple[int | None, int | None]] | None = None,
        interval_s: float = PROGRESS_INTERVAL_S,
        sink: ProgressSink | None = None,
    ):
        self._dsn = dsn
        self._pid = pid
        self._log = log
        self._expected = expected or {}
        self._interval_s = interval_s
        self._sink = sink
        # The sessions watched (the work's own, and sessions that load for it) and names to show for their tables.
        self._pids = [pid]
        self._aliases: dict[str, str] = {}
        self._watched = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"progress-{pid}", daemon=True)

    def watch(self, pids: list[int], aliases: dict[str, str]) -> None:
        """Also report the COPYs of `pids` (sessions loading for the work), their tables named as `aliases` say
        (a new table by the live name it will take)."""
        with self._watched:
            self._pids = self._pids + pids
            self._aliases = {**self._aliases, **aliases}

    def __enter__(self) -> "ProgressMonitor":
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        # Work that ends within one interval never needs the second session (nor the server a new process).
        if self._stop.wait(self._interval_s):
            return
        try:
            # connect() bounds the wait (connect_timeout): leaving the `with` block joins this thread.
            conn = connect(self._dsn, application_name=f"{APPLICATION_NAME} progress")
        except PipelineError:
            return  # progress is a courtesy: the work does not depend on it
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                while True:
                    for line in self._lines(cur):
                        self._log(line)
                    if self._stop.wait(self._interval_s):
                        break
        except psycopg2.Error:
            return
        finally:
            conn.close()

    def _lines(self, cur: psycopg2.extensions.cursor) -> list[str]:
        return self._copy_lines(cur) + self._index_lines(cur)

    def _copy_lines(self, cur: psycopg2.extensions.cursor) -> list[str]:
        """One line per table being loaded, summed over the sessions loading it."""
        with self._watched:
            pids, aliases = list(self._pids), dict(self._aliases)
        cur.execute(_COPY_PROGRESS, (pids,))
        copies: dict[str, list[tuple[int, int, int]]] = {}
        for relation, bytes_done, bytes_total, rows_done in cur.fetchall():
            table = relation.rsplit(".", 1)[-1].strip('"')
            copies.setdefault(aliases.get(table, table), []).append((rows_done, bytes_done, bytes_total or 0))
        lines = []
        for table, sessions in copies.items():
            rows_total, file_bytes = self._expected.get(table, (None, None))
            rows_done, bytes_done = sum(s[0] for s in sessions), sum(s[1] for s in sessions)
            bytes_total = sum(s[2] for s in sessions) or file_bytes or 0
            rows = f"{rows_done:,}" + (
                f" of {rows_total:,} rows{_share(rows_done, rows_total)}" if rows_total else " rows"
            )
            size = human_size(bytes_done) + (f" of {human_size(bytes_total)}" if bytes_total else "")
            each = " + ".join(f"{s[0]:,}" for s in sessions)
            by = f" by {len(sessions)} sessions ({each} rows)" if len(sessions) > 1 else ""
            lines.append(f"COPY {table}: {rows}, {size}{by}.")
            self._event(ProgressEvent(f"COPY {table}", rows_done, rows_total, "rows", bytes_done, bytes_total or None))
        return lines

    def _index_lines(self, cur: psycopg2.extensions.cursor) -> list[str]:
        """One line per index being built, with tuples (or blocks) done of the phase's total."""
        cur.execute(_INDEX_PROGRESS, (self._pid,))
        lines = []
        for relation, phase, blocks_done, blocks_total, tuples_done, tuples_total, statement in cur.fetchall():
            index = relation if relation not in ("-", "0") else built_index_name(statement or "")
            done, total, unit = (
                (tuples_done, tuples_total, "tuples") if tuples_total else (blocks_done, blocks_total, "blocks")
            )
            detail = f", {done:,} of {total:,} {unit}{_share(done, total)}" if total else ""
            lines.append(f"Index {index}: {phase}{detail}.")
            self._event(ProgressEvent(f"index {index}: {phase}", done or 0, total or None, unit))
        return lines

    def _event(self, event: ProgressEvent) -> None:
        if self._sink is not None:
            self._sink(event)


def built_index_name(statement: str) -> str:
    """The index a CREATE INDEX names, or the constraint an ALTER TABLE … ADD CONSTRAINT builds; "-" if neither."""
    try:
        [raw] = parse_sql(statement)
    except Exception:  # noqa: BLE001 - a statement we cannot parse only costs the label
        return "-"
    node = raw.stmt
    if isinstance(node, ast.IndexStmt) and node.idxname:
        return node.idxname
    if isinstance(node, ast.AlterTableStmt):
        for command in node.cmds or ():
            constraint = getattr(command, "def_", None)
            if isinstance(constraint, ast.Constraint) and constraint.conname:
                return constraint.conname
    return "-"
