"""The demo: an embedded PostgreSQL + pgvector server with sample LangChain data, and, on its first start, one
backup through Dagster. `./run demo` runs this, then serves the Dagster UI on the same instance; `./run demo-stop`
stops the servers it leaves running (PostgreSQL, and SeaweedFS with PGVECTOR_DEMO_S3=1)."""

import argparse
import os
import shutil
import sys
from pathlib import Path

import dagster as dg

from pgvector_pipeline.names import COLLECTION_TABLE
from pgvector_pipeline.postgres.catalog import table_oid
from pgvector_pipeline.postgres.connection import connect
from pgvector_pipeline.store.roots import BACKUP_ROOT_ENV, store_at
from pgvector_pipeline.testing.embedded import ensure_database, start_embedded_server
from pgvector_pipeline.testing.langchain_tables import (
    create_langchain_tables,
    insert_sample_store,
)

DEMO_DATABASE = "vectorstore"
# `PGVECTOR_DEMO_S3=1 ./run demo`: backups go to a local S3 server (SeaweedFS) the demo starts and keeps running;
# `PGVECTOR_DEMO_S3=s3://bucket/prefix`: to that root, with the standard AWS variables of the shell.
DEMO_S3_ENV = "PGVECTOR_DEMO_S3"
DEMO_BUCKET = "pgvector-demo"
LOCAL_INSTANCE_CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "local" / "dagster.yaml"
SAMPLE_DIMENSION = 384


def seed_sample_store(dsn: str) -> bool:
    """Create and fill the LangChain tables unless an earlier demo run did; True when it seeded."""
    conn = connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            if table_oid(cur, "public", COLLECTION_TABLE) is not None:
                return False
            create_langchain_tables(cur, "public", dimension=SAMPLE_DIMENSION)
            insert_sample_store(
                cur, "public", collections=3, embeddings_per_collection=1000, dimension=SAMPLE_DIMENSION
            )
            return True
    finally:
        conn.close()


def demo_s3_env(state_dir: Path, setting: str) -> dict[str, str]:
    """The environment that points the demo's backups at S3 (see DEMO_S3_ENV); none when `setting` is empty."""
    if not setting:
        return {}
    if setting.startswith("s3://"):
        print(f"Backups go to {setting} (credentials and endpoint from the standard AWS variables).")
        return {BACKUP_ROOT_ENV: setting}
    from pgvector_pipeline.testing.seaweed import ensure_running

    server = ensure_running(state_dir / "seaweedfs")
    client = server.client()
    if DEMO_BUCKET not in [b["Name"] for b in client.list_buckets().get("Buckets", [])]:
        server.create_bucket(DEMO_BUCKET)
    print(f"S3 (SeaweedFS) for the backups: {server.endpoint_url}, bucket {DEMO_BUCKET} (it keeps running)")
    return {BACKUP_ROOT_ENV: f"s3://{DEMO_BUCKET}/backups", **server.env()}


def run_demo_backup(state_dir: Path) -> dict[str, str]:
    """Start or reuse the server, seed it once, back it up through Dagster; returns the environment to serve with."""
    state_dir = state_dir.resolve()
    server = start_embedded_server(state_dir / "pgdata")
    dsn = ensure_database(server, DEMO_DATABASE)
    seeded = seed_sample_store(dsn)
    print(f"Embedded PostgreSQL + pgvector: {dsn} ({'seeded sample data' if seeded else 'reusing data'})")

    env = {
        "PGVECTOR_DSN": dsn,
        BACKUP_ROOT_ENV: str(state_dir / "backups"),
        "DAGSTER_HOME": str(state_dir / "dagster_home"),
        **demo_s3_env(state_dir, os.environ.get(DEMO_S3_ENV, "")),
    }
    Path(env["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
    # The shipped single-machine instance: SQLite storage, one run at a time per database, no telemetry.
    shutil.copyfile(LOCAL_INSTANCE_CONFIG, Path(env["DAGSTER_HOME"]) / "dagster.yaml")
    os.environ.update(env)

    # Only the first start backs up: a restart should not add a full set each time.
    existing = store_at(env[BACKUP_ROOT_ENV]).list_sets()
    if existing and not seeded:
        print(
            f"{len(existing)} backup set(s) exist already (newest {existing[0].timestamp}): the demo takes no new one. "
            f"Back up from the UI (request_vector_backup_job) or with `pgvector-pipeline backup --wait`."
        )
        return env

    # Imported after the environment is set: the definitions read the backup root when loaded.
    from pgvector_pipeline.contract import REQUEST_BACKUP_JOB, request_run_config
    from pgvector_pipeline.definitions import defs

    instance = dg.DagsterInstance.get()
    result = defs.resolve_job_def(REQUEST_BACKUP_JOB).execute_in_process(
        instance=instance, run_config=request_run_config(), raise_on_error=False
    )
    if not result.success:
        raise SystemExit(f"The demo backup run {result.run_id} failed; see the log above.")
    # The run materializes both backup assets (partitioned) and refreshes the inventory (not partitioned).
    backups = [e for e in result.get_asset_materialization_events() if e.materialization.partition]
    print(f"Backup run {result.run_id} materialized partition {backups[0].materialization.partition}:")
    for event in backups:
        metadata = event.materialization.metadata
        print(f"  {metadata['path'].value}  ({metadata['dagster/row_count'].value} rows, {metadata['size'].value})")
    return env


def stop_demo(state_dir: Path) -> None:
    """Stop the servers the demo left running (its data stays for the next start)."""
    state_dir = state_dir.resolve()
    if (state_dir / "pgdata" / "PG_VERSION").exists():
        start_embedded_server(state_dir / "pgdata", keep_running=False).cleanup()
        print(f"Stopped the demo's PostgreSQL ({state_dir / 'pgdata'}).")
    seaweed = state_dir / "seaweedfs" / "server.json"
    if seaweed.exists():
        from pgvector_pipeline.testing.seaweed import ensure_running

        ensure_running(state_dir / "seaweedfs").stop()
        seaweed.unlink()
        print("Stopped the demo's S3 server (SeaweedFS).")


def main(argv: list[str] | None = None) -> int:
    """Command line of the demo: start, seed and back up, then write the environment for the UI; or --stop."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--state-dir", type=Path, default=Path(".local"), help="Server data, backups, Dagster home.")
    parser.add_argument("--env-file", type=Path, help="Write the environment to serve the UI with to this file.")
    parser.add_argument("--stop", action="store_true", help="Stop the servers the demo left running, and exit.")
    args = parser.parse_args(argv)
    if args.stop:
        stop_demo(args.state_dir)
        return 0
    env = run_demo_backup(args.state_dir)
    if args.env_file:
        args.env_file.write_text("".join(f"export {k}='{v}'\n" for k, v in env.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
