"""Backups through Dagster: partitions, materialization metadata, truncate, failures, the request path."""

from datetime import datetime, timedelta

import pytest

from pgvector_pipeline.assets.backup import ASSET_BY_TABLE
from pgvector_pipeline.assets.inventory import INVENTORY
from pgvector_pipeline.contract import (
    BACKUP_JOB,
    BACKUP_SET_TAG,
    REQUEST_BACKUP_JOB,
    request_run_config,
)
from pgvector_pipeline.definitions import defs
from pgvector_pipeline.partitions import (
    backup_partitions,
    register_backup_partition,
)
from pgvector_pipeline.store.codecs import COMPRESSION_ENV
from pgvector_pipeline.store.layout import GLOBAL_TASK_KEY, new_timestamp
from pgvector_pipeline.testing.db import execute, query
from pgvector_pipeline.testing.langchain_tables import insert_sample_store
from tests.helpers import (
    DSN_ENV,
    backup_materializations,
    csv_of,
    recent_timestamp,
    recent_timestamps,
    resources_config,
    run_backup,
    run_backup_job,
)


@pytest.fixture
def ts():
    """A timestamp of now: backup runs refuse sets stamped far from the time they run."""
    return recent_timestamp()


@pytest.fixture
def sample_db(store_db, monkeypatch):
    execute(
        store_db,
        lambda cur: insert_sample_store(cur, "public", collections=2, embeddings_per_collection=50, dimension=8),
    )
    monkeypatch.setenv(DSN_ENV, store_db)
    return store_db


def test_backup_materializes_both_partitions_with_metadata(instance, sample_db, backup_root, ts):
    result = run_backup(instance, backup_root, GLOBAL_TASK_KEY, ts)

    assert result.success
    events = backup_materializations(result)
    assert set(events) == {ASSET_BY_TABLE["langchain_pg_collection"], ASSET_BY_TABLE["langchain_pg_embedding"]}
    embedding = events[ASSET_BY_TABLE["langchain_pg_embedding"]]
    assert embedding.partition == "global/" + ts
    metadata = {k: v.value for k, v in embedding.metadata.items()}
    # The default compression: zstd, its ratio shown beside the stored size.
    path = backup_root / "vector_bak" / f"langchain_pg_embedding_{ts}.csv.zst"
    assert metadata["path"] == str(path) and path.stat().st_size == metadata["bytes"]
    assert metadata["compression"] == "zstd" and metadata["content_bytes"] == len(csv_of(path))
    assert metadata["compression_ratio"] == round(metadata["content_bytes"] / metadata["bytes"], 2) > 1.5
    assert metadata["dagster/row_count"] == 100
    assert metadata["size"].endswith(("KB", "MB"))
    assert len(metadata["sha256"]) == 64
    assert [c.name for c in metadata["dagster/column_schema"].columns] == [
        "id",
        "collection_id",
        "embedding",
        "document",
        "cmetadata",
    ]
    assert metadata["embedding_dimensions"] == {"8": 100}
    assert "truncated_rows_before" not in metadata
    assert query(sample_db, "SELECT count(*) FROM langchain_pg_embedding")[0][0] == 100
    stored = instance.get_latest_materialization_event(ASSET_BY_TABLE["langchain_pg_collection"]).asset_materialization
    assert stored.partition == "global/" + ts and stored.metadata["dagster/row_count"].value == 2


def test_truncate_after_backup_reports_counts(instance, sample_db, backup_root, ts, tmp_path):
    (backup_root / "task_7").mkdir()
    result = run_backup(instance, backup_root, "task_7", ts, truncate_after_backup=True)

    assert result.success
    metadata = {k: m.metadata for k, m in backup_materializations(result).items()}[
        ASSET_BY_TABLE["langchain_pg_embedding"]
    ]
    assert metadata["truncated_rows_before"].value == 100 and metadata["truncated_rows_after"].value == 0
    assert query(sample_db, "SELECT count(*) FROM langchain_pg_embedding")[0][0] == 0
    assert (backup_root / "task_7" / "vector_bak" / f"langchain_pg_embedding_{ts}.csv.zst").stat().st_size > 0


def test_failure_carries_error_type_and_truncates_nothing(instance, sample_db, backup_root, ts):
    result = run_backup(instance, backup_root, "no_such_task", ts, truncate_after_backup=True)

    assert not result.success
    failure = result.failure_data_for_node("vector_store_backup").user_failure_data
    assert "does not exist" in failure.description and "create_task_dir" in failure.description
    assert failure.metadata["error_type"].value == "RESOURCE_NOT_FOUND"
    assert failure.metadata["can_retry"].value is False
    assert query(sample_db, "SELECT count(*) FROM langchain_pg_embedding")[0][0] == 100
    assert not (backup_root / "no_such_task").exists()


def test_unreachable_database_fails_retryable(instance, backup_root, ts, monkeypatch):
    monkeypatch.setenv(DSN_ENV, "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")
    key = register_backup_partition(instance, "global", ts)
    job = defs.resolve_job_def(BACKUP_JOB)
    result = job.execute_in_process(
        instance=instance, partition_key=key, run_config=resources_config(), raise_on_error=False
    )

    assert not result.success
    failure = result.failure_data_for_node("vector_store_backup").user_failure_data
    assert failure.metadata["error_type"].value == "DATABASE_ERROR"
    assert failure.metadata["can_retry"].value is True
    # Lost connections are retried: one STEP_UP_FOR_RETRY per retry, then the Failure with its metadata.
    retries = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert len(retries) == 3


def test_request_job_claims_a_set_registers_it_and_backs_up(instance, sample_db, backup_root):
    (backup_root / "task_42").mkdir()
    config = request_run_config("task_42", truncate_after_backup=True)
    request = defs.resolve_job_def(REQUEST_BACKUP_JOB).execute_in_process(
        instance=instance, run_config={**config, **resources_config()}
    )

    assert request.success
    [key] = instance.get_dynamic_partitions(backup_partitions.name)
    timestamp = key.removeprefix("task_42/")
    assert instance.get_run_by_id(request.run_id).tags[BACKUP_SET_TAG] == key
    events = backup_materializations(request)
    assert {k: m.partition for k, m in events.items()} == {
        ASSET_BY_TABLE["langchain_pg_collection"]: key,
        ASSET_BY_TABLE["langchain_pg_embedding"]: key,
    }
    assert events[ASSET_BY_TABLE["langchain_pg_embedding"]].metadata["truncated_rows_before"].value == 100
    assert {str(k) for k in instance.get_materialized_partitions(ASSET_BY_TABLE["langchain_pg_embedding"])} == {key}
    assert (backup_root / "task_42" / "vector_bak" / f"vector_backup_{timestamp}.json").exists()
    assert query(sample_db, "SELECT count(*) FROM langchain_pg_embedding")[0][0] == 0


def test_request_job_rejects_bad_task_id(instance, sample_db, backup_root):
    result = defs.resolve_job_def(REQUEST_BACKUP_JOB).execute_in_process(
        instance=instance,
        run_config={**request_run_config("../../etc"), **resources_config()},
        raise_on_error=False,
    )
    assert not result.success
    failure = result.failure_data_for_node("request_vector_backup").user_failure_data
    assert "not valid" in failure.description and failure.metadata["error_type"].value == "INVALID_PARAMS"
    assert instance.get_dynamic_partitions(backup_partitions.name) == []


def test_backup_stamped_far_from_now_is_refused(instance, sample_db, backup_root):
    result = run_backup(instance, backup_root, GLOBAL_TASK_KEY, "20250101_000000")

    assert not result.success
    failure = result.failure_data_for_node("vector_store_backup").user_failure_data
    assert failure.metadata["error_type"].value == "INVALID_PARAMS"
    assert failure.description.startswith("Set 20250101_000000 is stamped ")
    assert "request_vector_backup_job" in failure.description
    assert "PGVECTOR_BACKUP_TIMESTAMP_WINDOW_S" in failure.description
    assert not (backup_root / "vector_bak").exists()


def test_the_timestamp_window_is_set_in_the_environment(instance, sample_db, backup_root, monkeypatch):
    two_minutes_ago = new_timestamp(datetime.now() - timedelta(minutes=2))
    monkeypatch.setenv("PGVECTOR_BACKUP_TIMESTAMP_WINDOW_S", "60")
    refused = run_backup(instance, backup_root, GLOBAL_TASK_KEY, two_minutes_ago)
    failure = refused.failure_data_for_node("vector_store_backup").user_failure_data
    assert failure.description.startswith(f"Set {two_minutes_ago} is stamped 0:02:0")
    assert "within 60 s of the time it runs (PGVECTOR_BACKUP_TIMESTAMP_WINDOW_S)" in failure.description
    assert not (backup_root / "vector_bak").exists()

    monkeypatch.setenv("PGVECTOR_BACKUP_TIMESTAMP_WINDOW_S", "600")
    assert run_backup(instance, backup_root, GLOBAL_TASK_KEY, two_minutes_ago).success
    assert (backup_root / "vector_bak" / f"vector_backup_{two_minutes_ago}.json").exists()

    # A window that would let a run label today's data with any time is not a window: refused, naming the variable.
    monkeypatch.setenv("PGVECTOR_BACKUP_TIMESTAMP_WINDOW_S", "2000000000")
    result = run_backup(instance, backup_root, GLOBAL_TASK_KEY, "20200101_000000")
    [refusal] = [e for e in result.all_events if e.event_type_value == "RESOURCE_INIT_FAILURE"]
    assert (
        "INVALID_PARAMS: PGVECTOR_BACKUP_TIMESTAMP_WINDOW_S is a whole number of seconds from 0 to 86400, not "
        "'2000000000'." in str(refusal.event_specific_data.error)
    )
    assert not (backup_root / "vector_bak" / "vector_backup_20200101_000000.json").exists()


def test_backfill_of_the_backup_assets_is_refused(instance, sample_db, backup_root):
    timestamp = recent_timestamp()
    key = register_backup_partition(instance, GLOBAL_TASK_KEY, timestamp)
    result = run_backup_job(instance, backup_root, partition_key=key, tags={"dagster/backfill": "abcdefgh"})

    assert not result.success
    failure = result.failure_data_for_node("vector_store_backup").user_failure_data
    assert failure.metadata["error_type"].value == "INVALID_PARAMS"
    assert "Backfills of the backup assets are refused" in failure.description
    assert not (backup_root / "vector_bak").exists()


def test_backup_runs_refresh_the_inventory(instance, sample_db, backup_root, ts):
    assert run_backup(instance, backup_root, GLOBAL_TASK_KEY, ts).success
    request = defs.resolve_job_def(REQUEST_BACKUP_JOB).execute_in_process(
        instance=instance, run_config={**request_run_config(), **resources_config()}
    )
    assert request.success

    inventory = instance.get_latest_materialization_event(INVENTORY).asset_materialization
    records = inventory.metadata["sets"].value.records
    assert len(records) == 2 and inventory.metadata["complete_sets"].value == 2
    claimed = instance.get_run_by_id(request.run_id).tags[BACKUP_SET_TAG].split("/")[1]
    assert {r.data["timestamp"] for r in records} == {ts, claimed}


def test_compression_comes_from_run_config_then_the_environment(instance, sample_db, backup_root, monkeypatch):
    third, second, first = recent_timestamps(3)  # newest first
    assert run_backup(instance, backup_root, GLOBAL_TASK_KEY, first, compression="gzip").success
    monkeypatch.setenv(COMPRESSION_ENV, "none")
    assert run_backup(instance, backup_root, GLOBAL_TASK_KEY, second).success
    assert run_backup(instance, backup_root, GLOBAL_TASK_KEY, third, compression="zstd", compression_level=5).success
    names = sorted(p.name for p in (backup_root / "vector_bak").glob("langchain_pg_embedding_*"))
    assert names == [
        f"langchain_pg_embedding_{first}.csv.gz",
        f"langchain_pg_embedding_{second}.csv",
        f"langchain_pg_embedding_{third}.csv.zst",
    ]
    inventory = instance.get_latest_materialization_event(INVENTORY).asset_materialization
    records = {r.data["timestamp"]: r.data for r in inventory.metadata["sets"].value.records}
    assert [records[ts]["compression"] for ts in (first, second, third)] == ["gzip", "none", "zstd"]
    assert records[second]["compression_ratio"] == 1.0 and records[third]["compression_ratio"] > 1.5


def test_an_unknown_compression_fails_the_run_naming_the_choices(instance, sample_db, backup_root, ts):
    result = run_backup(instance, backup_root, GLOBAL_TASK_KEY, ts, compression="lz4")

    assert not result.success
    failure = result.failure_data_for_node("vector_store_backup").user_failure_data
    assert failure.metadata["error_type"].value == "INVALID_PARAMS"
    assert "Compression 'lz4' is not known: choose one of none, zstd, gzip." in failure.description
    assert not (backup_root / "vector_bak").exists() or not list((backup_root / "vector_bak").glob("*.csv*"))


def test_the_other_tables_checks_say_not_applicable_for_a_langchain_only_set(instance, sample_db, backup_root, ts):
    from pgvector_pipeline.assets.backup import OTHER_TABLES

    result = run_backup(instance, backup_root, GLOBAL_TASK_KEY, ts)

    assert result.success
    others = [e for e in result.get_asset_check_evaluations() if e.asset_key == OTHER_TABLES]
    assert {e.check_name for e in others} == {"files_match_manifest", "embeddings_parse", "rows_hold_up"}
    for evaluation in others:
        assert evaluation.description == (
            f"Not applicable: set {ts} holds no table of this asset (only backups that name other tables in "
            f"`tables` fill it)."
        )
        assert evaluation.metadata["applicable"].value is False
