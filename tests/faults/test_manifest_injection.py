"""A manifest is untrusted input: SQL smuggled into its DDL never runs, odd fields are DATA_ERROR."""

import json

import pytest

from pgvector_pipeline.contract import RestoreFlags
from pgvector_pipeline.errors import DataError
from pgvector_pipeline.names import EMBEDDING_TABLE, LANGCHAIN_POSTGRES
from pgvector_pipeline.operations.backup import back_up_database
from pgvector_pipeline.operations.restore import restore_backup_set
from pgvector_pipeline.store.layout import GLOBAL_TASK_KEY
from pgvector_pipeline.store.local import LocalBackupStore, list_backup_sets, locate_backup_set
from pgvector_pipeline.testing.db import execute, query
from tests.helpers import RecordingLog, manifest_path
from tests.stores import make_store

TS = "20261124_150000"


@pytest.fixture
def backed_up(empty_db, backup_root):
    make_store(empty_db, LANGCHAIN_POSTGRES, dimension=3)
    back_up_database(empty_db, "public", LocalBackupStore(backup_root), GLOBAL_TASK_KEY, TS)
    return locate_backup_set(backup_root, timestamp=TS)


def edit_manifest(backup_set, change) -> None:
    document = json.loads(manifest_path(backup_set).read_text())
    change(document)
    manifest_path(backup_set).write_text(json.dumps(document))


def objects_in(dsn: str) -> list[tuple]:
    return query(
        dsn,
        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') ORDER BY 1, 2",
    ) + query(
        dsn,
        "SELECT 'schema', nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg_%%' AND nspname <> 'information_schema' ORDER BY 2",
    )


SMUGGLED = [
    ("create_table", "; COMMIT; CREATE SCHEMA pwned; CREATE TABLE public.pwned(x int)"),
    ("create_table", " PARTITION BY RANGE (id)"),
    ("indexes", "; COMMIT; DROP TABLE langchain_pg_collection CASCADE"),
]


@pytest.mark.parametrize("field, suffix", SMUGGLED)
def test_sql_smuggled_into_manifest_ddl_never_runs(backed_up, backup_root, pg_server, field, suffix):
    from pgvector_pipeline.testing.embedded import ensure_database

    def smuggle(document):
        entry = document["tables"][EMBEDDING_TABLE]
        if field == "indexes":
            entry["indexes"][0] += suffix
        else:
            entry["create_table"] += suffix

    edit_manifest(backed_up, smuggle)
    target = ensure_database(pg_server, f"injection_target_{abs(hash(suffix)) % 10_000}")
    before = objects_in(target)
    backup_set = locate_backup_set(backup_root, timestamp=TS)

    for verify_only in (True, False):
        with pytest.raises(DataError, match="The manifest's DDL was refused because"):
            restore_backup_set(target, "public", backup_set, RestoreFlags(create_missing=True, verify_only=verify_only))

    assert objects_in(target) == before
    assert query(target, "SELECT count(*) FROM pg_extension WHERE extname = 'vector'") == [(0,)]


@pytest.mark.parametrize("schema", ["public", "other"])
def test_a_default_calling_a_function_outside_pg_catalog_is_refused(backed_up, backup_root, pg_server, schema):
    from pgvector_pipeline.testing.embedded import ensure_database

    def planted_default(document):
        entry = document["tables"][EMBEDDING_TABLE]
        entry["create_table"] = entry["create_table"].replace(
            '"id" character varying NOT NULL', f'"id" character varying DEFAULT {schema}.gen_random_uuid() NOT NULL'
        )
        assert f"{schema}.gen_random_uuid()" in entry["create_table"]

    edit_manifest(backed_up, planted_default)
    target = ensure_database(pg_server, f"default_target_{schema}")

    with pytest.raises(DataError, match="the default of column 'id' is an expression restore does not execute"):
        restore_backup_set(
            target, "public", locate_backup_set(backup_root, timestamp=TS), RestoreFlags(create_missing=True)
        )


@pytest.mark.parametrize(
    "deep",
    [
        "CREATE INDEX deep ON langchain_pg_embedding (id) WHERE " + "NOT " * 600 + "id IS NULL",
        "CREATE INDEX deep ON langchain_pg_embedding ((id" + "::text" * 600 + "))",
    ],
)
def test_deeply_nested_manifest_ddl_is_refused_as_damage(backed_up, backup_root, pg_server, deep):
    """The checker and pglast's printer recurse per level of the parse tree: 600 levels were a RecursionError."""
    from pgvector_pipeline.testing.embedded import ensure_database

    edit_manifest(backed_up, lambda document: document["tables"][EMBEDDING_TABLE]["indexes"].append(deep))
    target = ensure_database(pg_server, f"deep_ddl_target_{len(deep)}")
    before = objects_in(target)

    with pytest.raises(DataError, match="it nests more than 100 levels deep"):
        restore_backup_set(
            target, "public", locate_backup_set(backup_root, timestamp=TS), RestoreFlags(create_missing=True)
        )
    assert objects_in(target) == before


def test_a_live_table_with_a_deeply_nested_index_backs_up_with_a_warning(store_db, backup_root):
    deep = "CREATE INDEX deep ON langchain_pg_embedding (id) WHERE " + "NOT " * 600 + "id IS NULL"
    execute(store_db, lambda cur: cur.execute(deep))
    log = RecordingLog()

    back_up_database(store_db, "public", LocalBackupStore(backup_root), GLOBAL_TASK_KEY, None, log=log)

    assert any("will not recreate this table" in w and "nests more than 100 levels" in w for w in log.warnings)


def test_a_pg_catalog_default_is_recreated_naming_pg_catalog():
    from pgvector_pipeline.postgres.ddl import checked_create_table

    statement = checked_create_table("CREATE TABLE t (id uuid DEFAULT gen_random_uuid() NOT NULL)", "t")

    assert statement == "CREATE TABLE t (id uuid DEFAULT pg_catalog.gen_random_uuid() NOT NULL)"


ODD_MANIFESTS = [
    (lambda d: d["tables"][EMBEDDING_TABLE].update(rows="8"), "rows"),
    (lambda d: d["tables"][EMBEDDING_TABLE].pop("sha256"), "sha256"),
    (lambda d: d["tables"][EMBEDDING_TABLE].update(sha256="abc"), "sha256"),
    (lambda d: d["tables"][EMBEDDING_TABLE].update(file="../../../etc/passwd"), "file"),
    (lambda d: d["tables"].update(langchain_pg_other=d["tables"][EMBEDDING_TABLE]), "langchain_pg_other"),
    (lambda d: d.update(tables=[]), "tables"),
    (lambda d: d.update(timestamp="20261124_150001"), "20261124_150001"),
    (lambda d: d.update(surprise=True), "surprise"),
    (lambda d: d.update(format="pgvector-pipeline-backup/9"), "format"),
    (lambda d: d["tables"][EMBEDDING_TABLE].update(rows=-1), "rows"),
    # Numbers no table, file or clock can have: every one is bounded when the manifest is read.
    (lambda d: d["tables"][EMBEDDING_TABLE].update(rows=10**30), "rows"),
    (lambda d: d["tables"][EMBEDDING_TABLE].update(bytes=2**63), "bytes"),
    (lambda d: d["tables"][EMBEDDING_TABLE].update(stored_bytes=10**400), "stored_bytes"),
    (lambda d: d["tables"][EMBEDDING_TABLE].update(duration_s=1e300), "duration_s"),
    (lambda d: d.update(duration_s=float("inf")), "duration_s"),
    (lambda d: d.update(embedding_dimensions={"3": 2**64}), "embedding_dimensions"),
    (lambda d: d.update(embedding_dimensions={"9" * 5000: 8}), "embedding_dimensions"),
    (lambda d: d.update(embedding_dimensions={"three": 8}), "embedding_dimensions"),
    (lambda d: d["collections"]["embeddings"].update(sample_collection_0=10**19), "collections"),
    (lambda d: d.update(started_at="0001-01-01T00:00:00+14:00"), "started_at"),
    (lambda d: d.update(started_at="yesterday"), "started_at"),
    (lambda d: d.update(finished_at="9999-12-31T23:59:59-14:00"), "finished_at"),
    # A NUL in any text of it: PostgreSQL refuses it, and C code would read the text as ending there.
    (lambda d: d["collections"]["embeddings"].update({"a\x00b": 1}), "NUL"),
    (lambda d: d["collections"].update(selected=["a\x00b"]), "NUL"),
    (lambda d: d["source"].update(dsn="host=x\x00"), "NUL"),
    (lambda d: d["tables"][EMBEDDING_TABLE].update(row_filter="id <> 'a'\x00 OR true"), "NUL"),
]


@pytest.mark.parametrize("change, named", ODD_MANIFESTS)
def test_odd_manifest_fields_are_data_errors(backed_up, backup_root, empty_db, change, named):
    edit_manifest(backed_up, change)
    before = query(empty_db, "SELECT count(*) FROM langchain_pg_embedding")

    [listed] = list_backup_sets(backup_root)
    assert listed.status == "damaged" and named in listed.problem
    with pytest.raises(DataError) as failure:
        restore_backup_set(
            empty_db, "public", locate_backup_set(backup_root, timestamp=TS), RestoreFlags(truncate_before_restore=True)
        )
    assert "is damaged" in failure.value.message and named in failure.value.message
    assert query(empty_db, "SELECT count(*) FROM langchain_pg_embedding") == before


@pytest.mark.parametrize("content", [b"[]", b"null", b"\xff\xfe", b"{" * 100_000, b" " * (5 << 20)])
def test_manifests_that_are_not_json_objects_are_data_errors(backed_up, backup_root, content):
    manifest_path(backed_up).write_bytes(content)
    [listed] = list_backup_sets(backup_root)
    assert listed.status == "damaged" and str(manifest_path(backed_up)) in listed.problem


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.update({"TOPSECRET key, not an identifier": 1}),
        lambda d: d["tables"].update({"TOPSECRET table": d["tables"][EMBEDDING_TABLE]}),
        lambda d: d.update(task_id="TOPSECRET task"),
        lambda d: d["tables"][EMBEDDING_TABLE].update(file="TOPSECRET.csv"),
    ],
)
def test_manifest_errors_never_quote_what_the_file_holds(backed_up, backup_root, change):
    edit_manifest(backed_up, change)

    [listed] = list_backup_sets(backup_root)

    assert listed.status == "damaged" and "cannot be read as a manifest" in listed.problem
    assert "TOPSECRET" not in listed.problem
