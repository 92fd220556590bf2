"""The restore's one transaction: it commits with a known outcome, or rolls back and says what was being done."""

from collections.abc import Callable
from types import TracebackType

import psycopg2
import psycopg2.errors
import psycopg2.extensions

from pgvector_pipeline.errors import Part, named, option, with_outcome
from pgvector_pipeline.postgres.commit import commit_confirmed
from pgvector_pipeline.postgres.connection import classify_error, rollback_quietly
from pgvector_pipeline.postgres.restore_types import RestoreOptions, TableLoad

# What a failed restore transaction leaves: said with every database error it ends on.
_ROLLED_BACK = "The restore was rolled back: the target tables, their rows and indexes are as they were."

# What to do when a restore that appends meets rows the target holds already: one home for the check before the load
# (pgvector_pipeline.operations.restore) and the unique violation during it.
APPEND_CLASH_HINT: tuple[Part, ...] = (
    "A restore without ",
    named("truncate_before_restore"),
    " adds the set's rows to the live ones. To roll the tables back to the set, restore with ",
    named("truncate_before_restore"),
    "; to replace only some collections, restore them with ",
    option("collections"),
    " and ",
    named("replace_collections"),
    "; to keep both, restore them under new names with ",
    option("rename"),
    ".",
)


class RestoreTransaction:
    """The restore's one transaction, as a context manager: leaving it without an error commits (with a known
    outcome, see postgres.commit), or rolls back when `options.commit` is off; leaving it on an error rolls back
    and raises the error classified, saying what was being done (`doing`) and that nothing changed. The rollback
    never replaces the error that caused it."""

    def __init__(
        self,
        conn: psycopg2.extensions.connection,
        dsn: str,
        loads: list[TableLoad],
        options: RestoreOptions,
        warn: Callable[[str], None],
    ):
        self.conn, self.dsn, self.options, self.warn = conn, dsn, options, warn
        self.tables = ", ".join(load.table for load in loads)
        self.doing = "preparing the target tables"

    def __enter__(self) -> "RestoreTransaction":
        # The transaction begins with the first statement run in it (psycopg2 opens it implicitly).
        self.conn.set_session(
            isolation_level=psycopg2.extensions.ISOLATION_LEVEL_READ_COMMITTED, readonly=False, autocommit=False
        )
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is not None:
            rollback_quietly(self.conn)
            if isinstance(exc, psycopg2.Error):
                error = with_outcome(classify_error(exc, self.doing, self.conn), _ROLLED_BACK)
                if isinstance(exc, psycopg2.errors.UniqueViolation) and not self.options.truncate:
                    error = with_outcome(error, *APPEND_CLASH_HINT)
                raise error from exc
            return
        if not self.options.commit:
            rollback_quietly(self.conn)
            return
        commit_confirmed(
            self.conn,
            self.dsn,
            f"the restore of {self.tables}",
            if_unknown=f"Compare the row counts of {self.tables} with the set's manifest: equal counts mean the "
            f"restore was committed.",
            warn=self.warn,
        )
