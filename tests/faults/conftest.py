"""Fault fixtures: a proxy that drops connections mid-COMMIT, a small real disk that fills up, a store large enough
for several S3 upload parts."""

import subprocess
import uuid

import pytest

from pgvector_pipeline.names import LANGCHAIN_POSTGRES
from pgvector_pipeline.testing.db import execute
from pgvector_pipeline.testing.langchain_tables import create_langchain_tables
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


@pytest.fixture
def big_db(empty_db) -> str:
    """A store whose embedding CSV is about 25 MB: several upload parts of 5 MiB."""

    def fill(cur) -> None:
        create_langchain_tables(cur, "public", LANGCHAIN_POSTGRES)
        cur.execute("INSERT INTO langchain_pg_collection (uuid, name) VALUES (gen_random_uuid(), 'big')")
        cur.execute(
            "INSERT INTO langchain_pg_embedding (id, collection_id, embedding, document) "
            "SELECT 'e' || i, (SELECT uuid FROM langchain_pg_collection), "
            "(SELECT array_agg(random())::vector FROM generate_series(1, 1024) WHERE i > 0), 'doc ' || i "
            "FROM generate_series(1, 2400) i"
        )

    execute(empty_db, fill)
    return empty_db
