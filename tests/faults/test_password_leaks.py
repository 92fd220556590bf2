"""Passwords never reach a message, a log, an event, a manifest or metadata, even in malformed DSNs."""

import pathlib

import dagster as dg
import psycopg2.extensions
import pytest

from pgvector_pipeline.errors import InvalidParams
from pgvector_pipeline.partitions import register_backup_partition
from pgvector_pipeline.postgres.connection import connect, redact_dsn
from pgvector_pipeline.store.layout import GLOBAL_TASK_KEY
from tests.helpers import DSN_ENV, recent_timestamp, run_backup_job

PASSWORD = "S3cretPw"
MALFORMED_DSNS = [
    f"postgresql://writer:{PASSWORD}%zz@127.0.0.1/vectors",  # libpq quotes the bad percent token
    f"host=127.0.0.1 user=writer password{PASSWORD} dbname=vectors",  # libpq quotes the token missing '='
    f"host=127.0.0.1 password='{PASSWORD} dbname=vectors",  # unterminated quote
    f"postgresql://writer:{PASSWORD}@127.0.0.1:1/vectors?connect_timeout=2",  # valid, but nothing listens
    f"postgresql://writer:{PASSWORD}@127.0.0.1/vectors?sslmode=sometimes",  # bad option value
    f"postgresql://writer:{PASSWORD}@127.0.0.1/vectors?no_such_option={PASSWORD}",
    # A quote in the password ended libpq's quoted token early: what followed it was shown.
    f'postgresql://writer:ab"{PASSWORD}%zz@127.0.0.1/vectors',
    f"host=127.0.0.1 user=writer password='ab\"{PASSWORD}' sslmode=sometimes dbname=vectors",
]


def files_holding(directory: pathlib.Path, secret: str) -> list[str]:
    return [str(p) for p in directory.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


@pytest.mark.parametrize("dsn", MALFORMED_DSNS)
def test_connection_errors_never_carry_the_password(dsn):
    with pytest.raises(Exception) as failure:
        connect(dsn)
    chain, error = [], failure.value
    while error is not None:
        chain.append(str(error))
        error = error.__cause__ or error.__context__
    assert all(PASSWORD not in text for text in chain), chain
    assert "connection string" in str(failure.value) or "Cannot connect" in str(failure.value)


@pytest.mark.parametrize("dsn", [*MALFORMED_DSNS[:3], MALFORMED_DSNS[6]])
def test_malformed_dsn_is_refused_as_invalid_params(dsn):
    with pytest.raises(InvalidParams, match="The connection string cannot be parsed"):
        connect(dsn)


@pytest.mark.parametrize("dsn", MALFORMED_DSNS)
def test_no_output_of_a_failed_backup_run_holds_the_password(dsn, backup_root, tmp_path, monkeypatch):
    monkeypatch.setenv(DSN_ENV, dsn)
    monkeypatch.setenv("PGVECTOR_RETRY_DELAY_S", "0")
    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        key = register_backup_partition(instance, GLOBAL_TASK_KEY, recent_timestamp())
        result = run_backup_job(instance, backup_root, {"env": DSN_ENV}, partition_key=key)
        assert not result.success
        failure = result.failure_data_for_node("vector_store_backup")
        assert failure.user_failure_data.metadata["error_type"].value in ("INVALID_PARAMS", "DATABASE_ERROR")
        records = instance.get_records_for_run(result.run_id).records
        serialized = "".join(dg.serialize_value(record.event_log_entry) for record in records)
        assert PASSWORD not in serialized
    assert (backup_root / "vector_bak" / "vector_backup_log.txt").read_text().count("FAILED") >= 1
    assert files_holding(home, PASSWORD) == []
    assert files_holding(backup_root, PASSWORD) == []


def test_literal_dsn_with_password_in_run_config_is_refused(store_db, backup_root):
    literal = store_db.replace("postgres:@", f"postgres:{PASSWORD}@")
    with dg.instance_for_test() as instance:
        key = register_backup_partition(instance, GLOBAL_TASK_KEY, recent_timestamp())
        result = run_backup_job(instance, backup_root, literal, partition_key=key)
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "RESOURCE_INIT_FAILURE"]
    text = str(failure.event_specific_data.error)
    assert "holds a DSN with a password in plain text" in text and "{env: SOME_VAR}" in text
    assert not (backup_root / "vector_bak").exists()


def test_a_run_launched_over_graphql_leaks_the_password_nowhere(backup_root, tmp_path):

    from pgvector_pipeline.entry_points.client import VectorBackupClient
    from pgvector_pipeline.testing.webserver import running_webserver

    work = tmp_path / "work"
    work.mkdir()
    env = {"PGVECTOR_DSN": MALFORMED_DSNS[0], "PGVECTOR_BACKUP_ROOT": str(backup_root)}
    with running_webserver(work, env) as port:
        client = VectorBackupClient("127.0.0.1", port)
        launched = client.launch_backup()
        assert client.wait_for_run(launched.run_id, timeout_s=180).status == "FAILURE"
    compute_logs = [p for p in (work / "dagster_home").rglob("*") if p.suffix in (".err", ".out", ".complete")]
    assert compute_logs, "the run in its own process should have left compute logs"
    assert (
        "The connection string cannot be parsed" in (backup_root / "vector_bak" / "vector_backup_log.txt").read_text()
    )
    assert files_holding(work, PASSWORD) == []
    assert files_holding(backup_root, PASSWORD) == []


SSL_SECRET = "SslKeyPassphrase9"


def secret_dsns(dsn: str) -> list[str]:
    """`dsn` with an sslpassword (never needed on a Unix socket, so it connects) in the URI and key=value forms."""
    params = psycopg2.extensions.parse_dsn(dsn)
    return [
        f"{dsn}&sslpassword={SSL_SECRET}",
        psycopg2.extensions.make_dsn(**params, sslpassword=SSL_SECRET),
    ]


@pytest.mark.parametrize("form", ["uri", "key_value"])
def test_sslpassword_is_redacted_like_the_password(form, store_db, backup_root, monkeypatch):
    dsn = secret_dsns(store_db)[0 if form == "uri" else 1]
    assert redact_dsn(dsn).count("***") == 1 and SSL_SECRET not in redact_dsn(dsn)
    monkeypatch.setenv(DSN_ENV, dsn)
    with dg.instance_for_test() as instance:
        key = register_backup_partition(instance, GLOBAL_TASK_KEY, recent_timestamp())
        result = run_backup_job(instance, backup_root, {"env": DSN_ENV}, partition_key=key)
        assert result.success
        records = instance.get_records_for_run(result.run_id).records
        serialized = "".join(dg.serialize_value(record.event_log_entry) for record in records)
    assert SSL_SECRET not in serialized
    assert "sslpassword=***" in serialized or "sslpassword=%2A%2A%2A" in serialized
    assert files_holding(backup_root, SSL_SECRET) == []


S3_SECRET = "NotTheS3Secret7"


def test_a_backup_run_refused_by_s3_leaks_the_secret_key_nowhere(store_db, s3_env, s3_bucket, tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3_SECRET)
    monkeypatch.setenv(DSN_ENV, store_db)
    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        key = register_backup_partition(instance, GLOBAL_TASK_KEY, recent_timestamp())
        result = run_backup_job(instance, f"s3://{s3_bucket}/backups", partition_key=key)
        assert not result.success
        failure = result.failure_data_for_node("vector_store_backup").user_failure_data
        assert failure.metadata["error_type"].value == "INVALID_PARAMS"
        assert "S3 refused the request" in failure.description and "AWS_SECRET_ACCESS_KEY" in failure.description
        records = instance.get_records_for_run(result.run_id).records
        serialized = "".join(dg.serialize_value(record.event_log_entry) for record in records)
        assert S3_SECRET not in serialized and s3_env["AWS_SECRET_ACCESS_KEY"] not in serialized
    assert files_holding(home, S3_SECRET) == []
