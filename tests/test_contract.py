"""The names other programs launch runs with (pgvector_pipeline.contract) are the code location's names."""

import subprocess
import sys

import dagster as dg

from pgvector_pipeline import contract
from pgvector_pipeline.definitions import defs
from pgvector_pipeline.partitions import backup_partitions


def test_every_job_and_op_name_of_the_contract_exists():
    jobs = {
        contract.BACKUP_JOB: contract.BACKUP_OP,
        contract.REQUEST_BACKUP_JOB: contract.REQUEST_BACKUP_OP,
        contract.RESTORE_JOB: contract.RESTORE_OP,
        contract.TRUNCATE_JOB: contract.TRUNCATE_OP,
        contract.CHECK_JOB: contract.CHECK_OP,
    }
    for job_name, op_name in jobs.items():
        job = defs.resolve_job_def(job_name)
        assert job.name == job_name and job.graph.has_node_named(op_name)
    assert defs.resolve_job_def(contract.INVENTORY_JOB).name == contract.INVENTORY_JOB
    assert defs.resolve_assets_def(dg.AssetKey(contract.INVENTORY_ASSET)) is not None
    assert backup_partitions.name == contract.SET_PARTITIONS


def test_python_names_of_jobs_equal_their_dagster_names():
    from pgvector_pipeline.jobs import backup, check, inventory, request_backup, restore, truncate

    for module in (backup, check, inventory, request_backup, restore, truncate):
        [name] = [n for n, value in vars(module).items() if n.endswith("_job") and hasattr(value, "name")]
        assert getattr(module, name).name == name


def test_partition_key_and_run_configs_match_dagster():
    assert contract.partition_key("task_7", "20261124_101500") == "task_7/20261124_101500"
    # Dagster takes '/' in a dynamic partition's key, and joins nothing: the key is the set's name as it is.
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(backup_partitions.name, ["task_7/20261124_101500"])
        assert instance.get_dynamic_partitions(backup_partitions.name) == ["task_7/20261124_101500"]
    assert set(contract.backup_run_config()["ops"]) == {contract.BACKUP_OP}
    assert contract.request_run_config("task_7")["ops"][contract.REQUEST_BACKUP_OP]["config"]["task_id"] == "task_7"


def test_the_client_does_not_load_the_code_location():
    code = (
        "import sys, pgvector_pipeline.entry_points.client; "
        "loaded = [m for m in ('pandas', 'pgvector_pipeline.definitions', 'pgvector_pipeline.assets.backup', 'psycopg2') if m in sys.modules]; "
        "print(loaded)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_every_job_that_uses_the_database_carries_the_database_tag():
    for name in (
        contract.BACKUP_JOB,
        contract.REQUEST_BACKUP_JOB,
        contract.RESTORE_JOB,
        contract.TRUNCATE_JOB,
        contract.CHECK_JOB,
    ):
        job = defs.resolve_job_def(name)
        assert "pgvector" in job.required_resource_keys
        assert job.tags[contract.DATABASE_TAG] == "PGVECTOR_DSN"


def test_run_configs_of_every_job_pass_dagster_validation(monkeypatch):
    monkeypatch.setenv("OTHER_DSN", "dbname=other")
    configs = {
        contract.BACKUP_JOB: contract.backup_run_config(True, True),
        contract.REQUEST_BACKUP_JOB: contract.request_run_config("task_7", True, True),
        contract.RESTORE_JOB: contract.restore_run_config(
            "task_7",
            "20261124_101500",
            tables=["langchain_pg_embedding"],
            flags=contract.RestoreFlags(truncate_before_restore=True, fill_extra_columns=True),
        ),
        contract.TRUNCATE_JOB: contract.truncate_run_config(["langchain_pg_collection", "langchain_pg_embedding"]),
        contract.RETENTION_JOB: contract.retention_run_config(keep_newest=3, max_age_days=30, dry_run=False),
    }
    for name, config in configs.items():
        job = defs.resolve_job_def(name)
        if "pgvector" in job.required_resource_keys:
            config = {**config, **contract.pgvector_resource_config("OTHER_DSN", "rag")}
        # validate_run_config raises on any key Dagster does not accept; the values must arrive unchanged.
        [(op, given)] = config["ops"].items()
        processed = dg.validate_run_config(job, config)["ops"][op]["config"]
        assert {k: processed[k] for k in given["config"]} == given["config"]


def test_the_restore_switches_have_one_home():
    import dataclasses

    from pgvector_pipeline.entry_points.cli import build_parser
    from pgvector_pipeline.jobs.restore import RestoreConfig

    switches = [field.name for field in dataclasses.fields(contract.RestoreFlags)]
    assert list(contract.RESTORE_FLAG_HELP) == switches
    fields = RestoreConfig.model_fields
    for name, (_option, description) in contract.RESTORE_FLAG_HELP.items():
        assert (fields[name].default, fields[name].description) == (False, description)
    every_switch = build_parser().parse_args(
        ["restore", "--timestamp", "20261124_101500", *(option for option, _ in contract.RESTORE_FLAG_HELP.values())]
    )
    assert RestoreConfig(timestamp="x", **{name: True for name in switches}).flags() == contract.RestoreFlags(
        **{name: getattr(every_switch, name) for name in switches}
    )
