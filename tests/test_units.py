"""Pure units, no server: DSN redaction, error classification, names and validators, manifest model."""

import json
import os

import psycopg2
import pytest

from pgvector_pipeline.errors import DatabaseError, DataError, ErrorType, InvalidParams
from pgvector_pipeline.postgres.connection import classify_connect_error, classify_error, redact_dsn, redact_secrets
from pgvector_pipeline.store.layout import parse_set_file_name, task_key, validate_timestamp
from pgvector_pipeline.store.manifest import Manifest

DSN = "postgresql://writer:p%40ss%25word@db.example:5432/vectors"


def test_redact_dsn_hides_the_password_and_keeps_the_rest():
    assert redact_dsn(DSN) == "user=writer password=*** dbname=vectors host=db.example port=5432"
    assert redact_dsn("host=h dbname=d") == "dbname=d host=h"
    assert redact_dsn("postgresql://u:pw%zz@h/d") == "<unparseable DSN>"


def test_redact_secrets_removes_raw_and_encoded_passwords():
    text = "failed for p@ss%word and p%40ss%25word"
    assert redact_secrets(text, DSN) == "failed for *** and ***"
    assert redact_secrets("nothing to hide", "host=h") == "nothing to hide"


@pytest.mark.parametrize(
    "message, error_type, can_retry",
    [
        ('connection to server at "h", port 5432 failed: Connection refused', ErrorType.DATABASE_ERROR, True),
        ("could not connect: timeout expired", ErrorType.DATABASE_ERROR, True),
        ("connection to server failed: FATAL:  the database system is starting up", ErrorType.DATABASE_ERROR, True),
        ("connection to server failed: FATAL:  sorry, too many clients already", ErrorType.DATABASE_ERROR, True),
        ('connection to server failed: FATAL:  database "x" does not exist', ErrorType.RESOURCE_NOT_FOUND, False),
        ('connection to server failed: FATAL:  role "x" does not exist', ErrorType.RESOURCE_NOT_FOUND, False),
        (
            'connection to server failed: FATAL:  password authentication failed for user "x"',
            ErrorType.DATABASE_ERROR,
            False,
        ),
        ("connection to server failed: FATAL:  no pg_hba.conf entry for host", ErrorType.DATABASE_ERROR, False),
    ],
)
def test_connect_errors_are_retryable_only_while_the_server_is_away(message, error_type, can_retry):
    error = classify_connect_error(psycopg2.OperationalError(message), "host=h password=pw")
    assert (error.error_type, error.can_retry) == (error_type, can_retry)
    assert "pw" not in error.message.replace("password", "")


def test_errors_during_work_are_classified():
    lost = classify_error(psycopg2.OperationalError("server closed the connection unexpectedly."), "exporting t")
    assert isinstance(lost, DatabaseError) and lost.can_retry and "unexpectedly. Nothing" in lost.message
    assert isinstance(classify_error(psycopg2.DataError("bad vector"), "restoring t"), DataError)
    assert isinstance(classify_error(psycopg2.IntegrityError("duplicate key"), "restoring t"), DataError)
    other = classify_error(psycopg2.ProgrammingError("syntax"), "restoring t")
    assert isinstance(other, DatabaseError) and not other.can_retry


def test_task_keys_and_timestamps():
    assert task_key(None) == task_key("") == "global"
    assert task_key("task_7") == "task_7"
    assert validate_timestamp("20240229_235959") == "20240229_235959"
    with pytest.raises(InvalidParams, match="not a real date"):
        validate_timestamp("20230229_000000")
    with pytest.raises(InvalidParams):
        task_key("a b")


@pytest.mark.parametrize(
    "name, parsed",
    [
        ("langchain_pg_embedding_20261124_101500.csv", ("20261124_101500", "table", "langchain_pg_embedding", False)),
        (
            "langchain_pg_collection_20261124_101500.csv.tmp",
            ("20261124_101500", "table", "langchain_pg_collection", True),
        ),
        ("vector_backup_20261124_101500.json", ("20261124_101500", "manifest", None, False)),
        ("vector_backup_20261124_101500.json.tmp", ("20261124_101500", "manifest", None, True)),
        ("vector_backup_20261124_101500.lock", ("20261124_101500", "lock", None, False)),
        ("vector_backup_log.txt", None),
        # A set is what its manifest says: any table whose name is a plain identifier has a file name.
        ("langchain_pg_other_20261124_101500.csv", ("20261124_101500", "table", "langchain_pg_other", False)),
        ("my_table_20261124_101500.csv.zst", ("20261124_101500", "table", "my_table", False)),
        ("my_table_20261124_101500.csv.gz.tmp", ("20261124_101500", "table", "my_table", True)),
        ("my_table_20261124_101500.pgcopy.zst", ("20261124_101500", "table", "my_table", False)),
        ("my_table_20261124_101500.pgcopy", ("20261124_101500", "table", "my_table", False)),
        ("my_table_20261124_101500.copy", None),
        ("my-table_20261124_101500.csv", None),
        ("my_table_20261124_101500.csv.bz2", None),
        ("my_table_20261124_101500.zst", None),
        ("langchain_pg_embedding_20261124_101500.csv\n", None),
        (".adopting_vector_backup_20261124_101500.json.42", None),
    ],
)
def test_set_file_names_are_parsed_whole(name, parsed):
    result = parse_set_file_name(name)
    assert (None if result is None else (result.timestamp, result.kind, result.table, result.tmp)) == parsed


def test_manifest_model_accepts_what_backups_write_and_rejects_odd_types():
    entry = {
        "file": "langchain_pg_embedding_20261124_101500.csv",
        "rows": 1,
        "bytes": 10,
        "sha256": "a" * 64,
        "columns": [{"name": "id", "type": "character varying", "not_null": True}],
        "create_table": "CREATE TABLE x ()",
    }
    document = {
        "format": "pgvector-pipeline-backup/1",
        "task_id": "global",
        "timestamp": "20261124_101500",
        "tables": {"langchain_pg_embedding": entry},
    }
    manifest = Manifest.model_validate_json(json.dumps(document))
    assert manifest.kind == "backup" and manifest.tables["langchain_pg_embedding"].rows == 1
    for change in ({"rows": True}, {"rows": 1.0}, {"bytes": "10"}, {"sha256": "A" * 64}):
        with pytest.raises(ValueError):
            Manifest.model_validate_json(
                json.dumps({**document, "tables": {"langchain_pg_embedding": {**entry, **change}}})
            )


@pytest.fixture
def utc_here(monkeypatch):
    """This process's local time zone is UTC while the test runs."""
    import time

    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_the_set_table_reads_well_for_people(utc_here):
    from datetime import UTC, datetime

    from pgvector_pipeline.entry_points.cli import set_table

    sets = [
        {
            "task_id": "task_7",
            "timestamp": "20261124_101500",
            "taken_at": "2026-11-24T10:15:00+01:00",
            "status": "complete",
            "size": "4.2 MB",
            "duration_s": 83.4,
            "format": "binary",
            "compression": "zstd",
            "source_database": "db.example:5432/vectors",
            "source_schema": "rag",
            "tables": "langchain_pg_collection (3 rows), langchain_pg_embedding (3,000 rows)",
            "collections": "all (3)",
        },
        {  # as a code server of an older version lists a set: no time zone, duration or source
            "task_id": "global",
            "timestamp": "20261124_081500",
            "status": "incomplete",
            "size": "",
            "compression": "",
            "tables": "langchain_pg_embedding (10 rows)",
            "collections": "1 chosen: 'a' (10)",
        },
    ]

    assert set_table(sets, datetime(2026, 11, 24, 12, 15, tzinfo=UTC)) == [
        "TASK    TAKEN                       AGE      STATUS      SIZE    TOOK     STORED AS    SOURCE               "
        "                 CONTENTS",
        "task_7  2026-11-24 10:15:00 +01:00  3 h ago  complete    4.2 MB  1.4 min  binary zstd  db.example:5432/vectors "
        "(schema rag)  langchain_pg_collection (3 rows), langchain_pg_embedding (3,000 rows)",
        "global  2026-11-24 08:15:00         4 h ago  incomplete                                                       "
        "               langchain_pg_embedding (10 rows); 1 chosen: 'a' (10)",
    ]


def test_the_index_a_statement_builds_is_named_from_the_statement():
    from pgvector_pipeline.postgres.progress import built_index_name

    assert built_index_name("CREATE INDEX ix_h ON public.t USING hnsw ((embedding::vector(8)) vector_cosine_ops)") == (
        "ix_h"
    )
    assert built_index_name("ALTER TABLE public.pgvector_new_1 ADD CONSTRAINT t_pkey PRIMARY KEY (id)") == "t_pkey"
    assert built_index_name('CREATE UNIQUE INDEX "Odd Name" ON t (a)') == "Odd Name"
    assert built_index_name("not sql at all") == "-"
    assert built_index_name("") == "-"


def test_loading_the_code_location_warns_of_nothing_a_user_cannot_act_on():
    import subprocess
    import sys

    # A fresh interpreter: the filter must come with the definitions, not with this test session.
    loaded = subprocess.run(
        [
            sys.executable,
            "-W",
            "error::Warning",
            "-c",
            "import pgvector_pipeline.definitions as d; d.defs.get_repository_def()",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert loaded.returncode == 0, loaded.stderr[-2000:]


def test_one_hint_is_the_config_key_in_dagster_and_the_flag_in_the_shell():
    from pgvector_pipeline.contract import MESSAGE_PARTS_METADATA, RestoreFlags
    from pgvector_pipeline.entry_points.cli import build_parser
    from pgvector_pipeline.errors import parts_from_json, said
    from pgvector_pipeline.failures import as_failure

    with pytest.raises(InvalidParams) as refused:
        RestoreFlags(in_place=True)
    error = refused.value
    failure = as_failure(error)
    shell = build_parser().parse_args(["restore", "--timestamp", "20261124_101500"]).spelling

    # The Dagster UI (and a Python caller) reads the run config's keys; the shell reads the flags, from the same error.
    assert (
        failure.description
        == error.message
        == (
            "in_place chooses how a truncating restore loads: it goes with truncate_before_restore. A restore that "
            "appends always loads into the live tables; leave in_place off."
        )
    )
    assert error.render(shell) == (
        "--in-place chooses how a truncating restore loads: it goes with --truncate. A restore that appends always "
        "loads into the live tables; leave --in-place off."
    )
    # A run's failure carries the parts to the client over GraphQL (as JSON), for the shell to spell them.
    carried = parts_from_json(json.loads(json.dumps(failure.metadata[MESSAGE_PARTS_METADATA].value)))
    assert carried == error.parts and said(carried, shell) == error.render(shell)
    assert error.fields == ("in_place", "truncate_before_restore")
    # What another webserver (or something else on its port) answers instead is not read as parts: the message is.
    for odd in ({"field": "x"}, [1], [{"field": "x", "form": "bogus", "value": "true"}], [{"field": "x"}]):
        assert parts_from_json(odd) is None


def test_hints_name_values_options_and_advice_in_each_spelling():
    from pgvector_pipeline.entry_points.cli import build_parser, shell_words
    from pgvector_pipeline.errors import ResourceNotFound, advice, named, said, setting
    from pgvector_pipeline.postgres.transaction import APPEND_CLASH_HINT

    parser = build_parser()
    restore = parser.parse_args(["restore", "--timestamp", "20261124_101500"]).spelling
    backup = parser.parse_args(["backup"]).spelling
    status = parser.parse_args(["status", "some-run"]).spelling
    error = ResourceNotFound(
        "Missing. ", advice("create_missing"), " to create it, or restore with ", setting("migrate_to", "x"), "."
    )
    assert error.message == "Missing. Set create_missing: true to create it, or restore with migrate_to: x."
    assert error.render(restore) == "Missing. Pass --create-missing to create it, or restore with --migrate-to x."
    # A command names a field as its own option does; `status` (any run's failure) as the command that has one.
    assert said((named("tables"),), backup) == "--table" and said((named("tables"),), restore) == "--tables"
    assert said((named("truncate_after_backup"),), status) == "--truncate"
    assert said((named("no_such_field"),), restore) == "no_such_field"  # no option sets it: its config key
    assert said(APPEND_CLASH_HINT) == (
        "A restore without truncate_before_restore adds the set's rows to the live ones. To roll the tables back to "
        "the set, restore with truncate_before_restore; to replace only some collections, restore them with "
        "collections and replace_collections; to keep both, restore them under new names with rename."
    )
    assert said(APPEND_CLASH_HINT, restore) == (
        "A restore without --truncate adds the set's rows to the live ones. To roll the tables back to the set, "
        "restore with --truncate; to replace only some collections, restore them with --collections NAME and "
        "--replace-collections; to keep both, restore them under new names with --rename OLD=NEW."
    )
    # Dagster names the store's messages still send a user to, as the shell does the same.
    assert shell_words(
        "No backup set with timestamp 20250101_000000 in /r/vector_bak. List the sets "
        "(vector_backup_inventory) and pick one, or set create_task_dir: true to create it."
    ) == (
        "No backup set with timestamp 20250101_000000 in /r/vector_bak. List the sets (pgvector-pipeline list) and "
        "pick one, or pass --create-task-dir to create it."
    )


def test_progress_bars_show_rows_bytes_rate_and_the_lines_above_them():
    import io

    from rich.console import Console

    from pgvector_pipeline.entry_points.progress_bars import BarsLog
    from pgvector_pipeline.postgres.progress import ProgressEvent

    screen = io.StringIO()
    with BarsLog(Console(file=screen, force_terminal=True, width=160, color_system=None)) as log:
        log.info("Loading langchain_pg_embedding.")
        log.progress(ProgressEvent("COPY langchain_pg_embedding", 5000, 20000, "rows", 4 << 20, 16 << 20))
        log.progress(ProgressEvent("COPY langchain_pg_embedding", 10000, 20000, "rows", 8 << 20, 16 << 20))
        log.progress(ProgressEvent("index ix_hnsw: building index", 300, 1000, "tuples"))
    shown = screen.getvalue()

    assert " INFO Loading langchain_pg_embedding." in shown
    assert "COPY langchain_pg_embedding" in shown and "10,000 of 20,000 rows, 8.0 MB of 16.0 MB" in shown
    assert "index ix_hnsw: building index" in shown and "300 of 1,000 tuples" in shown


def test_the_parse_workers_of_the_set_checks(monkeypatch):
    from pgvector_pipeline.operations.set_checks import CHECK_WORKERS_ENV, PARALLEL_PARSE_MIN_BYTES, parse_workers

    monkeypatch.delenv(CHECK_WORKERS_ENV, raising=False)
    assert parse_workers(PARALLEL_PARSE_MIN_BYTES - 1) == 0
    assert parse_workers(PARALLEL_PARSE_MIN_BYTES) == min(4, os.cpu_count() or 1)
    monkeypatch.setenv(CHECK_WORKERS_ENV, "0")
    assert parse_workers(10 * PARALLEL_PARSE_MIN_BYTES) == 0
    monkeypatch.setenv(CHECK_WORKERS_ENV, "two")
    with pytest.raises(InvalidParams) as refused:
        parse_workers(0)
    assert refused.value.message == "PGVECTOR_CHECK_WORKERS is a number of processes (0: none), not 'two'."


@pytest.mark.parametrize("configured", ["half", "1.5", "-0.1", "nan"])
def test_a_bad_rows_drop_share_is_refused_naming_the_variable(monkeypatch, configured):
    from pgvector_pipeline.operations.set_checks import ROWS_DROP_ENV, allowed_rows_drop

    monkeypatch.setenv(ROWS_DROP_ENV, configured)
    with pytest.raises(InvalidParams) as refused:
        allowed_rows_drop()
    assert refused.value.message == (
        f"PGVECTOR_ROWS_DROP_WARN is a share of rows from 0 to 1 (0.5: half), not {configured!r}."
    )
    monkeypatch.setenv(ROWS_DROP_ENV, "0.25")
    assert allowed_rows_drop() == 0.25


def test_a_bad_retry_delay_is_refused_naming_the_variable(monkeypatch):
    from pgvector_pipeline.failures import retry_delay_s

    monkeypatch.setenv("PGVECTOR_RETRY_DELAY_S", "soon")
    with pytest.raises(InvalidParams) as refused:
        retry_delay_s()
    assert refused.value.message == "PGVECTOR_RETRY_DELAY_S is a number of seconds (0 or more), not 'soon'."
    monkeypatch.setenv("PGVECTOR_RETRY_DELAY_S", "-1")
    with pytest.raises(InvalidParams):
        retry_delay_s()


@pytest.mark.parametrize(("configured", "taken"), [("10", 10), ("0", 200), ("ten", 200), ("²", 200)])
def test_the_discovery_sensor_falls_back_to_its_default_on_a_bad_limit(monkeypatch, configured, taken):
    """It must keep registering sets: a bad value is not fatal to it (a superscript digit, which str.isdigit takes,
    crashed it)."""
    from pgvector_pipeline.sensors.discovery import MAX_SETS_ENV, max_sets_per_tick

    monkeypatch.setenv(MAX_SETS_ENV, configured)
    assert max_sets_per_tick() == taken


def test_a_driver_error_nothing_classified_still_fails_classified():
    import dagster as dg
    import psycopg2.errors

    from pgvector_pipeline.failures import failures_reported

    with pytest.raises(dg.Failure) as raised:
        with failures_reported():
            raise psycopg2.errors.InsufficientPrivilege("permission denied for table langchain_pg_collection")

    assert raised.value.metadata["error_type"].value == "DATABASE_ERROR"
    assert raised.value.description.startswith("PostgreSQL reported an error while running it: permission denied")
