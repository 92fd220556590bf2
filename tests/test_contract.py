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


def _op_config_class(job_name: str, op_name: str) -> type:
    """The config class the op's function takes, as Dagster builds the op's config from it."""
    import typing

    node = defs.resolve_job_def(job_name).graph.node_named(op_name)
    function = node.definition.compute_fn.decorated_fn
    hints = typing.get_type_hints(function).values()
    [config] = [t for t in hints if isinstance(t, type) and issubclass(t, dg.Config) and t.__name__.endswith("Config")]
    return config


def _examples():
    """One request of each operation with every option set, and the command line that asks for it."""
    from pgvector_pipeline.run_requests import (
        BackupRequest,
        CopyRequest,
        DrillRequest,
        ListRequest,
        RestoreRequest,
        RetentionRequest,
        TableSelection,
        TruncateRequest,
    )

    tables = (TableSelection("docs", "rag", "id > 1"), TableSelection("other"))
    backup = BackupRequest("task_7", True, True, "gzip", 3, "binary", ("a", "b"), tables, note="why")
    backup_argv = ["backup", "--task-id", "task_7", "--truncate", "--create-task-dir", "--compression", "gzip"]
    backup_argv += ["--compression-level", "3", "--format", "binary", "--collections", "a", "b", "--table", "rag.docs"]
    backup_argv += ["--table", "other", "--where", "rag.docs=id > 1", "--note", "why"]
    restore = RestoreRequest(
        task_id="task_7",
        timestamp="latest",
        tables=("langchain_pg_embedding",),
        flags=contract.RestoreFlags(truncate_before_restore=True, in_place=True),
        collections=("a",),
        rename={"b": "c"},
        migration=contract.Migration(contract.MIGRATE_TO_PGVECTOR_STORE, "store", ("page:integer",)),
        note="why",
    )
    restore_argv = ["restore", "--task-id", "task_7", "--timestamp", "latest", "--tables", "langchain_pg_embedding"]
    restore_argv += ["--truncate", "--in-place", "--collections", "a", "--rename", "b=c", "--migrate-to"]
    restore_argv += ["pgvector_store", "--store-table", "store", "--metadata-column", "page:integer", "--note", "why"]
    return [
        (backup, backup_argv, {}),
        (restore, restore_argv, {}),
        (TruncateRequest(("langchain_pg_collection",)), ["truncate", "--tables", "langchain_pg_collection"], {}),
        (
            CopyRequest(task_id="task_7", timestamp="20261124_101500", direction="from_other"),
            ["copy", "--task-id", "task_7", "--timestamp", "20261124_101500", "--back"],
            {},
        ),
        (
            DrillRequest("task_7", "latest", True),
            ["verify", "--task-id", "task_7", "--timestamp", "latest"],
            {"compare_live": True},
        ),
        (
            RetentionRequest(3, 30.0, False),
            ["retention", "--keep-newest", "3", "--max-age-days", "30", "--delete"],
            {},
        ),
        (ListRequest(True, "task_7", True), ["list", "--global-only", "--task-id", "task_7", "--refresh"], {}),
    ]


def test_each_request_is_one_declaration_for_its_config_class_command_line_and_run_config(monkeypatch):
    """A request made from the command line equals the one its run config makes in the job's config class, and that
    run config passes Dagster's validation with every value as it was sent: the three spellings cannot drift."""
    from pgvector_pipeline.entry_points.cli import build_parser
    from pgvector_pipeline.request_fields import from_args, in_config

    monkeypatch.setenv("OTHER_DSN", "dbname=other")
    for request, argv, given in _examples():
        assert from_args(type(request), build_parser().parse_args(argv), **given) == request, argv[0]
        if type(request) not in contract.REQUEST_JOBS:
            continue  # a listing launches no job
        job_name, run_config = contract.job_config(request)
        [(op, sent)] = run_config["ops"].items()
        config_class = _op_config_class(job_name, op)
        declared = [spelled for spelled in in_config(type(request))]
        assert list(config_class.model_fields) == [spelled.name for spelled in declared]
        assert [f.description for f in config_class.model_fields.values()] == [s.spelling.help for s in declared]
        assert config_class(**sent["config"]).request() == request
        if job_name in contract.DATABASE_JOBS:
            run_config = {**run_config, **contract.pgvector_resource_config("OTHER_DSN", "rag")}
        processed = dg.validate_run_config(defs.resolve_job_def(job_name), run_config)["ops"][op]["config"]
        assert _as_sent(processed, sent["config"]) == sent["config"]


def _as_sent(processed, sent):
    """What Dagster made of a run config, cut to the keys sent (it adds the defaults, records' too)."""
    if isinstance(sent, dict):
        return {key: _as_sent(processed[key], value) for key, value in sent.items()}
    if isinstance(sent, list):
        return [_as_sent(made, value) for made, value in zip(processed, sent, strict=True)]
    return processed


def test_the_backup_assets_take_the_backup_request_without_its_task():
    """vector_backup_job's config is the backup request's but for task_id: the set (and its task) is the partition."""
    from pgvector_pipeline.run_requests import BackupRequest, TableSelection

    request = BackupRequest(compression="none", tables=(TableSelection("docs", where="id > 1"),))
    config_class = _op_config_class(contract.BACKUP_JOB, contract.BACKUP_OP)
    assert "task_id" not in config_class.model_fields
    sent = contract.set_backup_config(request)["ops"][contract.BACKUP_OP]["config"]
    assert sent == {
        "truncate_after_backup": False,
        "create_task_dir": False,
        "compression": "none",
        "tables": [{"name": "docs", "where": "id > 1"}],
    }
    assert config_class(**sent).request() == request
