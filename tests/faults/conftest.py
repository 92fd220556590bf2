"""Fault fixtures: a proxy that drops connections mid-COMMIT, a small real disk that fills up."""

import subprocess
import uuid

import pytest

from tests.faults.proxy import DroppingProxy


@pytest.fixture
def proxy(store_db):
    """A DroppingProxy in front of the store database; `proxy.dsn` connects through it."""
    dropping = DroppingProxy(store_db)
    yield dropping
    dropping.close()


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs mounted for this test: a real file system that runs out of space (needs root)."""
    mount = tmp_path / f"disk_{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)
