"""A real dagster-webserver on 127.0.0.1, driven through the GraphQL client like another tool would.

The test instance sets `run_coordinator: DefaultRunCoordinator` in its dagster.yaml, so submitted runs
launch at once without a dagster-daemon.
"""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from dagster import DagsterRunStatus

from pgvector_pipeline.client import VectorBackupClient
from pgvector_pipeline.postgres.langchain_schema import insert_sample_store
from tests.conftest import execute, query

REPO_ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def webserver(store_db, backup_root, tmp_path):
    execute(store_db, lambda cur: insert_sample_store(cur, "public", collections=2, embeddings_per_collection=100, dimension=8))
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(
        "run_coordinator:\n  module: dagster._core.run_coordinator\n  class: DefaultRunCoordinator\n"
        "telemetry:\n  enabled: false\n"
    )
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "PGVECTOR_DSN": store_db, "PGVECTOR_BACKUP_ROOT": str(backup_root)}
    log = open(tmp_path / "webserver.log", "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "dagster_webserver", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/server_info", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("dagster-webserver did not start:\n" + (tmp_path / "webserver.log").read_text())
            time.sleep(0.5)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def test_backup_launched_through_graphql(webserver, store_db, backup_root):
    client = VectorBackupClient("127.0.0.1", webserver)

    launched = client.launch_backup(truncate_after_backup=True)

    assert client.wait_for_run(launched.run_id, timeout_s=180) == DagsterRunStatus.SUCCESS
    assert launched.partition_key == f"global|{launched.timestamp}"
    csv_path = backup_root / "vector_bak" / f"langchain_pg_embedding_{launched.timestamp}.csv"
    assert csv_path.read_bytes().count(b"\n") == 201  # header + 200 rows (no newlines in sample documents)
    assert (backup_root / "vector_bak" / f"vector_backup_{launched.timestamp}.json").exists()
    assert query(store_db, "SELECT count(*) FROM langchain_pg_embedding")[0][0] == 0

    refused = client.launch_backup(task_id="task_missing")
    assert client.wait_for_run(refused.run_id, timeout_s=180) == DagsterRunStatus.FAILURE
    assert not (backup_root / "task_missing").exists()


def test_sets_listed_through_graphql(webserver, backup_root):
    client = VectorBackupClient("127.0.0.1", webserver)
    assert client.list_backup_sets() == []
    launched = client.launch_backup()
    assert client.wait_for_run(launched.run_id, timeout_s=180) == DagsterRunStatus.SUCCESS
    (backup_root / "task_2" / "vector_bak").mkdir(parents=True)
    (backup_root / "task_2" / "vector_bak" / "langchain_pg_embedding_20200101_000000.csv").write_text("id\n")

    sets = client.list_backup_sets(refresh=True)

    assert [(s["task_id"], s["timestamp"], s["complete"], s["embedding_rows"]) for s in sets] == [
        ("global", launched.timestamp, True, 200),
        ("task_2", "20200101_000000", False, None),
    ]
    assert [s["task_id"] for s in client.list_backup_sets(task_id="task_2")] == ["task_2"]
    assert [s["task_id"] for s in client.list_backup_sets(global_only=True)] == ["global"]
