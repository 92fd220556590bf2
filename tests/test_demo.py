"""The non-interactive part of `./run demo`, so the README's first command never rots."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pgvector_pipeline.testing.embedded import start_embedded_server
from tests.helpers import csv_of

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def demo_state(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    yield state
    if (state / "pgdata" / "PG_VERSION").exists():
        # The demo leaves its server running for the UI; stop it here.
        start_embedded_server(state / "pgdata", keep_running=False).cleanup()


def run_demo(state: Path, *args: str, **extra_env: str) -> str:
    """The demo's module as `./run demo` runs it (or with `args`, e.g. --stop); its output."""
    unset = ("PGVECTOR_DSN", "PGVECTOR_BACKUP_ROOT", "DAGSTER_HOME", "PGVECTOR_DEMO_S3")
    env = {k: v for k, v in os.environ.items() if k not in unset} | extra_env
    completed = subprocess.run(
        [sys.executable, "-m", "pgvector_pipeline.testing.demo", "--state-dir", str(state)]
        + (list(args) or ["--env-file", str(state / "demo.env")]),
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return completed.stdout


def test_demo_seeds_backs_up_and_reuses_its_server(demo_state):
    first = run_demo(demo_state)
    second = run_demo(demo_state)

    assert "seeded sample data" in first and "reusing data" in second
    sets = sorted((demo_state / "backups" / "vector_bak").glob("vector_backup_*.json"))
    assert len(sets) == 1  # the first start backs up; a restart does not add a full set
    embedding_csvs = sorted((demo_state / "backups" / "vector_bak").glob("langchain_pg_embedding_*.csv.zst"))
    assert [csv_of(p).count(b"\n") for p in embedding_csvs] == [3001]
    assert str(embedding_csvs[-1]) in first
    assert "1 backup set(s) exist already" in second and "the demo takes no new one" in second
    env_file = (demo_state / "demo.env").read_text()
    assert "PGVECTOR_DSN=" in env_file and f"DAGSTER_HOME='{demo_state / 'dagster_home'}'" in env_file


def test_one_variable_points_the_demo_at_s3(demo_state, monkeypatch):
    """PGVECTOR_DEMO_S3=1 ./run demo: a local S3 server (SeaweedFS) that outlives the demo, its backups there."""
    try:
        first = run_demo(demo_state, PGVECTOR_DEMO_S3="1")
        second = run_demo(demo_state, PGVECTOR_DEMO_S3="1")
        env = dict(
            line.removeprefix("export ").replace("'", "").split("=", 1)
            for line in (demo_state / "demo.env").read_text().splitlines()
        )
        assert env["PGVECTOR_BACKUP_ROOT"] == "s3://pgvector-demo/backups"
        endpoint = env["AWS_ENDPOINT_URL"]
        assert first.count(endpoint) == 1 and second.count(endpoint) == 1  # the second run reuses the server
        assert "s3://pgvector-demo/backups/vector_bak/langchain_pg_embedding_" in first
        from pgvector_pipeline.store.roots import store_at

        for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"):
            monkeypatch.setenv(name, env[name])
        sets = store_at(env["PGVECTOR_BACKUP_ROOT"]).list_sets()
        assert [(s.status, s.rows("langchain_pg_embedding")) for s in sets] == [("complete", 3000)]

        # ./run demo-stop stops both servers it left running.
        pid = json.loads((demo_state / "seaweedfs" / "server.json").read_text())["pid"]
        stopped = run_demo(demo_state, "--stop")
        assert "Stopped the demo's PostgreSQL" in stopped and "Stopped the demo's S3 server (SeaweedFS)." in stopped
        assert not (demo_state / "pgdata" / "postmaster.pid").exists()
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    finally:
        server = demo_state / "seaweedfs" / "server.json"
        if server.exists():
            os.kill(json.loads(server.read_text())["pid"], signal.SIGKILL)
