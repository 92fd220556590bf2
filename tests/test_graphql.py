"""A real dagster-webserver on 127.0.0.1, driven through the GraphQL client like another tool would.

The test instance sets `run_coordinator: DefaultRunCoordinator` in its dagster.yaml, so submitted runs
launch at once without a dagster-daemon.
"""

import json
import os
import subprocess
import sys

import pytest
import requests

from pgvector_pipeline.contract import RestoreFlags
from pgvector_pipeline.entry_points.client import PipelineClientError, VectorBackupClient
from pgvector_pipeline.errors import InvalidParams
from pgvector_pipeline.store.local import LocalBackupStore
from pgvector_pipeline.testing.db import execute, query
from pgvector_pipeline.testing.langchain_tables import insert_sample_store
from pgvector_pipeline.testing.webserver import running_webserver
from tests.helpers import recent_timestamp


@pytest.fixture
def webserver(store_db, backup_root, tmp_path):
    execute(
        store_db,
        lambda cur: insert_sample_store(cur, "public", collections=2, embeddings_per_collection=100, dimension=8),
    )
    with running_webserver(tmp_path, {"PGVECTOR_DSN": store_db, "PGVECTOR_BACKUP_ROOT": str(backup_root)}) as port:
        yield port


def test_backup_launched_through_graphql(webserver, store_db, backup_root):
    client = VectorBackupClient("127.0.0.1", webserver)

    # Plain CSVs, as a user whose old tools read the sets asks for: the compression setting travels in run config.
    launched = client.launch_backup(truncate_after_backup=True, compression="none")

    assert client.wait_for_run(launched.run_id, timeout_s=180).status == "SUCCESS"
    task, timestamp = client.run_status(launched.run_id).backup_set.split("/")
    assert task == launched.task == "global"
    csv_path = backup_root / "vector_bak" / f"langchain_pg_embedding_{timestamp}.csv"
    assert csv_path.read_bytes().count(b"\n") == 201  # header + 200 rows (no newlines in sample documents)
    assert (backup_root / "vector_bak" / f"vector_backup_{timestamp}.json").exists()
    assert query(store_db, "SELECT count(*) FROM langchain_pg_embedding")[0][0] == 0

    refused = client.launch_backup(task_id="task_missing")
    assert client.wait_for_run(refused.run_id, timeout_s=180).status == "FAILURE"
    assert client.run_status(refused.run_id).backup_set is None
    assert not (backup_root / "task_missing").exists()


def test_backups_launched_together_get_distinct_complete_sets(webserver, backup_root):
    client = VectorBackupClient("127.0.0.1", webserver)

    launched = [client.launch_backup() for _ in range(3)]

    assert [client.wait_for_run(run.run_id, timeout_s=180).status for run in launched] == ["SUCCESS"] * 3
    sets = {client.run_status(run.run_id).backup_set for run in launched}
    assert len(sets) == 3
    listed = {f"{s['task_id']}/{s['timestamp']}": s for s in client.list_backup_sets(refresh=True)}
    assert set(listed) == sets and all(
        s["status"] == "complete" and s["embedding_rows"] == 200 for s in listed.values()
    )


def test_a_named_set_launched_twice_fails_the_second_time_plainly(webserver, backup_root):
    client = VectorBackupClient("127.0.0.1", webserver)
    timestamp = recent_timestamp()
    first = client.launch_backup(timestamp=timestamp)
    assert client.wait_for_run(first.run_id, timeout_s=180).status == "SUCCESS"
    second = client.launch_backup(timestamp=timestamp)
    assert client.wait_for_run(second.run_id, timeout_s=180).status == "FAILURE"
    log = (backup_root / "vector_bak" / "vector_backup_log.txt").read_text()
    assert f"backup {timestamp} FAILED" in log and "already exists" in log


def test_sets_listed_through_graphql(webserver, backup_root):
    client = VectorBackupClient("127.0.0.1", webserver)
    assert client.list_backup_sets() == []
    launched = client.launch_backup()
    assert client.wait_for_run(launched.run_id, timeout_s=180).status == "SUCCESS"
    timestamp = client.run_status(launched.run_id).backup_set.split("/")[1]
    (backup_root / "task_2" / "vector_bak").mkdir(parents=True)
    (backup_root / "task_2" / "vector_bak" / "langchain_pg_embedding_20200101_000000.csv").write_text("id\n")

    sets = client.list_backup_sets(refresh=True)

    assert [(s["task_id"], s["timestamp"], s["complete"], s["embedding_rows"]) for s in sets] == [
        ("global", timestamp, True, 200),
        ("task_2", "20200101_000000", False, None),
    ]
    assert [s["task_id"] for s in client.list_backup_sets(task_id="task_2")] == ["task_2"]
    assert [s["task_id"] for s in client.list_backup_sets(global_only=True)] == ["global"]


def test_a_listing_right_after_a_backup_includes_it(webserver):
    client = VectorBackupClient("127.0.0.1", webserver)
    launched = client.launch_backup()
    info = client.wait_for_run(launched.run_id, timeout_s=180)
    assert info.status == "SUCCESS"

    # No refresh and no sensor tick: the backup run refreshed the inventory itself.
    assert [f"{s['task_id']}/{s['timestamp']}" for s in client.list_backup_sets()] == [info.backup_set]


def test_refused_launches_carry_dagsters_reasons(webserver):
    client = VectorBackupClient("127.0.0.1", webserver)
    bad_config = {"ops": {"restore_vector_backup": {"config": {"timestamp": 20261124, "no_such_option": True}}}}
    with pytest.raises(PipelineClientError) as refused:
        client.launch_job("vector_restore_job", bad_config)
    error = refused.value
    assert error.error_type == "INVALID_PARAMS" and error.can_retry is False
    assert error.message.startswith("Dagster refused the run config of vector_restore_job: ")
    assert any("no_such_option" in reason for reason in error.reasons)
    assert any("root:ops:restore_vector_backup:config:timestamp" in reason for reason in error.reasons)

    with pytest.raises(PipelineClientError, match="Dagster refused to launch no_such_job"):
        client.launch_job("no_such_job")


def test_run_status_of_a_failed_run_carries_its_error_type(webserver, store_db):
    client = VectorBackupClient("127.0.0.1", webserver)
    launched = client.launch_restore(None, "20200101_000000")
    info = client.wait_for_run(launched.run_id, timeout_s=180)

    assert (info.status, info.error_type, info.can_retry) == ("FAILURE", "RESOURCE_NOT_FOUND", False)
    assert "20200101_000000" in info.error_message
    with pytest.raises(PipelineClientError) as failed:
        client.check_run(info)
    assert failed.value.error_type == "RESOURCE_NOT_FOUND" and failed.value.run_id == launched.run_id


def test_a_failed_runs_hint_is_the_config_key_in_the_ui_and_the_flag_in_the_shell(webserver):
    client = VectorBackupClient("127.0.0.1", webserver)
    backup = client.wait_for_run(client.launch_backup().run_id, timeout_s=180)
    assert backup.status == "SUCCESS"
    timestamp = backup.backup_set.split("/")[1]

    failed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pgvector_pipeline.entry_points.cli",
            "--port",
            str(webserver),
            "restore",
            "--timestamp",
            timestamp,
        ]
        + ["--collections", "sample_collection_1", "--truncate", "--wait"],
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert failed.returncode == 1, failed.stdout + failed.stderr
    run = json.loads(failed.stdout)
    # The run's message (the Dagster UI's, and the JSON's) names the run config's keys ...
    assert (run["status"], run["error_type"]) == ("FAILURE", "INVALID_PARAMS")
    assert run["error_message"] == (
        "truncate_before_restore empties the whole tables, and collections restores only some collections: the "
        "others would be lost. Set replace_collections: true to replace just the collections named."
    )
    # ... and the same error, on the shell's stderr, its flags.
    assert failed.stderr.splitlines()[-1] == (
        f"error: run {run['run_id']} FAILURE: INVALID_PARAMS: --truncate empties the whole tables, and --collections "
        "restores only some collections: the others would be lost. Pass --replace-collections to replace just the "
        "collections named."
    )


def test_an_unreachable_webserver_is_said_plainly():
    client = VectorBackupClient("127.0.0.1", 1)
    with pytest.raises(PipelineClientError, match="could not be reached") as unreachable:
        client.run_status("any")
    assert unreachable.value.error_type == "WEBSERVER_UNREACHABLE"


def test_backup_list_and_restore_over_graphql_with_an_s3_root(store_db, s3_server, s3_bucket, tmp_path):
    """The webserver's runs read PGVECTOR_BACKUP_ROOT=s3://… and the standard AWS variables, as a deployment on
    Kubernetes would; the secret key is in no event, log, compute log or object."""
    execute(
        store_db,
        lambda cur: insert_sample_store(cur, "public", collections=2, embeddings_per_collection=100, dimension=8),
    )
    local = tmp_path / "local_copies"
    env = {
        "PGVECTOR_DSN": store_db,
        "PGVECTOR_BACKUP_ROOT": f"s3://{s3_bucket}/prod",
        "PGVECTOR_OTHER_BACKUP_ROOT": str(local),
        **s3_server.env(),
    }
    with running_webserver(tmp_path, env) as port:
        client = VectorBackupClient("127.0.0.1", port)
        launched = [client.launch_backup(), client.launch_backup(compression="none")]
        assert [client.wait_for_run(run.run_id, timeout_s=180).status for run in launched] == ["SUCCESS"] * 2
        made = [client.run_status(run.run_id).backup_set for run in launched]
        listed = client.list_backup_sets()
        assert sorted(f"{s['task_id']}/{s['timestamp']}" for s in listed) == sorted(made)
        assert {s["location"] for s in listed} == {f"s3://{s3_bucket}/prod/vector_bak"}
        assert all(s["status"] == "complete" and s["embedding_rows"] == 200 for s in listed)

        restore = client.launch_restore(None, made[1].split("/")[1], flags=RestoreFlags(truncate_before_restore=True))
        assert client.wait_for_run(restore.run_id, timeout_s=180).status == "SUCCESS"

        # Off the object store onto this machine's disk, from the command line.
        copied = subprocess.run(
            [sys.executable, "-m", "pgvector_pipeline.entry_points.cli", "--port", str(port), "copy", "--timestamp"]
            + [made[0].split("/")[1], "--wait"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert copied.returncode == 0, copied.stderr
        result = json.loads(copied.stdout)
        # What it copied, where from and where to (its JSON said null).
        assert (result["status"], result["backup_set"]) == ("SUCCESS", made[0])
        assert result["bytes"] > 0 and result["rows"] == 202
        assert (result["source"], result["target"]) == (f"s3://{s3_bucket}/prod/vector_bak", str(local / "vector_bak"))
    assert [s.status for s in LocalBackupStore(local).list_sets()] == ["complete"]
    assert query(store_db, "SELECT count(*) FROM langchain_pg_embedding")[0][0] == 200
    secret = s3_server.env()["AWS_SECRET_ACCESS_KEY"].encode()
    assert [p for p in tmp_path.rglob("*") if p.is_file() and secret in p.read_bytes()] == []
    s3 = s3_server.client()
    for item in s3.list_objects_v2(Bucket=s3_bucket)["Contents"]:
        assert secret not in s3.get_object(Bucket=s3_bucket, Key=item["Key"])["Body"].read()


def test_per_collection_backup_and_restore_through_graphql(webserver, store_db, backup_root):
    client = VectorBackupClient("127.0.0.1", webserver)
    launched = client.launch_backup(collections=["sample_collection_1"])
    assert client.wait_for_run(launched.run_id, timeout_s=180).status == "SUCCESS"
    [listed] = client.list_backup_sets()
    assert listed["collections"] == "1 chosen: 'sample_collection_1' (100)" and listed["embedding_rows"] == 100

    execute(store_db, lambda cur: cur.execute("UPDATE langchain_pg_embedding SET document = 'changed'"))
    restore = client.launch_restore(
        None,
        listed["timestamp"],
        flags=RestoreFlags(replace_collections=True),
        collections=["sample_collection_1"],
    )
    assert client.wait_for_run(restore.run_id, timeout_s=180).status == "SUCCESS"
    documents = dict(
        query(
            store_db,
            "SELECT c.name, count(*) FILTER (WHERE e.document = 'changed') FROM langchain_pg_embedding e "
            "JOIN langchain_pg_collection c ON e.collection_id = c.uuid GROUP BY c.name",
        )
    )
    assert documents == {"sample_collection_0": 100, "sample_collection_1": 0}

    # The same collection into a PGVectorStore table, from the command line.
    migrated = subprocess.run(
        [sys.executable, "-m", "pgvector_pipeline.entry_points.cli", "--port", str(webserver), "restore", "--timestamp"]
        + [listed["timestamp"], "--collections", "sample_collection_1", "--migrate-to", "pgvector_store"]
        + ["--store-table", "collection_1", "--metadata-column", "page:integer", "--wait"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    assert query(store_db, "SELECT count(*), count(DISTINCT page) FROM collection_1") == [(100, 7)]
    # The run's result names the set it restored and says what it moved and how long it took.
    result = json.loads(migrated.stdout)
    assert result["backup_set"] == f"global/{listed['timestamp']}" and result["status"] == "SUCCESS"
    assert result["rows"] >= 100 and result["bytes"] > 0 and 0 < result["duration_s"] < 300

    # Named tables with a row filter, from the command line: the new PGVectorStore table, the pages 3 only.
    named = subprocess.run(
        [
            sys.executable,
            "-m",
            "pgvector_pipeline.entry_points.cli",
            "--port",
            str(webserver),
            "backup",
            "--table",
            "collection_1",
        ]
        + ["--where", "collection_1=page = 3", "--compression", "none", "--wait"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert named.returncode == 0, named.stdout + named.stderr
    newest = max(client.list_backup_sets(), key=lambda s: s["timestamp"])
    assert (newest["tables"], newest["status"]) == ("collection_1 (14 rows)", "complete")
    backed_up = json.loads(named.stdout)
    # --wait followed the run: its progress lines arrived on stderr, stdout kept the result alone.
    assert f" INFO Backup set {newest['timestamp']} written to " in named.stderr, named.stderr
    assert (backed_up["backup_set"], backed_up["rows"]) == (f"global/{newest['timestamp']}", 14)
    assert backed_up["bytes"] > 0 and 0 < backed_up["duration_s"] < 300
    # A reader that stops reading (`list | head`) is not an error of the command: no traceback, exit 0.
    read_end, write_end = os.pipe()
    os.close(read_end)
    piped = subprocess.run(
        [sys.executable, "-m", "pgvector_pipeline.entry_points.cli", "--port", str(webserver), "list"],
        stdout=write_end,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
    )
    os.close(write_end)
    assert (piped.returncode, piped.stderr) == (0, "")
    [listed_set] = [s for s in LocalBackupStore(backup_root).list_sets() if s.timestamp == newest["timestamp"]]
    assert listed_set.rows("collection_1") == query(store_db, "SELECT count(*) FROM collection_1 WHERE page = 3")[0][0]


def cli(port: int, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pgvector_pipeline.entry_points.cli", "--port", str(port), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def run_ids(port: int) -> list[str]:
    """Every run of the instance, as the webserver lists them."""
    answer = requests.post(
        f"http://127.0.0.1:{port}/graphql",
        json={"query": "{ runsOrError { __typename ... on Runs { results { runId } } } }"},
        timeout=60,
    ).json()
    return [run["runId"] for run in answer["data"]["runsOrError"]["results"]]


def test_a_mistyped_set_is_refused_before_any_launch_and_latest_resolves_in_the_run(webserver, backup_root):
    client = VectorBackupClient("127.0.0.1", webserver)
    backup = client.wait_for_run(client.launch_backup().run_id, timeout_s=180)
    assert backup.status == "SUCCESS"
    timestamp = backup.backup_set.split("/")[1]
    location = backup_root / "vector_bak"
    launched = run_ids(webserver)

    typo = cli(webserver, "restore", "--timestamp", timestamp[:-1] + "x", "--truncate", "--wait")
    assert typo.returncode == 2, typo.stdout + typo.stderr
    assert typo.stderr.startswith(
        f"error: INVALID_PARAMS: No set {timestamp[:-1]}x in {location}; nearest: {timestamp}. Name a set by its "
        f"timestamp (YYYYMMDD_HHMMSS), or 'latest' for the newest complete set. (Checked against the sets as listed "
        f"at "
    )
    assert "`pgvector-pipeline list --refresh`" in typo.stderr
    table = cli(webserver, "restore", "--timestamp", "latest", "--tables", "langchain_pg_embeding")
    assert table.returncode == 2
    assert (
        f"Cannot restore ['langchain_pg_embeding'] (nearest: langchain_pg_embedding): set {timestamp}" in table.stderr
    )
    task = cli(webserver, "verify", "--task-id", "task_1")
    assert task.returncode == 2 and task.stderr.startswith(
        f"error: INVALID_PARAMS: No task 'task_1' in {backup_root}; there are no tasks. List the tasks "
        f"(pgvector-pipeline list) and name one of them, or 'global'. (Checked against "
    )
    # No second store on this code server: refused plainly, as a usage error.
    copy = cli(webserver, "copy", "--timestamp", timestamp)
    assert copy.returncode == 2
    assert copy.stderr.startswith(
        "error: INVALID_PARAMS: The code server has no other store to copy to or from: vector_copy_job copies between "
        "PGVECTOR_BACKUP_ROOT and PGVECTOR_OTHER_BACKUP_ROOT, which is not set for it."
    )
    with pytest.raises(InvalidParams, match=r"holds no collection named 'sample_colection_1' \(nearest: 'sample_"):
        client.launch_restore(None, "latest", collections=["sample_colection_1"])
    assert run_ids(webserver) == launched  # not one run launched, so none failed

    # 'latest' is resolved by the run, which says so.
    restored = cli(webserver, "restore", "--timestamp", "latest", "--truncate", "--wait")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert json.loads(restored.stdout)["backup_set"] == backup.backup_set
    assert f"'latest' is set {timestamp} in {location}, taken at " in restored.stderr
    verified = cli(webserver, "verify", "--timestamp", "latest")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert json.loads(verified.stdout)["backup_set"] == backup.backup_set

    # The listing says where the store is, when each set was taken (with its offset), how long it took, from where.
    [record] = [json.loads(line) for line in cli(webserver, "list", "--json").stdout.splitlines()]
    assert (record["store"], record["location"]) == (str(backup_root), str(location))
    assert record["taken_at"][-6] in "+-" and 0 < record["duration_s"] < 300 and record["source_database"]
    assert record["table_names"] == ["langchain_pg_collection", "langchain_pg_embedding"]
    store, header, row = cli(webserver, "list").stdout.splitlines()
    assert store == f"Backup store: {backup_root}" and header.split()[5] == "TOOK"
    assert record["source_database"] in row and f"{record['taken_at'][:10]} " in row
