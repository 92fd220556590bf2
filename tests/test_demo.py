"""The non-interactive part of `./run demo`, so the README's first command never rots."""

import os
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


def run_demo(state: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PGVECTOR_DSN", "PGVECTOR_BACKUP_ROOT", "DAGSTER_HOME")}
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pgvector_pipeline.testing.demo",
            "--state-dir",
            str(state),
            "--env-file",
            str(state / "demo.env"),
        ],
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
    assert len(sets) == 2
    embedding_csvs = sorted((demo_state / "backups" / "vector_bak").glob("langchain_pg_embedding_*.csv.zst"))
    assert [csv_of(p).count(b"\n") for p in embedding_csvs] == [3001, 3001]
    assert str(embedding_csvs[-1]) in second
    env_file = (demo_state / "demo.env").read_text()
    assert "PGVECTOR_DSN=" in env_file and f"DAGSTER_HOME='{demo_state / 'dagster_home'}'" in env_file
