"""Objects planted by a role that owns the schema and the database never run as the tool's role (CVE-2018-1058's
class): every operation runs as a superuser against a database whose owner overloaded what the tool calls.

The planter owns the database (so its `public` schema, where pgvector lives) and the schema `rag` of the LangChain
tables. It plants, in `rag`, a copy of every pg_catalog function and aggregate the tool's SQL calls and of the
comparison operators on the types it compares, with the same argument types, plus overloads with a better match
(`=(varchar, text)`, `count(uuid)`, `vector_dims` of pgvector's types), and puts `rag, public` before `pg_catalog`
in the database's default search_path, so an unqualified name in a session that keeps that path resolves to the
planted copy. Each planted body writes a marker file with the caller's privileges (COPY TO, as `COPY … TO PROGRAM`
would run a shell) and then raises: the test passes only when every operation succeeds and no marker exists.
"""

import itertools
import os
import tempfile
from pathlib import Path

import pytest
from psycopg2 import sql

from pgvector_pipeline.contract import Migration, RestoreFlags
from pgvector_pipeline.names import LANGCHAIN_POSTGRES
from pgvector_pipeline.operations.backup import BackupChoices, back_up_database, backup_options
from pgvector_pipeline.operations.drill import restore_drill
from pgvector_pipeline.operations.migration import MIGRATE_TO_PGVECTOR_STORE
from pgvector_pipeline.operations.restore import restore_backup_set
from pgvector_pipeline.postgres.maintenance import truncate_tables_now
from pgvector_pipeline.store.local import LocalBackupStore
from pgvector_pipeline.tables import TableSpec
from pgvector_pipeline.testing.admin import create_role, dsn_as
from pgvector_pipeline.testing.db import execute, query
from pgvector_pipeline.testing.embedded import ensure_database
from pgvector_pipeline.testing.langchain_tables import create_langchain_tables, insert_sample_store
from tests.helpers import RecordingLog

SCHEMA = "rag"
_numbers = itertools.count()

# Functions of pg_catalog the tool's SQL calls (and a few it might): every overload gets a planted twin.
PLANTED_FUNCTIONS = (
    "aclexplode current_setting format_type gen_random_uuid has_schema_privilege has_sequence_privilege "
    "has_table_privilege hashtext jsonb_build_object json_build_object lower upper md5 nextval now obj_description "
    "pg_backend_pid pg_current_xact_id pg_describe_object pg_export_snapshot pg_get_constraintdef pg_get_expr "
    "pg_get_indexdef pg_get_serial_sequence pg_get_triggerdef pg_get_userbyid pg_has_role pg_input_is_valid "
    "pg_postmaster_start_time pg_relation_size pg_table_size pg_tablespace_location pg_terminate_backend "
    "pg_cancel_backend pg_total_relation_size pg_try_advisory_xact_lock pg_xact_status quote_ident quote_literal "
    "set_config setval to_regclass unnest floor abs length octet_length array_length string_to_array encode "
    "sha256 txid_current pg_sleep jsonb_typeof to_jsonb row_to_json"
).split()
# Aggregates, as (signature, state function's extra arguments): identical twins and better matches.
PLANTED_AGGREGATES = ("count(*)", "count(uuid)", "count(varchar)", "count(text)", "sum(int8)", "sum(int4)",
                      "max(text)", "min(text)", "max(int8)", "min(int8)", "string_agg(text, text)",
                      "array_agg(text)", "array_agg(name)")  # fmt: skip
# Comparison operators: a twin for each type the tool compares, and better matches for varchar.
OPERATOR_NAMES = ("=", "<>", "<", ">", "<=", ">=")
OPERATOR_TYPES = ("text", "name", "uuid", "oid", "int2", "int4", "int8", '"char"', "bool", "jsonb", "regclass",
                  "xid8", "timestamptz", "float8", "numeric")  # fmt: skip
BETTER_MATCHES = (("varchar", "text"), ("text", "varchar"), ("varchar", "varchar"), ("name", "varchar"))


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _body(marker_dir: str, what: str, returns: str) -> str:
    """A plpgsql body that leaves a marker file written with the caller's privileges, then raises."""
    return (
        f"BEGIN EXECUTE pg_catalog.format('COPY (SELECT 1) TO %L', {_literal(marker_dir)} "
        f"OPERATOR(pg_catalog.||) '/' OPERATOR(pg_catalog.||) pg_catalog.md5(pg_catalog.clock_timestamp()::pg_catalog.text "
        f"OPERATOR(pg_catalog.||) pg_catalog.random()::pg_catalog.text) OPERATOR(pg_catalog.||) "
        f"{_literal('-' + what.replace('/', '_'))}); "
        f"RAISE EXCEPTION 'PLANTED CODE RAN: %', {_literal(what)}; END"
    )


def plant(cur, marker_dir: str) -> None:
    """As the planter: twins and better matches of what the tool calls, in `rag`."""
    cur.execute(
        "SELECT p.proname, pg_catalog.pg_get_function_identity_arguments(p.oid), pg_catalog.pg_get_function_result(p.oid)"
        " FROM pg_catalog.pg_proc p WHERE p.pronamespace OPERATOR(pg_catalog.=) 'pg_catalog'::pg_catalog.regnamespace"
        " AND p.prokind OPERATOR(pg_catalog.=) 'f' AND p.proname OPERATOR(pg_catalog.=) ANY(%s) AND NOT p.proretset",
        (PLANTED_FUNCTIONS,),
    )
    planted = 0
    for name, arguments, result in cur.fetchall():
        if any(bad in f"{arguments} {result}" for bad in ('"any"', "internal", "cstring", "anyelement", "record")):
            continue
        cur.execute("SAVEPOINT p")
        try:
            cur.execute(
                f"CREATE FUNCTION {SCHEMA}.{name}({arguments}) RETURNS {result} LANGUAGE plpgsql "
                f"SET search_path = pg_catalog AS $p${_body(marker_dir, f'{name}({arguments})', result)}$p$"
            )
            planted += 1
        except Exception:
            cur.execute("ROLLBACK TO SAVEPOINT p")
    assert planted > 60, planted
    vector_types = ("public.vector", "public.halfvec", "public.sparsevec")
    for vector_type in vector_types:
        cur.execute(
            f"CREATE FUNCTION {SCHEMA}.vector_dims({vector_type}) RETURNS int4 LANGUAGE plpgsql SET search_path = "
            f"pg_catalog AS $p${_body(marker_dir, f'vector_dims({vector_type})', 'int4')}$p$"
        )
    for signature in PLANTED_AGGREGATES:
        name, arguments = signature[:-1].split("(")
        inputs = "" if arguments == "*" else f", {arguments}"
        state = f"{SCHEMA}.planted_{name}_{next(_numbers)}"
        cur.execute(
            f"CREATE FUNCTION {state}(int8{inputs}) RETURNS int8 LANGUAGE plpgsql SET search_path = pg_catalog "
            f"AS $p${_body(marker_dir, signature, 'int8')}$p$"
        )
        cur.execute(f"CREATE AGGREGATE {SCHEMA}.{signature} (sfunc = {state}, stype = int8, initcond = '0')")
    pairs = [(t, t) for t in OPERATOR_TYPES] + list(BETTER_MATCHES)
    for left, right in pairs:
        for operator in OPERATOR_NAMES:
            function = f"{SCHEMA}.planted_op_{next(_numbers)}"
            cur.execute(
                f"CREATE FUNCTION {function}({left}, {right}) RETURNS bool LANGUAGE plpgsql SET search_path = "
                f"pg_catalog AS $p${_body(marker_dir, f'{left} {operator} {right}', 'bool')}$p$"
            )
            for schema in (SCHEMA, "public"):
                cur.execute("SAVEPOINT p")
                try:
                    cur.execute(
                        f"CREATE OPERATOR {schema}.{operator} (leftarg = {left}, rightarg = {right}, "
                        f"function = {function})"
                    )
                except Exception:  # public already holds pgvector's or a twin of the same name
                    cur.execute("ROLLBACK TO SAVEPOINT p")


@pytest.fixture
def markers():
    """A directory the server may write into: planted code leaves a file there each time it runs."""
    directory = tempfile.mkdtemp(prefix="pgvector_planted_")
    os.chmod(directory, 0o777)
    return Path(directory)


def planted_database(pg_server, admin_dsn, markers: Path, with_tables: bool = True) -> str:
    """A database owned by a new, unprivileged planter role, with (if `with_tables`) LangChain's tables in `rag`
    (owned by the tool's superuser, filled), and the planter's objects; returns the superuser's DSN."""
    name = f"planted_{next(_numbers)}_{os.getpid()}"
    dsn = ensure_database(pg_server, name)
    planter = f"planter_{name}"
    create_role(admin_dsn, planter)

    def setup(cur):
        cur.execute("CREATE EXTENSION IF NOT EXISTS vector SCHEMA public")
        cur.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(name), sql.Identifier(planter)))
        cur.execute(
            sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(sql.Identifier(SCHEMA), sql.Identifier(planter))
        )
        if with_tables:
            create_langchain_tables(cur, SCHEMA, LANGCHAIN_POSTGRES, dimension=8)
            insert_sample_store(cur, SCHEMA, collections=3, embeddings_per_collection=20, dimension=8)
            cur.execute(f"CREATE INDEX ON {SCHEMA}.langchain_pg_embedding USING hnsw (embedding vector_cosine_ops)")

    execute(dsn, setup)
    execute(dsn_as(dsn, planter), lambda cur: plant(cur, str(markers)))
    execute(
        dsn_as(dsn, planter),
        lambda cur: cur.execute(
            sql.SQL("ALTER DATABASE {} SET search_path = rag, public, pg_catalog").format(sql.Identifier(name))
        ),
    )
    # The trap is armed: an unqualified name in a session that keeps the database's path runs planted code.
    with pytest.raises(Exception, match="PLANTED CODE RAN"):
        query(dsn, "SELECT count(*) FROM pg_catalog.pg_class WHERE relname::varchar = 'x'::varchar")
    for marker in markers.iterdir():
        marker.unlink()
    return dsn


@pytest.fixture
def planted(pg_server, admin_dsn, markers) -> str:
    return planted_database(pg_server, admin_dsn, markers)


def assert_no_planted_code_ran(markers: Path) -> None:
    assert sorted(marker.name for marker in markers.iterdir()) == []


def backup(dsn: str, root: Path, **choices) -> object:
    log = RecordingLog()
    options = backup_options(dsn, SCHEMA, BackupChoices(**choices), 2, 10.0, log)
    return back_up_database(dsn, SCHEMA, LocalBackupStore(root), "global", None, options, log=log)


def the_set(root: Path, result):
    return LocalBackupStore(root).locate(timestamp=result.timestamp)


BACKUPS = {
    "full": {},
    "collections": {"collections": ("sample_collection_1",)},
    "row_filter": {
        "tables": (TableSpec("langchain_pg_embedding", row_filter="document <> 'x' AND cmetadata->>'page' = '1'"),)
    },
    "truncating": {"truncate_after_backup": True},
    "binary": {"set_format": "binary"},
}


@pytest.mark.parametrize("kind", list(BACKUPS))
def test_backups_run_no_planted_code(planted, markers, tmp_path, kind):
    result = backup(planted, tmp_path, **BACKUPS[kind])

    assert result.rows
    assert_no_planted_code_ran(markers)


RESTORES = {
    "swapped": ({"flags": RestoreFlags(truncate_before_restore=True)}),
    "in_place": ({"flags": RestoreFlags(truncate_before_restore=True, in_place=True)}),
    "append_after_truncate": ({"flags": RestoreFlags()}),
    "replace_collection": ({"flags": RestoreFlags(replace_collections=True), "collections": ["sample_collection_0"]}),
    "rename": (
        {"flags": RestoreFlags(), "collections": ["sample_collection_2"], "rename": {"sample_collection_2": "copy"}}
    ),
    "verify_only": ({"flags": RestoreFlags(truncate_before_restore=True, verify_only=True)}),
}


@pytest.mark.parametrize("set_format", ["csv", "binary"])
@pytest.mark.parametrize("kind", list(RESTORES))
def test_restores_run_no_planted_code(planted, markers, tmp_path, kind, set_format):
    backup_set = the_set(tmp_path, backup(planted, tmp_path, set_format=set_format))
    if kind == "append_after_truncate":
        truncate_tables_now(planted, SCHEMA, ["langchain_pg_embedding", "langchain_pg_collection"], print)
    if kind == "rename":  # the renamed copy's embeddings keep their ids: the originals make room
        query(
            planted,
            "DELETE FROM rag.langchain_pg_embedding e USING rag.langchain_pg_collection c WHERE e.collection_id "
            "OPERATOR(pg_catalog.=) c.uuid AND c.name OPERATOR(pg_catalog.=) 'sample_collection_2'::pg_catalog.varchar "
            "RETURNING 1",
        )

    result = restore_backup_set(planted, SCHEMA, backup_set, log=RecordingLog(), **RESTORES[kind])

    assert result.tables
    assert_no_planted_code_ran(markers)
    counted = query(planted, "SELECT pg_catalog.count(*) FROM rag.langchain_pg_embedding")[0][0]
    assert counted == 60


def test_a_restore_into_an_empty_planted_database_creates_the_tables_and_runs_no_planted_code(
    pg_server, admin_dsn, planted, markers, tmp_path
):
    backup_set = the_set(tmp_path, backup(planted, tmp_path))
    target = planted_database(pg_server, admin_dsn, markers, with_tables=False)

    restore_backup_set(target, SCHEMA, backup_set, RestoreFlags(create_missing=True), log=RecordingLog())

    assert_no_planted_code_ran(markers)
    assert query(target, "SELECT pg_catalog.count(*) FROM rag.langchain_pg_embedding") == [(60,)]


def test_a_migration_into_a_pgvector_store_table_runs_no_planted_code(planted, markers, tmp_path):
    backup_set = the_set(tmp_path, backup(planted, tmp_path))
    migration = Migration(MIGRATE_TO_PGVECTOR_STORE, "store_table", ("page:integer",))

    restore_backup_set(planted, SCHEMA, backup_set, collections=["sample_collection_0"], migration=migration)

    assert_no_planted_code_ran(markers)
    assert query(planted, "SELECT pg_catalog.count(*) FROM rag.store_table") == [(20,)]


@pytest.mark.parametrize("compare_live", [False, True], ids=["drill", "verify"])
def test_drill_and_verify_run_no_planted_code(planted, markers, tmp_path, compare_live):
    backup_set = the_set(tmp_path, backup(planted, tmp_path))

    result = restore_drill(planted, SCHEMA, backup_set, compare_live, RecordingLog())

    assert result.passed
    assert_no_planted_code_ran(markers)


def test_truncate_runs_no_planted_code(planted, markers):
    stats = truncate_tables_now(planted, SCHEMA, ["langchain_pg_embedding"], print)

    assert [s.rows_before for s in stats] == [60]
    assert_no_planted_code_ran(markers)
