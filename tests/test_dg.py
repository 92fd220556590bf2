"""Dagster's project CLI, `dg`, works with this project's layout through [tool.dg] in pyproject.toml."""

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def dg(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "VIRTUAL_ENV": str(Path(sys.executable).parents[1])}
    return subprocess.run(
        [str(Path(sys.executable).parent / "dg"), *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True
    )


def test_dg_checks_and_lists_the_definitions():
    checked = dg("check", "defs")
    assert checked.returncode == 0, checked.stderr
    assert "All definitions loaded successfully." in checked.stdout + checked.stderr

    listed = dg("list", "defs", "--json")
    assert listed.returncode == 0, listed.stderr
    for name in ("vector_backup_job", "vector_restore_job", "backup_discovery_sensor", "langchain_pg_embedding_backup"):
        assert name in listed.stdout
