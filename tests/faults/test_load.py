"""Many runs back to back through Dagster on one small store: all succeed, nothing leaks."""

import os

import dagster as dg

from pgvector_pipeline.contract import BACKUP_JOB, RESTORE_JOB, backup_run_config
from pgvector_pipeline.definitions import defs
from pgvector_pipeline.partitions import register_backup_partition
from pgvector_pipeline.store.layout import GLOBAL_TASK_KEY
from pgvector_pipeline.testing.db import execute, query
from pgvector_pipeline.testing.langchain_tables import insert_sample_store
from tests.helpers import DSN_ENV, recent_timestamps

RUNS = 20


def open_file_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def pipeline_connections(dsn: str) -> int:
    return query(
        dsn,
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgvector_pipeline' AND pid <> pg_backend_pid()",
    )[0][0]


def test_twenty_backups_and_twenty_restores_leak_nothing(store_db, backup_root, monkeypatch):
    execute(
        store_db,
        lambda cur: insert_sample_store(cur, "public", collections=2, embeddings_per_collection=100, dimension=8),
    )
    monkeypatch.setenv(DSN_ENV, store_db)
    resources = {
        "resources": {
            "pgvector": {"config": {"dsn": {"env": DSN_ENV}}},
        }
    }
    before = query(store_db, "SELECT count(*), md5(string_agg(t::text, ',' ORDER BY id)) FROM langchain_pg_embedding t")
    with dg.instance_for_test() as instance:
        backup_job = defs.resolve_job_def(BACKUP_JOB)
        restore_job = defs.resolve_job_def(RESTORE_JOB)
        # One warm-up run of each, so lazily opened Dagster files do not count as leaks.
        keys = [register_backup_partition(instance, GLOBAL_TASK_KEY, ts) for ts in recent_timestamps(RUNS + 1)]
        assert backup_job.execute_in_process(
            instance=instance, partition_key=keys[0], run_config={**backup_run_config(), **resources}
        ).success
        fds, connections = open_file_descriptors(), pipeline_connections(store_db)

        for key in keys[1:]:
            result = backup_job.execute_in_process(
                instance=instance, partition_key=key, run_config={**backup_run_config(), **resources}
            )
            assert result.success
        for key in keys[1:]:
            config = {"ops": {"restore_vector_backup": {"config": {"truncate_before_restore": True}}}, **resources}
            assert restore_job.execute_in_process(instance=instance, partition_key=key, run_config=config).success

        # A leak leaves more; fewer is a descriptor of an earlier test in this worker process closed meanwhile.
        assert open_file_descriptors() <= fds
        assert pipeline_connections(store_db) == connections == 0
    assert len(list((backup_root / "vector_bak").glob("vector_backup_*.json"))) == RUNS + 1
    assert (
        query(store_db, "SELECT count(*), md5(string_agg(t::text, ',' ORDER BY id)) FROM langchain_pg_embedding t")
        == before
    )
