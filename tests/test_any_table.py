"""Backups of any pgvector table (`tables`): a PGVectorStore table written by LangChain in another schema, a table
of LlamaIndex's layout, and a user's own tables with halfvec, sparsevec and a foreign key. Row filters pass
PostgreSQL's parser or are refused; restore order comes from the catalog's foreign keys; a restore of such a set keeps
every guarantee of a LangChain one. Tests marked BOTH_FORMATS run for a CSV set and a binary one (issue 34)."""

import itertools
import logging

import pytest

from pgvector_pipeline.assets.backup import OTHER_TABLES
from pgvector_pipeline.contract import REQUEST_BACKUP_JOB, RestoreFlags, request_run_config
from pgvector_pipeline.definitions import defs
from pgvector_pipeline.errors import DataError, InvalidParams, ResourceNotFound
from pgvector_pipeline.operations.backup import BackupChoices, back_up_database, backup_options
from pgvector_pipeline.operations.restore import restore_backup_set
from pgvector_pipeline.postgres.connection import DEFAULT_LOCK_TIMEOUT_S
from pgvector_pipeline.postgres.row_filter import checked_row_filter
from pgvector_pipeline.set_formats import BINARY, CSV
from pgvector_pipeline.store.codecs import UNCOMPRESSED
from pgvector_pipeline.store.local import LocalBackupStore
from pgvector_pipeline.tables import TableSpec
from pgvector_pipeline.testing.db import execute, query
from pgvector_pipeline.testing.embedded import ensure_database
from tests import langchain_stores as lc
from tests.helpers import DSN_ENV, flip_a_digit, read_csv_rows, resources_config, set_files

SCHEMA = "rag"
STORE_TABLE = "handbook"
_databases = itertools.count()

USER_TABLES = f"""
CREATE EXTENSION IF NOT EXISTS vector;
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE {SCHEMA}.projects (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE {SCHEMA}.project_chunks (id int PRIMARY KEY, project_id int NOT NULL REFERENCES {SCHEMA}.projects (id),
  body text, dense halfvec(3), sparse sparsevec(5));
CREATE INDEX ON {SCHEMA}.project_chunks USING hnsw (dense halfvec_cosine_ops);
INSERT INTO {SCHEMA}.projects VALUES (1, 'alpha'), (2, 'beta, "quoted"');
INSERT INTO {SCHEMA}.project_chunks VALUES
  (10, 1, 'line one\r\nline two', '[1,2,3]', '{{1:0.5,4:1}}/5'),
  (11, 1, '', '[0.5,0.25,0]', NULL),
  (12, 2, NULL, NULL, '{{2:3}}/5');
CREATE TABLE {SCHEMA}.data_docs (id bigserial PRIMARY KEY, text varchar NOT NULL, metadata_ json, node_id varchar,
  embedding vector(3));
INSERT INTO {SCHEMA}.data_docs (text, metadata_, node_id, embedding) VALUES
  ('llama one', '{{"file": "a.md"}}', 'n1', '[1,0,0]'), ('llama two', '{{"file": "b.md"}}', 'n2', '[0,1,0]');
"""
ALL_TABLES = ("project_chunks", "projects", "data_docs", STORE_TABLE)


def new_db(pg_server) -> str:
    return ensure_database(pg_server, f"any_table_{next(_databases)}")


def file_of(backup_set, table: str):
    return set_files(backup_set)[table]


def rows(dsn: str, table: str) -> list[str]:
    return [r[0] for r in query(dsn, f"SELECT t::text FROM {SCHEMA}.{table} t ORDER BY t::text")]


@pytest.fixture
def source(pg_server) -> str:
    """The user's tables, LlamaIndex's layout, and a PGVectorStore table LangChain made and filled, in schema rag."""
    dsn = new_db(pg_server)
    execute(dsn, lambda cur: cur.execute(USER_TABLES))
    from langchain_postgres import Column, PGEngine, PGVectorStore

    engine = PGEngine.from_connection_string(url=lc.sqlalchemy_url(dsn, "psycopg"))
    engine.init_vectorstore_table(
        STORE_TABLE, lc.DIMENSION, schema_name=SCHEMA, metadata_columns=[Column("page", "INTEGER")]
    )
    store = PGVectorStore.create_sync(
        engine, table_name=STORE_TABLE, schema_name=SCHEMA, embedding_service=lc.embedding(), metadata_columns=["page"]
    )
    store.add_texts(["alpha report", "beta notes", "gamma"], metadatas=[{"page": i, "src": "x"} for i in range(3)])
    return dsn


def back_up(dsn: str, root, *specs: TableSpec, schema: str = SCHEMA, set_format: str = CSV):
    log = logging.getLogger("test")
    choices = BackupChoices(tables=specs, compression=UNCOMPRESSED, set_format=set_format)
    options = backup_options(dsn, schema, choices, 2, DEFAULT_LOCK_TIMEOUT_S, log)
    result = back_up_database(dsn, schema, LocalBackupStore(root), "global", None, options)
    backup_set = LocalBackupStore(root).locate(timestamp=result.timestamp)
    assert backup_set.manifest.set_format == set_format
    return backup_set


# Tests that run for a set of each format (issue 34).
BOTH_FORMATS = pytest.mark.parametrize("set_format", [CSV, BINARY])


@BOTH_FORMATS
def test_any_pgvector_tables_back_up_and_restore_into_an_empty_database(pg_server, source, backup_root, set_format):
    from pgvector_pipeline.operations.set_checks import check_files_and_embeddings

    before_search = lc.vector_store_search(source, STORE_TABLE, SCHEMA, metadata_columns=["page"])
    backup_set = back_up(source, backup_root, *(TableSpec(name) for name in ALL_TABLES), set_format=set_format)
    files, vectors = check_files_and_embeddings(backup_set)
    assert (files.passed, vectors.passed) == (True, True), vectors.description
    assert vectors.metadata["vectors"] == 7  # 2 halfvecs (one is NULL), 2 in data_docs, 3 in the store table

    # Restore order from the foreign keys: projects before the chunks that reference it, else as named.
    assert backup_set.tables == ["projects", "project_chunks", "data_docs", STORE_TABLE]
    assert backup_set.manifest.tables["project_chunks"].references == ["projects"]
    assert backup_set.manifest.source.db_schema == SCHEMA
    target = new_db(pg_server)
    restore_backup_set(target, SCHEMA, backup_set, RestoreFlags(create_missing=True))

    assert {t: rows(target, t) for t in ALL_TABLES} == {t: rows(source, t) for t in ALL_TABLES}
    assert lc.vector_store_search(target, STORE_TABLE, SCHEMA, metadata_columns=["page"]) == before_search
    indexes = "SELECT indexdef FROM pg_indexes WHERE tablename = 'project_chunks' ORDER BY 1"
    assert query(target, indexes) == query(source, indexes)
    # data_docs.id is a bigserial: its new sequence continues after the restored ids, as the app expects.
    new_row = f"INSERT INTO {SCHEMA}.data_docs (text) VALUES ('new') RETURNING id"
    assert query(target, new_row) == [(3,)]


@BOTH_FORMATS
def test_a_table_with_a_serial_id_restores_swapped_and_its_sequence_goes_on(source, backup_root, set_format):
    """A swap used to give up on any table with a serial column: the new table's default reads the live table's
    sequence, which the check under the swap's locks took for a change the app made while the restore loaded."""
    backup_set = back_up(source, backup_root, TableSpec("data_docs"), set_format=set_format)
    before = rows(source, "data_docs")
    execute(source, lambda cur: cur.execute(f"UPDATE {SCHEMA}.data_docs SET text = 'changed'"))
    log = logging.getLogger("test")

    restore_backup_set(source, SCHEMA, backup_set, RestoreFlags(truncate_before_restore=True), log=log)

    assert rows(source, "data_docs") == before
    assert query(source, f"INSERT INTO {SCHEMA}.data_docs (text) VALUES ('new') RETURNING id") == [(3,)]
    assert query(source, f"SELECT pg_get_serial_sequence('{SCHEMA}.data_docs', 'id')") == [
        (f"{SCHEMA}.data_docs_id_seq",)
    ]


def test_a_row_filter_backs_up_only_the_rows_it_keeps(source, backup_root):
    backup_set = back_up(
        source,
        backup_root,
        TableSpec("projects", "id = 1"),
        TableSpec("project_chunks", "project_id = 1 AND body IS NOT NULL"),
        TableSpec("data_docs", "metadata_->>'file' LIKE 'b%'"),
    )

    chunks = read_csv_rows(file_of(backup_set, "project_chunks"))
    assert [row["id"] for row in chunks] == ["10", "11"]
    assert [row["text"] for row in read_csv_rows(file_of(backup_set, "data_docs"))] == ["llama two"]
    # Re-printed with every operator through pg_catalog and every operation in parentheses (see postgres.row_filter).
    assert backup_set.manifest.tables["project_chunks"].row_filter == (
        "((project_id OPERATOR(pg_catalog.=) 1) AND (body IS NOT NULL))"
    )
    assert backup_set.rows("projects") == 1


FILTERS = [
    "id IN (10, 12) OR body ILIKE 'LINE%'",
    "id NOT IN (10) AND project_id BETWEEN 1 AND 2",
    "id NOT BETWEEN 11 AND 12 OR body NOT LIKE '%two'",
    "body::varchar(4) = 'line' AND (project_id::text)::int4 >= 1",
    "body IS NULL OR body = '' IS TRUE",
    "NOT (project_id = 2) AND id::numeric(5, 1) <> 10.5",
]


@pytest.mark.parametrize("text", FILTERS)
def test_a_re_printed_row_filter_keeps_the_rows_the_given_one_keeps(source, text):
    printed = checked_row_filter(text, "project_chunks", ["id", "project_id", "body", "dense", "sparse"])

    assert "OPERATOR(pg_catalog." in printed
    keeps = f"SELECT id FROM {SCHEMA}.project_chunks WHERE {{}} ORDER BY id"
    assert query(source, keeps.format(printed)) == query(source, keeps.format(text))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (TableSpec("projects", "pg_sleep(1) IS NULL"), "it holds a FuncCall"),
        (TableSpec("projects", "id IN (SELECT 1 FROM pg_authid)"), "it holds a SubLink"),
        (TableSpec("projects", "1 = 1) UNION (SELECT 1"), "not a valid SQL condition"),
        (TableSpec("projects", "true; DROP TABLE rag.projects"), "more than one condition"),
        (TableSpec("projects", "secret = 1"), "'secret', which is not a column of projects"),
        (TableSpec("projects", "id::regclass IS NULL"), "it casts to 'regclass'"),
    ],
)
def test_an_unsafe_row_filter_is_refused_before_any_export(source, backup_root, spec, message):
    with pytest.raises(InvalidParams, match=message):
        back_up(source, backup_root, TableSpec("project_chunks"), spec)
    assert list(backup_root.rglob("*.csv*")) == []


def test_tables_that_cannot_make_a_set_are_refused_with_what_the_schema_holds(source, backup_root):
    with pytest.raises(ResourceNotFound, match=r"rag.nope does not exist.*tables with vectors are data_docs, handbook"):
        back_up(source, backup_root, TableSpec("nope"))
    with pytest.raises(InvalidParams, match="projects in schema rag has no vector, halfvec or sparsevec column"):
        back_up(source, backup_root, TableSpec("projects"), TableSpec("data_docs"))
    with pytest.raises(InvalidParams, match="is not a plain name"):
        TableSpec("rag.projects")
    execute(
        source,
        lambda cur: cur.execute(
            f"ALTER TABLE {SCHEMA}.projects ADD COLUMN lead int REFERENCES {SCHEMA}.project_chunks (id)"
        ),
    )
    with pytest.raises(InvalidParams, match="reference each other in a cycle"):
        back_up(source, backup_root, TableSpec("projects"), TableSpec("project_chunks"))


def test_a_changed_file_of_such_a_set_restores_nothing(pg_server, source, backup_root):
    backup_set = back_up(source, backup_root, TableSpec("projects"), TableSpec("project_chunks"))
    path = file_of(backup_set, "project_chunks")
    path.write_bytes(flip_a_digit(path.read_bytes()))
    target = new_db(pg_server)
    execute(target, lambda cur: cur.execute(USER_TABLES))
    before = {t: rows(target, t) for t in ("projects", "project_chunks")}

    with pytest.raises(DataError, match="sha256"):
        restore_backup_set(
            target,
            SCHEMA,
            LocalBackupStore(backup_root).locate(timestamp=backup_set.timestamp),
            RestoreFlags(truncate_before_restore=True),
        )
    assert {t: rows(target, t) for t in ("projects", "project_chunks")} == before


@BOTH_FORMATS
def test_a_row_the_target_refuses_rolls_back_every_table(pg_server, source, backup_root, set_format):
    backup_set = back_up(source, backup_root, TableSpec("projects"), TableSpec("project_chunks"), set_format=set_format)
    target = new_db(pg_server)
    execute(
        target,
        lambda cur: cur.execute(
            USER_TABLES
            + f"DELETE FROM {SCHEMA}.project_chunks WHERE id >= 11;"
            + f"ALTER TABLE {SCHEMA}.project_chunks ADD CHECK (id < 11);"
        ),
    )
    before = {t: rows(target, t) for t in ("projects", "project_chunks")}

    with pytest.raises(DataError, match="project_chunks_id_check"):
        restore_backup_set(target, SCHEMA, backup_set, RestoreFlags(truncate_before_restore=True))
    assert {t: rows(target, t) for t in ("projects", "project_chunks")} == before


def test_the_backup_job_takes_tables_from_run_config(source, backup_root, instance, monkeypatch):
    monkeypatch.setenv(DSN_ENV, source)
    # The tables name their schema; the resource's db_schema stays public.
    config = request_run_config(None, tables={f"{SCHEMA}.projects": "", f"{SCHEMA}.project_chunks": "project_id = 2"})
    resources = resources_config()

    result = defs.get_job_def(REQUEST_BACKUP_JOB).execute_in_process(
        run_config={**config, **resources}, instance=instance
    )

    assert result.success
    [materialization] = [
        m for m in result.asset_materializations_for_node("request_vector_backup") if m.asset_key == OTHER_TABLES
    ]
    table = materialization.metadata["tables"].value
    assert [(r.data["table"], r.data["rows"], r.data["row_filter"]) for r in table.records] == [
        ("projects", 2, "every row"),
        ("project_chunks", 1, "(project_id OPERATOR(pg_catalog.=) 2)"),
    ]
    [listed] = LocalBackupStore(backup_root).list_sets()
    assert (listed.tables, listed.manifest.source.db_schema) == (["projects", "project_chunks"], SCHEMA)


def test_tables_of_two_schemas_are_refused(source, backup_root, instance, monkeypatch):
    monkeypatch.setenv(DSN_ENV, source)
    config = request_run_config(None, tables={f"{SCHEMA}.data_docs": "", "public.other": ""})
    result = defs.get_job_def(REQUEST_BACKUP_JOB).execute_in_process(
        run_config={**config, **resources_config()}, instance=instance, raise_on_error=False
    )
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    assert "a set holds tables of one schema" in failure.step_failure_data.error.message
    assert list(backup_root.rglob("*.csv*")) == []


def test_such_a_set_copies_to_another_store_and_restores_from_it_through_the_restore_job(
    pg_server, source, backup_root, tmp_path, instance, monkeypatch
):
    from pgvector_pipeline.contract import RESTORE_JOB, restore_run_config
    from pgvector_pipeline.operations.copy import copy_set

    backup_set = back_up(source, backup_root, *(TableSpec(name) for name in ALL_TABLES))
    other = LocalBackupStore(tmp_path / "other")
    (tmp_path / "other").mkdir()
    copy_set(backup_set, other)
    monkeypatch.setenv("PGVECTOR_BACKUP_ROOT", str(tmp_path / "other"))
    target = new_db(pg_server)
    monkeypatch.setenv(DSN_ENV, target)
    config = restore_run_config(None, backup_set.timestamp, flags=RestoreFlags(create_missing=True))
    resources = resources_config()
    resources["resources"]["pgvector"]["config"]["db_schema"] = SCHEMA

    result = defs.get_job_def(RESTORE_JOB).execute_in_process(run_config={**config, **resources}, instance=instance)

    assert result.success
    assert {t: rows(target, t) for t in ALL_TABLES} == {t: rows(source, t) for t in ALL_TABLES}


@BOTH_FORMATS
def test_a_session_killed_while_such_a_set_loads_leaves_every_table_as_it_was(
    pg_server, source, backup_root, admin_dsn, set_format
):
    import dataclasses

    from pgvector_pipeline.errors import DatabaseError
    from pgvector_pipeline.postgres.connection import APPLICATION_NAME
    from pgvector_pipeline.testing.admin import terminate_backends
    from tests.faulty_stores import FaultyStore

    backup_set = back_up(source, backup_root, TableSpec("projects"), TableSpec("project_chunks"), set_format=set_format)
    target = new_db(pg_server)
    execute(target, lambda cur: cur.execute(USER_TABLES + f"DELETE FROM {SCHEMA}.project_chunks WHERE id = 12;"))
    before = {t: rows(target, t) for t in ("projects", "project_chunks")}

    def kill_on_the_second_table(table: str, reads: int) -> None:
        if table == "project_chunks" and reads == 1:  # projects is truncated and loaded by now
            assert terminate_backends(admin_dsn, APPLICATION_NAME) >= 1

    faulty = dataclasses.replace(backup_set, store=FaultyStore(backup_root, on_read=kill_on_the_second_table))
    with pytest.raises(DatabaseError) as failure:
        restore_backup_set(target, SCHEMA, faulty, RestoreFlags(truncate_before_restore=True))
    assert failure.value.can_retry
    assert {t: rows(target, t) for t in ("projects", "project_chunks")} == before


def test_the_discovery_sensor_registers_a_set_of_other_tables_under_their_one_asset(source, backup_root, instance):
    import dagster as dg

    from pgvector_pipeline.partitions import backup_partition_key
    from pgvector_pipeline.resources.backup_store import BackupStoreResource
    from pgvector_pipeline.sensors.discovery import backup_discovery_sensor

    backup_set = back_up(
        source, backup_root, TableSpec("projects"), TableSpec("project_chunks"), TableSpec("data_docs")
    )

    backup_discovery_sensor(
        dg.build_sensor_context(instance=instance, definitions=defs, resources={"backup_store": BackupStoreResource()})
    )

    key = str(backup_partition_key("global", backup_set.timestamp))
    assert instance.get_materialized_partitions(OTHER_TABLES) == {key}
    [event] = instance.fetch_materializations(OTHER_TABLES, limit=10).records
    path = event.asset_materialization.metadata["path"].value
    assert path == f"{backup_set.location}/{backup_set.table_files['projects']}"
