"""Run config cannot move what the deployment decides (the backup root and how sets are written, lock and session
bounds: Dagster's own config validation rejects them, and the Launchpad does not offer them) or name a database the
run queue does not know; refusals carry their error_type all the way to the client."""

import time
import uuid

import dagster as dg
import pytest

from pgvector_pipeline.contract import (
    BACKUP_JOB,
    COPY_JOB,
    DATABASE_TAG,
    RESTORE_JOB,
    RETENTION_JOB,
    TRUNCATE_JOB,
    TRUNCATE_OP,
    RestoreFlags,
    copy_run_config,
    database_tags,
    restore_run_config,
    retention_run_config,
)
from pgvector_pipeline.definitions import defs
from pgvector_pipeline.operations.backup import back_up_database
from pgvector_pipeline.partitions import register_backup_partition
from pgvector_pipeline.resources import BackupStoreResource
from pgvector_pipeline.store.layout import GLOBAL_TASK_KEY, hold_name
from pgvector_pipeline.store.roots import BACKUP_ROOT_ENV
from pgvector_pipeline.testing.db import app_connection, execute, query
from pgvector_pipeline.testing.langchain_tables import fill_sample_store
from tests.helpers import DSN_ENV, recent_timestamp, resources_config, run_backup_job


def output_metadata(result) -> dict:
    [output] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    return {name: value.value for name, value in output.event_specific_data.metadata.items()}


def refusal(result) -> str:
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "RESOURCE_INIT_FAILURE"]
    return str(failure.event_specific_data.error)


# What a deployment decides and a launcher may not move, by resource, with a value of the type each field had when
# it was run config: where backups live, how they are written, how long locks wait, how many sessions a run opens.
DEPLOYMENT_SETTINGS = {
    "backup_store": {
        "root": "/",
        "root_env": "HOME",
        "s3_endpoint_url": "http://127.0.0.1:1",
        "s3_region": "elsewhere-1",
        "s3_part_size_mb": 5120,
        "s3_sse": "AES256",
        "s3_sse_kms_key_id": "someone-elses-key",
        "s3_claim_stale_after_s": 0.001,
        "file_mode": "0640",
        "timestamp_window_s": 2_000_000_000,
    },
    "other_backup_store": {"root": "/", "s3_endpoint_url": "http://127.0.0.1:1"},
    "pgvector": {"lock_timeout_s": 3600, "load_sessions": 16, "export_sessions": 16, "maintenance_work_mem": "64GB"},
}
# What a launcher chooses per run besides the op's own config: the variable holding the DSN (with the database tag
# that queues the run) and the schema.
RUN_SETTINGS = {"backup_store": set(), "other_backup_store": set(), "pgvector": {"dsn", "db_schema"}}
JOB_OF_RESOURCE = {"backup_store": RETENTION_JOB, "other_backup_store": COPY_JOB, "pgvector": TRUNCATE_JOB}


def fields_of(config_type) -> set[str]:
    return set(getattr(config_type, "fields", None) or {})


def op_field_names(config_type) -> set[str]:
    """Every field name anywhere under a config type (the ops' configs, nested ones included)."""
    names: set[str] = set()
    for name, field in (getattr(config_type, "fields", None) or {}).items():
        names |= {name} | op_field_names(field.config_type)
    inner = getattr(config_type, "inner_type", None)
    return names | (op_field_names(inner) if inner is not None else set())


@pytest.mark.parametrize("job", [job.name for job in defs.resolve_all_job_defs()])
def test_no_job_offers_a_deployment_setting_as_run_config(job):
    schema = defs.resolve_job_def(job).run_config_schema.config_type.fields
    resources = schema["resources"].config_type.fields
    offered = {key: fields_of(resources[key].config_type.fields["config"].config_type) for key in RUN_SETTINGS}
    assert offered == RUN_SETTINGS
    deployment = {name for settings in DEPLOYMENT_SETTINGS.values() for name in settings}
    assert op_field_names(schema["ops"].config_type) & deployment == set()


@pytest.mark.parametrize(
    ("resource", "setting"), [(key, name) for key, settings in DEPLOYMENT_SETTINGS.items() for name in settings]
)
def test_dagster_rejects_a_run_config_that_sets_a_deployment_setting(resource, setting):
    job = defs.resolve_job_def(JOB_OF_RESOURCE[resource])
    run_config = {"resources": {resource: {"config": {setting: DEPLOYMENT_SETTINGS[resource][setting]}}}}
    if resource == "other_backup_store":
        run_config.update(copy_run_config(None, "20261125_140000"))
    with pytest.raises(dg.DagsterInvalidConfigError, match=f'unexpected config entry "{setting}"'):
        dg.validate_run_config(job, run_config)


def test_a_run_config_cannot_make_retention_delete_a_set_under_a_live_hold(
    instance, store_db, s3_env, s3_bucket, monkeypatch
):
    monkeypatch.setenv(BACKUP_ROOT_ENV, f"s3://{s3_bucket}/backups")
    store = BackupStoreResource().store()
    older, newer = (back_up_database(store_db, "public", store, GLOBAL_TASK_KEY, None) for _ in range(2))
    listed = store.locate(timestamp=older.timestamp)
    with store.read_set(listed, list(listed.table_files)):  # a restore reading it: its hold is refreshed
        with pytest.raises(dg.DagsterInvalidConfigError, match='unexpected config entry "s3_claim_stale_after_s"'):
            defs.resolve_job_def(RETENTION_JOB).execute_in_process(
                instance=instance,
                run_config={
                    **retention_run_config(keep_newest=1, dry_run=False),
                    "resources": {"backup_store": {"config": {"s3_claim_stale_after_s": 0.001}}},
                },
            )
        assert sorted(s.timestamp for s in store.list_sets()) == [older.timestamp, newer.timestamp]


def test_a_run_config_cannot_stamp_todays_data_with_another_time(instance, store_db, backup_root, monkeypatch):
    monkeypatch.setenv(DSN_ENV, store_db)
    key = register_backup_partition(instance, GLOBAL_TASK_KEY, "20200101_000000")
    with pytest.raises(dg.DagsterInvalidConfigError, match='unexpected config entry "timestamp_window_s"'):
        defs.resolve_job_def(BACKUP_JOB).execute_in_process(
            instance=instance,
            partition_key=key,
            run_config={
                "resources": {
                    **resources_config()["resources"],
                    "backup_store": {"config": {"timestamp_window_s": 2_000_000_000}},
                }
            },
        )
    assert list(backup_root.iterdir()) == []


def test_the_deployment_sets_when_a_dead_readers_hold_stops_keeping_a_set(
    instance, store_db, s3_env, s3_bucket, monkeypatch
):
    monkeypatch.setenv(BACKUP_ROOT_ENV, f"s3://{s3_bucket}/backups")
    store = BackupStoreResource().store()
    older, newer = (back_up_database(store_db, "public", store, GLOBAL_TASK_KEY, None) for _ in range(2))
    # A reader that died while it held the older set: its hold is never refreshed, nor removed.
    store.put(store.location_key(GLOBAL_TASK_KEY, hold_name(older.timestamp, uuid.uuid4().hex)), b"{}")

    def retention():
        return defs.resolve_job_def(RETENTION_JOB).execute_in_process(
            instance=instance, run_config=retention_run_config(keep_newest=1, dry_run=False), raise_on_error=False
        )

    kept = retention()  # 600 s by default: the hold is fresh, the set is in use
    assert kept.success and output_metadata(kept)["busy_sets_skipped"] == 1
    assert sorted(s.timestamp for s in store.list_sets()) == [older.timestamp, newer.timestamp]

    # Read once when the run starts, and refused then, naming the variable: a dead run's claim must not be taken
    # for a live one's (or the reverse) because of a slip in the environment.
    monkeypatch.setenv("PGVECTOR_S3_CLAIM_STALE_AFTER_S", "0.001")
    assert "INVALID_PARAMS: PGVECTOR_S3_CLAIM_STALE_AFTER_S is a number of seconds from 1 to 86400, not '0.001'." in (
        refusal(retention())
    )
    assert len(store.list_sets()) == 2

    monkeypatch.setenv("PGVECTOR_S3_CLAIM_STALE_AFTER_S", "2")
    time.sleep(3)
    assert retention().success
    assert [s.timestamp for s in store.list_sets()] == [newer.timestamp]


def test_the_deployment_bounds_lock_waits_in_the_environment(instance, store_db, monkeypatch):
    fill_sample_store(store_db, collections=1, embeddings_per_collection=20, dimension=8)
    monkeypatch.setenv(DSN_ENV, store_db)
    monkeypatch.setenv("PGVECTOR_LOCK_TIMEOUT_S", "1")
    app = app_connection(store_db, application_name="rag_app")
    try:
        with app.cursor() as cur:
            cur.execute("SELECT count(*) FROM langchain_pg_embedding")  # idle in its transaction: ACCESS SHARE
        started = time.monotonic()
        result = defs.resolve_job_def(TRUNCATE_JOB).execute_in_process(
            instance=instance, run_config=resources_config(), raise_on_error=False
        )
        waited = time.monotonic() - started
    finally:
        app.close()
    failure = result.failure_data_for_node(TRUNCATE_OP).user_failure_data
    assert "after waiting 1s (lock_timeout)" in failure.description and "rag_app" in failure.description
    assert waited < 8, waited  # the default bound is 10 s
    assert query(store_db, "SELECT count(*) FROM langchain_pg_embedding") == [(20,)]


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        ("PGVECTOR_LOCK_TIMEOUT_S", "0", "is a number of seconds above 0, at most 3600"),
        ("PGVECTOR_LOAD_SESSIONS", "17", "is a whole number from 1 to 16"),
        ("PGVECTOR_EXPORT_SESSIONS", "two", "is a whole number from 1 to 16"),
        ("PGVECTOR_MAINTENANCE_WORK_MEM", "64GB; DROP TABLE x", "is an amount of memory such as '512MB' or '2GB'"),
    ],
)
def test_a_bad_database_setting_is_refused_naming_its_variable(variable, value, words, instance, store_db, monkeypatch):
    monkeypatch.setenv(DSN_ENV, store_db)
    monkeypatch.setenv(variable, value)
    result = defs.resolve_job_def(RESTORE_JOB).execute_in_process(
        instance=instance,
        run_config={**restore_run_config(timestamp="20261125_140000"), **resources_config()},
        raise_on_error=False,
    )
    # Refused when the run starts, before anything connects.
    assert f"INVALID_PARAMS: {variable} {words}, not {value!r}." in refusal(result)
    assert not any(e.event_type_value == "STEP_START" for e in result.all_events)


@pytest.mark.parametrize(
    ("variables", "words"),
    [
        (
            {"PGVECTOR_S3_PART_SIZE_MB": "4"},
            "PGVECTOR_S3_PART_SIZE_MB is a whole number of MiB from 5 to 5120, not '4'.",
        ),
        (
            {"PGVECTOR_S3_SSE": "aes256"},
            "PGVECTOR_S3_SSE is AES256 or aws:kms (unset: the bucket's default), not 'aes256'.",
        ),
        (
            {"PGVECTOR_S3_SSE_KMS_KEY_ID": "key-1"},
            "PGVECTOR_S3_SSE_KMS_KEY_ID is set but PGVECTOR_S3_SSE is not aws:kms: set both, or neither.",
        ),
        (
            {"PGVECTOR_S3_CLAIM_STALE_AFTER_S": "inf"},
            "PGVECTOR_S3_CLAIM_STALE_AFTER_S is a number of seconds from 1 to 86400",
        ),
        (
            {"PGVECTOR_BACKUP_TIMESTAMP_WINDOW_S": "-1"},
            "PGVECTOR_BACKUP_TIMESTAMP_WINDOW_S is a whole number of seconds",
        ),
    ],
)
def test_a_bad_store_setting_refuses_every_run_naming_its_variable(
    variables, words, instance, backup_root, monkeypatch
):
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    result = defs.resolve_job_def(RETENTION_JOB).execute_in_process(
        instance=instance, run_config=retention_run_config(keep_newest=1, dry_run=False), raise_on_error=False
    )
    assert f"INVALID_PARAMS: {words}" in refusal(result)


def test_the_deployment_sets_index_memory_in_the_environment(instance, store_db, backup_root, monkeypatch):
    fill_sample_store(store_db, collections=1, embeddings_per_collection=20, dimension=8)
    execute(store_db, lambda cur: cur.execute("CREATE INDEX ix_document ON langchain_pg_embedding (document)"))
    monkeypatch.setenv(DSN_ENV, store_db)
    made = back_up_database(store_db, "public", BackupStoreResource().store(), GLOBAL_TASK_KEY, None)
    monkeypatch.setenv("PGVECTOR_MAINTENANCE_WORK_MEM", "96MB")
    in_place = RestoreFlags(truncate_before_restore=True, in_place=True)  # drops the index, builds it after the load
    result = defs.resolve_job_def(RESTORE_JOB).execute_in_process(
        instance=instance,
        run_config={**restore_run_config(timestamp=made.timestamp, flags=in_place), **resources_config()},
    )
    logged = [record.user_message for record in instance.all_logs(result.run_id)]
    assert any(line.startswith("Building index (maintenance_work_mem 96MB,") for line in logged), logged
    assert query(store_db, "SELECT count(*) FROM langchain_pg_embedding") == [(20,)]


@pytest.mark.parametrize("tag", [DSN_ENV, "ANY_NAME"])
def test_a_literal_dsn_without_password_is_refused_whatever_the_tag(tag, store_db, backup_root):
    with dg.instance_for_test() as instance:
        key = register_backup_partition(instance, GLOBAL_TASK_KEY, recent_timestamp())
        result = run_backup_job(instance, backup_root, store_db, partition_key=key, tags={DATABASE_TAG: tag})
    text = refusal(result)
    assert "INVALID_PARAMS: The run config gives the pgvector DSN as a literal string" in text
    assert not (backup_root / "vector_bak").exists()


def test_refusals_reach_the_client_with_their_error_type(store_db, backup_root, tmp_path):
    from pgvector_pipeline.entry_points.client import PipelineClientError, VectorBackupClient
    from pgvector_pipeline.testing.webserver import running_webserver

    env = {"PGVECTOR_DSN": store_db, "PGVECTOR_BACKUP_ROOT": str(backup_root)}
    with running_webserver(tmp_path, env) as port:
        client = VectorBackupClient("127.0.0.1", port)
        # A root in run config: Dagster refuses the launch itself (the Launchpad does not offer it either).
        with pytest.raises(PipelineClientError) as refused:
            client.launch_job(
                RESTORE_JOB,
                {
                    **restore_run_config(timestamp="20261125_140000"),
                    "resources": {"backup_store": {"config": {"root": "/"}}},
                },
                database_tags(),
            )
        assert (refused.value.error_type, refused.value.can_retry) == ("INVALID_PARAMS", False)
        assert any('unexpected config entry "root"' in reason for reason in refused.value.reasons)
        # A literal DSN: the run starts and is refused before it connects.
        run_config = {
            **restore_run_config(timestamp="20261125_140000"),
            "resources": {"pgvector": {"config": {"dsn": store_db}}},
        }
        run_id = client.launch_job(RESTORE_JOB, run_config, database_tags())
        info = client.wait_for_run(run_id, timeout_s=180)
    assert info.status == "FAILURE", info
    assert (info.error_type, info.can_retry) == ("INVALID_PARAMS", False)
    assert "gives the pgvector DSN as a literal string" in (info.error_message or "")
