"""A real dagster-webserver on 127.0.0.1, driven through the GraphQL client like another tool would.

The test instance sets `run_coordinator: DefaultRunCoordinator` in its dagster.yaml, so submitted runs
launch at once without a dagster-daemon.
"""

import pytest
from dagster import DagsterRunStatus

from pgvector_pipeline.client import VectorBackupClient
from pgvector_pipeline.postgres.langchain_schema import insert_sample_store
from tests.conftest import execute, query
from tests.webserver import running_webserver


@pytest.fixture
def webserver(store_db, backup_root, tmp_path):
    execute(store_db, lambda cur: insert_sample_store(cur, "public", collections=2, embeddings_per_collection=100, dimension=8))
    with running_webserver(tmp_path, {"PGVECTOR_DSN": store_db, "PGVECTOR_BACKUP_ROOT": str(backup_root)}) as port:
        yield port


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
