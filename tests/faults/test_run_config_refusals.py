"""Run config cannot move the backup root or name a database the run queue does not know; refusals carry
their error_type all the way to the client."""

import dagster as dg
import pytest

from pgvector_pipeline.contract import (
    DATABASE_TAG,
    RESTORE_JOB,
    database_tags,
    restore_run_config,
)
from pgvector_pipeline.definitions import defs
from pgvector_pipeline.partitions import register_backup_partition
from pgvector_pipeline.store.layout import GLOBAL_TASK_KEY
from tests.helpers import DSN_ENV, recent_timestamp, run_backup_job


def refusal(result) -> str:
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "RESOURCE_INIT_FAILURE"]
    return str(failure.event_specific_data.error)


@pytest.mark.parametrize("setting", ["root", "s3_endpoint_url"])
def test_a_run_that_moves_the_backup_root_is_refused(setting, store_db, backup_root, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # An S3 endpoint of the launcher's choosing would receive the backups (or serve forged ones to restore).
    value = str(elsewhere) if setting == "root" else "http://127.0.0.1:1"
    monkeypatch.setenv(DSN_ENV, store_db)
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def(RESTORE_JOB).execute_in_process(
            instance=instance,
            run_config={
                **restore_run_config(timestamp="20261125_140000"),
                "resources": {"backup_store": {"config": {setting: value}}},
            },
            tags=database_tags(),
            raise_on_error=False,
        )
    text = refusal(result)
    assert f"INVALID_PARAMS: The run config sets the backup_store {setting}" in text and "PGVECTOR_BACKUP_ROOT" in text
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize("tag", [DSN_ENV, "ANY_NAME"])
def test_a_literal_dsn_without_password_is_refused_whatever_the_tag(tag, store_db, backup_root):
    with dg.instance_for_test() as instance:
        key = register_backup_partition(instance, GLOBAL_TASK_KEY, recent_timestamp())
        result = run_backup_job(instance, backup_root, store_db, partition_key=key, tags={DATABASE_TAG: tag})
    text = refusal(result)
    assert "INVALID_PARAMS: The run config gives the pgvector DSN as a literal string" in text
    assert not (backup_root / "vector_bak").exists()


def test_a_refused_run_reaches_the_client_with_its_error_type(store_db, backup_root, tmp_path):
    from pgvector_pipeline.client import VectorBackupClient
    from pgvector_pipeline.testing.webserver import running_webserver

    env = {"PGVECTOR_DSN": store_db, "PGVECTOR_BACKUP_ROOT": str(backup_root)}
    with running_webserver(tmp_path, env) as port:
        client = VectorBackupClient("127.0.0.1", port)
        run_config = {
            **restore_run_config(timestamp="20261125_140000"),
            "resources": {"backup_store": {"config": {"root": "/"}}},
        }
        run_id = client.launch_job(RESTORE_JOB, run_config, database_tags())
        info = client.wait_for_run(run_id, timeout_s=180)
    assert info.status == "FAILURE", info
    assert (info.error_type, info.can_retry) == ("INVALID_PARAMS", False)
    assert "sets the backup_store root" in (info.error_message or "")
