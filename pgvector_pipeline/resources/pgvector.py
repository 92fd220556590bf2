from collections.abc import Mapping
from typing import Any

import dagster as dg
from pydantic import Field, PrivateAttr

from pgvector_pipeline.contract import DATABASE_TAG, DEFAULT_DSN_ENV
from pgvector_pipeline.errors import InvalidParams
from pgvector_pipeline.failures import refusal_at_start
from pgvector_pipeline.operations.engine import Engine
from pgvector_pipeline.postgres.connection import dsn_secrets, redact_dsn
from pgvector_pipeline.run_config import refuse_nul_at_start
from pgvector_pipeline.settings import DatabaseSettings
from pgvector_pipeline.store.interface import BackupStore


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
    if isinstance(dsn, dict) and isinstance(env := dsn.get("env"), str):
        return env
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


def _refuse_unsafe_run(run: dg.DagsterRun) -> None:
    """Refuse a run whose config holds a DSN (with a password, or at all), and one whose database tag would let it
    run beside another run on the same database."""
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


class PgVectorResource(dg.ConfigurableResource):  # type: ignore[type-arg]  # bare, as Dagster's own resources: ConfigurableResource[X] would add a class to the MRO
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
    # How long locks wait, how many sessions a run opens, how much memory its index builds take: the deployment's
    # (settings.DatabaseSettings), never run config. Read once when a run sets the resource up.
    _settings: DatabaseSettings | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Read the deployment's settings, and refuse, before anything connects, a run whose config holds a DSN (with
        a password, or at all), one whose database tag would let it run beside another run on the same database, and
        any run when a setting in the environment is wrong."""
        refuse_nul_at_start(context, "pgvector")
        if context.run is not None:
            _refuse_unsafe_run(context.run)
        try:
            self._settings = DatabaseSettings.from_env()
        except InvalidParams as error:
            raise refusal_at_start(error) from None

    @property
    def settings(self) -> DatabaseSettings:
        """The settings read at setup; outside a run (a script, a test), the environment's now."""
        return self._settings or DatabaseSettings.from_env()

    @property
    def redacted_dsn(self) -> str:
        return redact_dsn(self.dsn)

    def get_engine(self, store: BackupStore | None = None) -> Engine:
        """The plain-Python engine on this database with the deployment's settings (and `store`, for backups)."""
        return Engine(self.dsn, self.db_schema, self.settings, store)
