"""Input a user (or another program) can get wrong: every key matched whole, every failure a Failure with
error_type and a plain message, and only lost connections retried."""

import dagster as dg
import pytest

from pgvector_pipeline.contract import (
    REQUEST_BACKUP_JOB,
    RESTORE_JOB,
    TRUNCATE_JOB,
    database_tags,
    pgvector_resource_config,
    request_run_config,
    restore_run_config,
)
from pgvector_pipeline.definitions import defs
from pgvector_pipeline.errors import InvalidParams
from pgvector_pipeline.operations.backup import BackupOptions, back_up_database
from pgvector_pipeline.partitions import backup_partitions, register_backup_partition
from pgvector_pipeline.postgres.row_filter import checked_row_filter
from pgvector_pipeline.resources import BackupStoreResource
from pgvector_pipeline.sensors.discovery import backup_discovery_sensor
from pgvector_pipeline.store.layout import (
    GLOBAL_TASK_KEY,
    validate_task_id,
    validate_timestamp,
)
from pgvector_pipeline.store.local import LocalBackupStore, list_backup_sets, locate_backup_set
from pgvector_pipeline.testing.db import execute, query
from pgvector_pipeline.testing.langchain_tables import insert_sample_store
from tests.helpers import DSN_ENV, recent_timestamp, resources_config, run_backup_job

TS = "20261124_170000"
BAD_TASK_IDS = ["task_nl\n", "x" * 10_000, "a\x00b", "tâche", "task１", "", "a|b", "a,b", "../x", "a b", "a/b"]
BAD_TIMESTAMPS = ["20261124_170000\n", "２０２６1124_170000", "20261124_1700000", "2026-11-24", "\x0020261124_170000"]
BAD_PARTITION_KEYS = [
    "a/b/" + TS,
    "../x/" + TS,
    "x" * 10_000 + "/" + TS,
    "a\x00/" + TS,
    "'; DROP TABLE langchain_pg_embedding; --/" + TS,
    "global/" + TS + "\n",
    "global|" + TS + "\n",  # the layout before, still read from old runs' tags
    "global",
]


@pytest.mark.parametrize("task_id", BAD_TASK_IDS)
def test_bad_task_ids_are_refused_before_anything_is_written(task_id, store_db, backup_root):
    with pytest.raises(InvalidParams, match="is not valid"):
        back_up_database(
            store_db, "public", LocalBackupStore(backup_root), task_id, TS, BackupOptions(create_task_dir=True)
        )
    assert list(backup_root.iterdir()) == []


@pytest.mark.parametrize("task_id", BAD_TASK_IDS)
def test_task_ids_are_matched_whole(task_id):
    with pytest.raises(InvalidParams) as failure:
        validate_task_id(task_id)
    assert len(failure.value.message) < 300  # a 10,000-character id is cut short in the message


@pytest.mark.parametrize("timestamp", BAD_TIMESTAMPS)
def test_timestamps_are_matched_whole(timestamp):
    with pytest.raises(InvalidParams):
        validate_timestamp(timestamp)


def test_directories_and_files_with_odd_names_are_not_listed(backup_root):
    for name in ["task_nl\n", "task１"]:
        (backup_root / name / "vector_bak").mkdir(parents=True)
        (backup_root / name / "vector_bak" / f"langchain_pg_embedding_{TS}.csv").write_text("id\n")
    (backup_root / "vector_bak").mkdir()
    (backup_root / "vector_bak" / f"langchain_pg_embedding_{TS}.csv\n").write_text("id\n")
    (backup_root / "vector_bak" / "langchain_pg_embedding_２０２６1124_170000.csv").write_text("id\n")
    assert list_backup_sets(backup_root) == []


@pytest.mark.parametrize("backup_path", ["x" * 10_000, "task\x00/vector_bak", "/" + "a/" * 3000])
def test_bad_backup_paths_are_invalid_params(backup_path, backup_root):
    with pytest.raises(InvalidParams):
        locate_backup_set(backup_root, backup_path=backup_path, timestamp=TS)


def assert_failed_once(result, error_type: str, words: str) -> None:
    assert not result.success
    failure = result.failure_data_for_node("vector_store_backup").user_failure_data
    assert failure.metadata["error_type"].value == error_type and failure.metadata["can_retry"].value is False
    assert words in failure.description, failure.description
    assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]


@pytest.mark.parametrize("partition_key", BAD_PARTITION_KEYS)
def test_runs_for_bad_partition_keys_fail_fast(partition_key, store_db, backup_root, monkeypatch):
    monkeypatch.setenv(DSN_ENV, store_db)
    with dg.instance_for_test() as instance:
        result = run_backup_job(instance, backup_root, {"env": DSN_ENV}, tags={"dagster/partition": partition_key})
    assert_failed_once(
        result, "INVALID_PARAMS", "is not valid" if {"/", "|"} & set(partition_key) else "is not 'task_id/timestamp'"
    )
    assert list(backup_root.iterdir()) == []


@pytest.mark.parametrize(
    "dsn_of, error_type, words",
    [
        (lambda dsn: dsn.replace("/test_", "/no_such_db_"), "RESOURCE_NOT_FOUND", "does not exist"),
        (lambda dsn: dsn.replace("postgres:@", "no_such_role:@"), "RESOURCE_NOT_FOUND", "does not exist"),
    ],
)
def test_refused_connections_are_not_retried(dsn_of, error_type, words, store_db, backup_root, monkeypatch):
    monkeypatch.setenv(DSN_ENV, dsn_of(store_db))
    with dg.instance_for_test() as instance:
        key = register_backup_partition(instance, GLOBAL_TASK_KEY, recent_timestamp())
        result = run_backup_job(instance, backup_root, {"env": DSN_ENV}, partition_key=key)
    assert_failed_once(result, error_type, words)


@pytest.mark.parametrize("task_id", ["task_ok\n", " task_ok", "task_ok\t"])
def test_request_job_validates_the_task_id_and_never_normalises_it(task_id, backup_root, store_db, monkeypatch):
    monkeypatch.setenv(DSN_ENV, store_db)
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def(REQUEST_BACKUP_JOB).execute_in_process(
            instance=instance,
            run_config={**request_run_config(task_id, create_task_dir=True), **resources_config()},
            raise_on_error=False,
        )
        failure = result.failure_data_for_node("request_vector_backup").user_failure_data
    assert failure.metadata["error_type"].value == "INVALID_PARAMS" and "is not valid" in failure.description
    assert list(backup_root.iterdir()) == []


def test_request_job_refuses_a_huge_task_id_plainly(backup_root, store_db, monkeypatch):
    monkeypatch.setenv(DSN_ENV, store_db)
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def(REQUEST_BACKUP_JOB).execute_in_process(
            instance=instance,
            run_config={
                **request_run_config("t" * 10_000),
                "resources": {
                    "pgvector": {"config": {"dsn": {"env": DSN_ENV}}},
                },
            },
            raise_on_error=False,
        )
        failure = result.failure_data_for_node("request_vector_backup").user_failure_data
        assert failure.metadata["error_type"].value == "INVALID_PARAMS" and "10002 characters" in failure.description
        assert instance.get_dynamic_partitions(backup_partitions.name) == []


def test_discovery_sensor_removes_invalid_partition_keys(backup_root):
    # The valid key's set exists: only the invalid keys go.
    (backup_root / "task_ok" / "vector_bak").mkdir(parents=True)
    for table in ("langchain_pg_collection", "langchain_pg_embedding"):
        (backup_root / "task_ok" / "vector_bak" / f"{table}_{TS}.csv").write_text("header\n")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(
            backup_partitions.name,
            [
                "task_ok/" + TS,
                "../x/" + TS,
                "a\x00",
                "x" * 10_000,
                "DROP TABLE x",
                "global/2026",
                "global/" + TS + "\n",
            ],
        )
        context = dg.build_sensor_context(
            instance=instance, definitions=defs, resources={"backup_store": BackupStoreResource()}
        )
        result = backup_discovery_sensor(context)

    deletions = {(r.partitions_def_name, tuple(r.partition_keys)) for r in result.dynamic_partitions_requests}
    assert deletions == {
        (
            backup_partitions.name,
            ("../x/" + TS, "a\x00", "x" * 10_000, "DROP TABLE x", "global/2026", "global/" + TS + "\n"),
        )
    }
    assert all(isinstance(r, dg.DeleteDynamicPartitionsRequest) for r in result.dynamic_partitions_requests)


def test_a_run_on_another_database_must_carry_its_database_tag(store_db, monkeypatch):
    execute(store_db, lambda cur: insert_sample_store(cur, "public", collections=1, embeddings_per_collection=7))
    monkeypatch.setenv("OTHER_DSN", store_db)
    truncate_job = defs.resolve_job_def(TRUNCATE_JOB)
    with dg.instance_for_test() as instance:
        untagged = truncate_job.execute_in_process(
            instance=instance, run_config=pgvector_resource_config("OTHER_DSN"), raise_on_error=False
        )
        assert not untagged.success
        [failure] = [e for e in untagged.all_events if e.event_type_value == "RESOURCE_INIT_FAILURE"]
        assert str(failure.event_specific_data.error).startswith(
            "dagster._core.definitions.events.Failure: INVALID_PARAMS: The run's pgvector_pipeline/database tag is 'PGVECTOR_DSN', but its DSN comes from 'OTHER_DSN'. "
        )
        assert query(store_db, "SELECT count(*) FROM langchain_pg_embedding")[0][0] == 7

        tagged = truncate_job.execute_in_process(
            instance=instance, run_config=pgvector_resource_config("OTHER_DSN"), tags=database_tags("OTHER_DSN")
        )
        assert tagged.success
        assert query(store_db, "SELECT count(*) FROM langchain_pg_embedding")[0][0] == 0


# A NUL is refused wherever text comes in: PostgreSQL refuses it in text, libpq and pglast read C strings (a row
# filter would end at it, silently), the OS refuses it in paths.
NUL_IN_RUN_CONFIG = {
    "backup collections": (REQUEST_BACKUP_JOB, lambda ts: request_run_config(None, collections=["sample\x00"])),
    "backup row filter": (
        REQUEST_BACKUP_JOB,
        # Cut at the NUL, this filter would keep every row the full one drops.
        lambda ts: request_run_config(
            None, tables={"langchain_pg_collection": "", "langchain_pg_embedding": "document <> 'x'\x00 AND false"}
        ),
    ),
    "restore rename": (
        RESTORE_JOB,
        lambda ts: restore_run_config(
            GLOBAL_TASK_KEY, ts, collections=["sample_collection_0"], rename={"sample_collection_0": "new\x00name"}
        ),
    ),
}


@pytest.mark.parametrize("case", NUL_IN_RUN_CONFIG)
def test_a_nul_in_run_config_is_refused_before_anything_runs(case, store_db, backup_root, monkeypatch):
    execute(store_db, lambda cur: insert_sample_store(cur, "public", collections=2, embeddings_per_collection=5))
    timestamp = back_up_database(store_db, "public", LocalBackupStore(backup_root), GLOBAL_TASK_KEY, None).timestamp
    before = query(store_db, "SELECT name FROM langchain_pg_collection ORDER BY 1")
    monkeypatch.setenv(DSN_ENV, store_db)
    job, run_config = NUL_IN_RUN_CONFIG[case]
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def(job).execute_in_process(
            instance=instance,
            run_config={**run_config(timestamp), **resources_config()},
            tags=database_tags(),
            raise_on_error=False,
        )
    assert not result.success
    [failure] = [e.step_failure_data.user_failure_data for e in result.all_events if e.is_step_failure]
    assert failure.metadata["error_type"].value == "INVALID_PARAMS" and failure.metadata["can_retry"].value is False
    assert "holds a NUL character" in failure.description, failure.description
    assert [s.timestamp for s in list_backup_sets(backup_root)] == [timestamp]
    assert query(store_db, "SELECT name FROM langchain_pg_collection ORDER BY 1") == before


def test_a_nul_in_resource_config_is_refused_at_start(store_db, backup_root, monkeypatch):
    monkeypatch.setenv(DSN_ENV, store_db)
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def(TRUNCATE_JOB).execute_in_process(
            instance=instance,
            run_config={"resources": {"pgvector": {"config": {"dsn": {"env": DSN_ENV}, "db_schema": "pub\x00lic"}}}},
            tags=database_tags(),
            raise_on_error=False,
        )
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "RESOURCE_INIT_FAILURE"]
    assert "INVALID_PARAMS: The pgvector resource's config holds a NUL character" in str(
        failure.event_specific_data.error
    )


def test_a_nul_cuts_no_row_filter_short():
    with pytest.raises(InvalidParams, match="holds a NUL character"):
        checked_row_filter("n <> 1\x00 AND n <> 2", "t", ["n"])


@pytest.mark.parametrize(
    "condition",
    ["NOT " * 500 + "n = 1", "n" + "::int4" * 600 + " = 1", "(" * 300 + "NOT " * 300 + "n" + ")" * 300],
)
def test_a_deeply_nested_row_filter_is_refused_plainly(condition):
    with pytest.raises(InvalidParams, match=r"it nests more than 100 levels deep"):
        checked_row_filter(condition, "t", ["n"])


def test_a_long_flat_row_filter_is_taken():
    condition = " OR ".join(f"n = {i}" for i in range(300))
    printed = checked_row_filter(condition, "t", ["n"])
    assert len(condition) < 4000 and printed.startswith(
        "((n OPERATOR(pg_catalog.=) 0) OR (n OPERATOR(pg_catalog.=) 1) OR"
    )


@pytest.mark.parametrize(
    "launch",
    [
        lambda client: client.launch_backup(collections=["a\x00b"]),
        lambda client: client.launch_backup(tables={"docs": "lang = 'de'\x00 OR true"}),
        lambda client: client.launch_restore(None, TS, collections=["a"], rename={"a": "b\x00"}),
    ],
)
def test_the_client_refuses_a_nul_before_it_sends_anything(launch):
    from pgvector_pipeline.entry_points.client import VectorBackupClient

    # Nothing listens on port 1: a launch that got as far as sending would fail as unreachable.
    with pytest.raises(InvalidParams, match="holds a NUL character"):
        launch(VectorBackupClient("127.0.0.1", 1))
