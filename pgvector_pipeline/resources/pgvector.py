import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import dagster as dg
from pydantic import Field

from pgvector_pipeline.backup import (
    DEFAULT_CHOICES,
    BackupChoices,
    BackupResult,
    Log,
    back_up_database,
    backup_options,
)
from pgvector_pipeline.contract import (
    DATABASE_TAG,
    DEFAULT_DSN_ENV,
    NO_MIGRATION,
    PLAIN_RESTORE,
    Migration,
    RestoreFlags,
)
from pgvector_pipeline.drill import DrillResult, restore_drill
from pgvector_pipeline.errors import InvalidParams
from pgvector_pipeline.failures import refusal_at_start
from pgvector_pipeline.postgres.connection import DEFAULT_LOCK_TIMEOUT_S, dsn_secrets, redact_dsn
from pgvector_pipeline.postgres.maintenance import TruncateStats, truncate_tables_now
from pgvector_pipeline.postgres.parallel_load import DEFAULT_LOAD_SESSIONS
from pgvector_pipeline.postgres.ranges import DEFAULT_EXPORT_SESSIONS
from pgvector_pipeline.restore import RestoreResult, restore_backup_set
from pgvector_pipeline.run_config import refuse_nul_at_start
from pgvector_pipeline.store.interface import BackupStore
from pgvector_pipeline.store.listing import BackupSetInfo
from pgvector_pipeline.tables import schema_of


def literal_dsns_with_password(run_config: Mapping[str, Any]) -> list[str]:
    """Resource keys whose run config holds a DSN literal that carries a secret (not {env: VAR})."""
    resources: Mapping[str, Any] = run_config.get("resources") or {}
    return sorted(
        key
        for key, entry in resources.items()
        if isinstance(entry, dict)
        and isinstance(dsn := (entry.get("config") or {}).get("dsn"), str)
        and dsn_secrets(dsn)
    )


def _run_config_dsn(run_config: Mapping[str, Any]) -> object:
    return ((run_config.get("resources") or {}).get("pgvector") or {}).get("config", {}).get("dsn")


def database_tag_expected(run_config: Mapping[str, Any]) -> str | None:
    """The DATABASE_TAG value a run with this config must carry: the name of the environment variable
    holding its DSN (PGVECTOR_DSN unless the config names another); None when the config gives a literal
    DSN, which is refused (see run_config_dsn_problem)."""
    dsn = _run_config_dsn(run_config)
    if isinstance(dsn, dict) and isinstance(dsn.get("env"), str):
        return dsn["env"]
    return None if dsn is not None else DEFAULT_DSN_ENV


def run_config_dsn_problem(run_config: Mapping[str, Any]) -> str | None:
    """Why the run config's DSN is refused: a run names its database by an environment variable only, so the
    database tag (that variable's name) always says which database it uses and the run queue keeps one run
    per database. None when it is fine."""
    if database_tag_expected(run_config) is not None:
        return None
    return (
        "The run config gives the pgvector DSN as a literal string. Runs name their database by an environment "
        "variable only ({env: SOME_VAR}, the variable holding the DSN), and carry the tag "
        f"{DATABASE_TAG}=SOME_VAR: that tag is what queues runs on one database one at a time"
    )


def database_tag_problem(run_config: Mapping[str, Any], tags: Mapping[str, str]) -> str | None:
    """Why a run's tags would let it overlap another run on the same database; None when they are right."""
    expected = database_tag_expected(run_config)
    actual = tags.get(DATABASE_TAG)
    if actual is None:
        return f"The run has no {DATABASE_TAG} tag" + (f" (it should be {expected!r})" if expected else "")
    if expected is not None and actual != expected:
        return f"The run's {DATABASE_TAG} tag is {actual!r:.60}, but its DSN comes from {expected!r}"
    return None


class PgVectorResource(dg.ConfigurableResource):
    """The PostgreSQL database holding the LangChain PGVector tables: COPY TO backups, COPY FROM restores."""

    dsn: str = Field(
        description=(
            "libpq connection string or URI of the database, from the PGVECTOR_DSN environment variable. To "
            "target another database in one run, set {env: OTHER_VAR} and the run tag "
            "pgvector_pipeline/database: OTHER_VAR. Run config never holds the DSN itself: a run whose config "
            "gives a literal DSN is refused (keep passwords in the variable's DSN, PGPASSWORD or ~/.pgpass)."
        )
    )
    db_schema: str = Field(
        default="public", description="Schema holding langchain_pg_collection and langchain_pg_embedding."
    )
    maintenance_work_mem: str = Field(
        default="",
        description=(
            "Memory of the index builds after a restore's load (e.g. '2GB'; an HNSW build is fast while its graph "
            "fits). Empty: an eighth of the code server's memory, 64 MB to 1 GB; set it when the database "
            "server is another machine."
        ),
    )
    load_sessions: int = Field(
        default=DEFAULT_LOAD_SESSIONS,
        ge=1,
        le=16,
        description=(
            "Sessions that load a large file (16 MB or more) at once into the new tables of a swapped restore "
            "(a truncating restore without in_place). The database server parses the vectors, so this helps up to its "
            "number of cores; 1 loads "
            "in the restore's own session."
        ),
    )
    export_sessions: int = Field(
        default=DEFAULT_EXPORT_SESSIONS,
        ge=1,
        le=16,
        description=(
            "Sessions that export a large table (a CSV of 64 MB or more) in parallel, each reading ranges of "
            "the table from the backup's one snapshot; the file is the same as one session's. The database "
            "server formats the vectors, so this helps up to its number of cores; 1 exports in one session."
        ),
    )

    lock_timeout_s: float = Field(
        default=DEFAULT_LOCK_TIMEOUT_S,
        gt=0,
        le=3600,
        description=(
            "How long any lock this tool requests may wait (PostgreSQL lock_timeout) before the run gives up, "
            "changing nothing and naming the sessions in the way. While an ACCESS EXCLUSIVE request (truncate, "
            "truncating restore) waits, every new query on the table waits behind it: keep this short."
        ),
    )

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Refuse, before anything connects, a run whose config holds a DSN (with a password, or at all), and one
        whose database tag would let it run beside another run on the same database, and config holding a NUL."""
        refuse_nul_at_start(context, "pgvector")
        run = context.run
        if run is None:
            return
        offending = literal_dsns_with_password(run.run_config)
        if offending:
            raise refusal_at_start(
                InvalidParams(
                    f"The run config of resource {', '.join(offending)} holds a DSN with a password in plain text, "
                    f"which Dagster stores and shows with the run. Nothing was done. Give the DSN as "
                    f"{{env: SOME_VAR}} (the variable holds the DSN) and keep the password in PGPASSWORD or "
                    f"~/.pgpass; then delete this run from the Dagster UI so the password is not kept."
                )
            )
        problem = run_config_dsn_problem(run.run_config) or database_tag_problem(run.run_config, run.tags)
        if problem:
            raise refusal_at_start(
                InvalidParams(
                    f"{problem}. Runs that use the same database are queued one at a time by this tag "
                    f"(see deploy/*/dagster.yaml), so a run without the right tag could overlap another. Nothing "
                    f"was done. Launch it again with the tag {DATABASE_TAG} set to the name of the environment "
                    f"variable that holds its DSN."
                )
            )

    @property
    def redacted_dsn(self) -> str:
        return redact_dsn(self.dsn)

    def back_up(
        self,
        store: BackupStore,
        task: str,
        timestamp: str | None,
        choices: BackupChoices = DEFAULT_CHOICES,
        *,
        on_claim: Callable[[str], None] | None = None,
        log: Log | logging.Logger | None = None,
    ) -> BackupResult:
        """Back up into the set `timestamp` of `task` in `store` as the run `choices`; None claims a new set (see
        back_up_database)."""
        log = log or logging.getLogger(__name__)
        schema = schema_of(choices.tables, self.db_schema)  # named tables may name their schema
        return back_up_database(
            self.dsn,
            schema,
            store,
            task,
            timestamp,
            backup_options(self.dsn, schema, choices, self.export_sessions, self.lock_timeout_s, log),
            on_claim=on_claim,
            log=log,
        )

    def restore(
        self,
        backup_set: BackupSetInfo,
        flags: RestoreFlags = PLAIN_RESTORE,
        *,
        tables: Sequence[str] | None = None,
        collections: Sequence[str] = (),
        rename: Mapping[str, str] | None = None,
        migration: Migration = NO_MIGRATION,
        log: Log | logging.Logger | None = None,
    ) -> RestoreResult:
        """Restore `backup_set` into this database (see restore_backup_set)."""
        return restore_backup_set(
            self.dsn,
            self.db_schema,
            backup_set,
            flags,
            tables=tables,
            collections=collections,
            rename=rename,
            migration=migration,
            maintenance_work_mem=self.maintenance_work_mem,
            lock_timeout_s=self.lock_timeout_s,
            load_sessions=self.load_sessions,
            log=log,
        )

    def drill(self, backup_set: BackupSetInfo, compare_live: bool, log: Log | logging.Logger) -> DrillResult:
        """Restore `backup_set` into a scratch schema of this database, compare, drop (see pgvector_pipeline.drill)."""
        return restore_drill(self.dsn, self.db_schema, backup_set, compare_live, log)

    def truncate(self, tables: list[str], log: Log | logging.Logger) -> list[TruncateStats]:
        """Truncate `tables` in one statement (see truncate_tables_now)."""
        return truncate_tables_now(
            self.dsn, self.db_schema, tables, warn=log.warning, lock_timeout_s=self.lock_timeout_s
        )
