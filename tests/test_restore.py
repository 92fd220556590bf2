"""Restore against a real server: exact round trips, migration, and all-or-nothing failure behaviour. The round trips
marked BOTH_FORMATS run for a CSV set and a binary one (issue 34)."""

import dataclasses
from pathlib import Path

import dagster as dg
import pytest

from pgvector_pipeline.contract import RestoreFlags
from pgvector_pipeline.definitions import defs
from pgvector_pipeline.errors import (
    DatabaseError,
    DataError,
    InvalidParams,
    ResourceNotFound,
)
from pgvector_pipeline.names import COLLECTION_TABLE, EMBEDDING_TABLE, LANGCHAIN_COMMUNITY, LANGCHAIN_POSTGRES
from pgvector_pipeline.operations.backup import BackupOptions, back_up_database
from pgvector_pipeline.operations.restore import restore_backup_set
from pgvector_pipeline.postgres.connection import APPLICATION_NAME
from pgvector_pipeline.postgres.maintenance import truncate_tables_now
from pgvector_pipeline.set_formats import BINARY
from pgvector_pipeline.store.layout import GLOBAL_TASK_KEY
from pgvector_pipeline.store.local import LocalBackupStore, list_backup_sets, locate_backup_set
from pgvector_pipeline.testing.admin import terminate_backends
from pgvector_pipeline.testing.db import execute, query
from pgvector_pipeline.testing.langchain_tables import insert_sample_store
from tests.faulty_stores import FaultyStore
from tests.helpers import (
    DSN_ENV,
    PLAIN_CSV,
    RecordingLog,
    flip_a_digit,
    manifest_path,
    rewrite_csv_keeping_manifest_consistent,
    set_files,
)
from tests.legacy_format import write_legacy_set
from tests.stores import TRICKY_METADATA, make_store

TS = "20261123_121700"
FIXTURE_ROOT = Path(__file__).parent / "fixtures" / "legacy_root"


def contents(dsn: str) -> dict[str, list[str]]:
    """Every row of both tables in PostgreSQL's text form, in a stable order."""
    return {
        table: [row[0] for row in query(dsn, f"SELECT t::text FROM {table} t ORDER BY t::text")]
        for table in (COLLECTION_TABLE, EMBEDDING_TABLE)
    }


def truncate_both(dsn: str) -> None:
    truncate_tables_now(dsn, "public", [COLLECTION_TABLE, EMBEDDING_TABLE], warn=print)


def backed_up(dsn: str, root: Path, timestamp: str = TS, options: BackupOptions = PLAIN_CSV):
    # Plain CSVs: several tests here edit a file's bytes (compressed sets: tests/test_compression.py).
    back_up_database(dsn, "public", LocalBackupStore(root), GLOBAL_TASK_KEY, timestamp, options)
    return locate_backup_set(root, timestamp=timestamp)


# Round trips that hold for a set of either format: plain CSVs, and binary COPY streams (zstd).
BOTH_FORMATS = pytest.mark.parametrize("options", [PLAIN_CSV, BackupOptions(set_format=BINARY)], ids=["csv", "binary"])


@BOTH_FORMATS
@pytest.mark.parametrize("layout", [LANGCHAIN_POSTGRES, LANGCHAIN_COMMUNITY])
def test_backup_truncate_restore_round_trip_is_exact(empty_db, backup_root, layout, options):
    make_store(empty_db, layout)
    original = contents(empty_db)
    backup_set = backed_up(empty_db, backup_root, options=options)
    truncate_both(empty_db)
    assert contents(empty_db) == {COLLECTION_TABLE: [], EMBEDDING_TABLE: []}

    result = restore_backup_set(empty_db, "public", backup_set)

    assert contents(empty_db) == original
    assert [(s.table, s.rows_before, s.rows_restored, s.rows_after) for s in result.tables] == [
        (COLLECTION_TABLE, 0, len(original[COLLECTION_TABLE]), len(original[COLLECTION_TABLE])),
        (EMBEDDING_TABLE, 0, len(original[EMBEDDING_TABLE]), len(original[EMBEDDING_TABLE])),
    ]


def test_restore_with_truncate_replaces_current_rows(empty_db, backup_root):
    make_store(empty_db, LANGCHAIN_POSTGRES)
    original = contents(empty_db)
    backup_set = backed_up(empty_db, backup_root)
    execute(empty_db, lambda cur: cur.execute("UPDATE langchain_pg_embedding SET document = 'changed'"))

    result = restore_backup_set(empty_db, "public", backup_set, RestoreFlags(truncate_before_restore=True))

    assert contents(empty_db) == original
    assert result.tables[1].rows_before == len(original[EMBEDDING_TABLE])


def test_partial_restore_of_the_embedding_table(empty_db, backup_root):
    make_store(empty_db, LANGCHAIN_POSTGRES)
    original = contents(empty_db)
    backup_set = backed_up(empty_db, backup_root)
    execute(empty_db, lambda cur: cur.execute("TRUNCATE langchain_pg_embedding"))

    result = restore_backup_set(empty_db, "public", backup_set, tables=[EMBEDDING_TABLE])

    assert [s.table for s in result.tables] == [EMBEDDING_TABLE]
    assert contents(empty_db) == original


@BOTH_FORMATS
def test_migration_into_an_empty_database_creates_extension_tables_and_indexes(
    pg_server, empty_db, backup_root, options
):
    from pgvector_pipeline.testing.embedded import ensure_database

    make_store(empty_db, LANGCHAIN_POSTGRES, dimension=3)
    execute(
        empty_db,
        lambda cur: cur.execute(
            "CREATE INDEX embedding_hnsw ON langchain_pg_embedding USING hnsw (embedding vector_cosine_ops)"
        ),
    )
    original = contents(empty_db)
    backup_set = backed_up(empty_db, backup_root, options=options)
    target = ensure_database(pg_server, f"migration_target_{options.set_format}")

    with pytest.raises(ResourceNotFound, match="create_missing"):
        restore_backup_set(target, "public", backup_set)
    result = restore_backup_set(target, "public", backup_set, RestoreFlags(create_missing=True))

    assert contents(target) == original
    assert result.created == ["extension vector", COLLECTION_TABLE, EMBEDDING_TABLE]
    indexes = dict(query(target, "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s", (EMBEDDING_TABLE,)))
    assert "USING hnsw (embedding vector_cosine_ops)" in indexes["embedding_hnsw"]
    assert "ix_cmetadata_gin" in indexes and "langchain_pg_embedding_pkey" in indexes
    assert query(
        target,
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = %s::regclass AND attname = 'embedding'",
        (EMBEDDING_TABLE,),
    ) == [("vector(3)",)]
    nearest = query(target, "SELECT id FROM langchain_pg_embedding ORDER BY embedding <=> '[1,0.5,-1.25]' LIMIT 1")
    assert nearest == [("e1",)]


def test_create_missing_builds_indexes_of_tables_it_creates_but_does_not_load(pg_server, empty_db, backup_root):
    from pgvector_pipeline.testing.embedded import ensure_database

    make_store(empty_db, LANGCHAIN_POSTGRES, dimension=3)
    execute(
        empty_db,
        lambda cur: cur.execute(
            "CREATE INDEX embedding_hnsw ON langchain_pg_embedding USING hnsw (embedding vector_cosine_ops)"
        ),
    )
    backup_set = backed_up(empty_db, backup_root)
    target = ensure_database(pg_server, "collections_only_target")

    result = restore_backup_set(
        target, "public", backup_set, RestoreFlags(create_missing=True), tables=[COLLECTION_TABLE]
    )

    assert result.created == ["extension vector", COLLECTION_TABLE, EMBEDDING_TABLE]
    assert [s.table for s in result.tables] == [COLLECTION_TABLE]
    indexes = {
        row[0] for row in query(target, "SELECT indexname FROM pg_indexes WHERE tablename = %s", (EMBEDDING_TABLE,))
    }
    assert {"embedding_hnsw", "ix_cmetadata_gin", "langchain_pg_embedding_pkey"} <= indexes
    assert query(target, "SELECT count(*) FROM langchain_pg_embedding") == [(0,)]


def test_verify_only_changes_nothing(empty_db, backup_root):
    make_store(empty_db, LANGCHAIN_POSTGRES)
    backup_set = backed_up(empty_db, backup_root)
    execute(empty_db, lambda cur: cur.execute("TRUNCATE langchain_pg_embedding"))
    before = contents(empty_db)

    result = restore_backup_set(
        empty_db, "public", backup_set, RestoreFlags(verify_only=True), tables=[EMBEDDING_TABLE]
    )

    assert result.verify_only and result.tables[0].rows_restored == 8
    assert contents(empty_db) == before


# --- failures: the target is exactly as before, the message says what and where -------------------


@pytest.fixture
def restorable(empty_db, backup_root):
    """A store, its backup set, and the store's contents (the state every failed restore must keep)."""
    make_store(empty_db, LANGCHAIN_POSTGRES)
    execute(
        empty_db,
        lambda cur: insert_sample_store(cur, "public", collections=1, embeddings_per_collection=3000, dimension=32),
    )
    return empty_db, backed_up(empty_db, backup_root), contents(empty_db)


def test_bad_vector_in_the_last_row_rolls_back_the_truncate_too(restorable):
    dsn, backup_set, before = restorable

    def break_last_vector(data: bytes) -> bytes:
        head, last = data.rstrip(b"\n").rsplit(b"\n", 1)
        fields = last.split(b",", 2)
        return head + b"\n" + fields[0] + b"," + fields[1] + b',"[1,2,oops]"\n'

    rewrite_csv_keeping_manifest_consistent(backup_set, EMBEDDING_TABLE, break_last_vector)
    with pytest.raises(DataError) as failure:
        restore_backup_set(dsn, "public", backup_set, RestoreFlags(truncate_before_restore=True))
    assert "langchain_pg_embedding" in failure.value.message
    last_line = set_files(backup_set)[EMBEDDING_TABLE].read_bytes().count(b"\n")  # physical lines, as PostgreSQL counts
    assert f"line {last_line}, column embedding" in failure.value.message
    assert contents(dsn) == before


def test_file_of_another_size_is_refused_before_connecting(restorable):
    dsn, backup_set, before = restorable
    path = set_files(backup_set)[EMBEDDING_TABLE]
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match="does not match its manifest"):
        restore_backup_set(
            "postgresql://nobody@127.0.0.1:1/none", "public", backup_set, RestoreFlags(truncate_before_restore=True)
        )
    assert contents(dsn) == before


@pytest.mark.parametrize("verify_only", [False, True])
def test_changed_file_of_the_same_size_loads_nothing(restorable, verify_only):
    dsn, backup_set, before = restorable
    path = set_files(backup_set)[EMBEDDING_TABLE]
    path.write_bytes(flip_a_digit(path.read_bytes()))
    with pytest.raises(DataError) as failure:
        restore_backup_set(
            dsn, "public", backup_set, RestoreFlags(truncate_before_restore=True, verify_only=verify_only)
        )
    assert failure.value.message.startswith(f"{path.name} does not match its manifest: the sha256 of its bytes is ")
    assert contents(dsn) == before


class ChangeFileWhenLoadStarts(RecordingLog):
    """A restore log that changes a CSV the moment its load starts, as a writer racing the restore would."""

    def __init__(self, path: Path):
        super().__init__()
        self.path = path

    def info(self, msg: str) -> None:
        super().info(msg)
        if msg.startswith(f"Loading {EMBEDDING_TABLE} "):
            self.path.write_bytes(flip_a_digit(self.path.read_bytes()))


def test_file_changed_after_the_checks_is_caught_by_the_load(restorable):
    # The bytes checked are the bytes loaded: checking a file, then reading it again to load it, would
    # load whatever it holds by then.
    dsn, backup_set, before = restorable
    path = set_files(backup_set)[EMBEDDING_TABLE]
    with pytest.raises(DataError, match="does not match its manifest"):
        restore_backup_set(
            dsn, "public", backup_set, RestoreFlags(truncate_before_restore=True), log=ChangeFileWhenLoadStarts(path)
        )
    assert contents(dsn) == before


def test_damage_that_breaks_the_csv_is_reported_as_damage(restorable):
    # COPY fails on the damaged row first; the cause to report is the changed file, not the bad vector.
    dsn, backup_set, before = restorable
    path = set_files(backup_set)[EMBEDDING_TABLE]
    data = path.read_bytes()
    position = data.index(b'"[', len(data) // 2) + 1
    path.write_bytes(data[:position] + b"x" + data[position + 1 :])
    with pytest.raises(DataError) as failure:
        restore_backup_set(dsn, "public", backup_set, RestoreFlags(truncate_before_restore=True))
    assert failure.value.message.startswith(f"{path.name} does not match its manifest")
    assert "restore another set" in failure.value.message
    assert contents(dsn) == before


def test_damaged_manifest_is_listed_incomplete_and_refused(restorable, backup_root):
    dsn, backup_set, before = restorable
    manifest_path(backup_set).write_text('{"format": "pgvector-pipeline-backup/1", "tables": {')

    [listed] = list_backup_sets(backup_root)
    assert not listed.complete and listed.status == "damaged" and "cannot be read" in listed.problem
    with pytest.raises(DataError, match="is damaged"):
        restore_backup_set(
            dsn, "public", locate_backup_set(backup_root, timestamp=TS), RestoreFlags(truncate_before_restore=True)
        )
    assert contents(dsn) == before


def test_header_with_a_missing_column_is_named(restorable):
    dsn, backup_set, before = restorable
    rewrite_csv_keeping_manifest_consistent(
        backup_set, COLLECTION_TABLE, lambda data: data.replace(b"uuid,name,cmetadata\n", b"uuid,name\n", 1)
    )
    with pytest.raises(DataError) as failure:
        restore_backup_set(dsn, "public", backup_set, RestoreFlags(truncate_before_restore=True))
    assert "columns only in the table ['cmetadata']" in failure.value.message
    assert contents(dsn) == before


def test_backend_terminated_mid_copy_rolls_back(restorable, admin_dsn, backup_root):
    dsn, backup_set, before = restorable

    def kill_on_second_read(table: str, reads: int) -> None:
        if table == EMBEDDING_TABLE and reads == 2:
            assert terminate_backends(admin_dsn, APPLICATION_NAME) >= 1

    faulty = dataclasses.replace(backup_set, store=FaultyStore(backup_root, on_read=kill_on_second_read))
    with pytest.raises(DatabaseError) as failure:
        restore_backup_set(dsn, "public", faulty, RestoreFlags(truncate_before_restore=True))
    assert failure.value.can_retry and "langchain_pg_embedding" in failure.value.message
    assert contents(dsn) == before


# --- choosing a set safely -----------------------------------------------------------------------


def test_paths_task_ids_and_timestamps_are_checked_before_reading(backup_root, tmp_path):
    outside = tmp_path / "outside" / "vector_bak"
    outside.mkdir(parents=True)
    (outside / f"langchain_pg_collection_{TS}.csv").write_text("uuid,name,cmetadata\n")
    (backup_root / "escape").symlink_to(outside.parent)
    (backup_root / "vector_bak").mkdir()
    (backup_root / "vector_bak" / f"langchain_pg_embedding_{TS}.csv").symlink_to(
        outside / f"langchain_pg_collection_{TS}.csv"
    )
    (backup_root / "vector_bak" / f"langchain_pg_collection_{TS}.csv").write_text("uuid,name,cmetadata\n")

    for backup_path in [
        "../outside/vector_bak",
        "vector_bak/../../outside",
        str(outside),
        "/etc",
        "escape/vector_bak",
        "escape",
    ]:
        with pytest.raises(InvalidParams):
            locate_backup_set(backup_root, backup_path=backup_path, timestamp=TS)
    with pytest.raises(InvalidParams, match="is a symbolic link, not a directory: it is not followed"):
        locate_backup_set(backup_root, task_id="escape", timestamp=TS)
    # The embedding CSV is a symlink: never followed, the set is damaged.
    linked_csv = locate_backup_set(backup_root, timestamp=TS)
    assert linked_csv.status == "damaged" and "is a symbolic link, not a regular file" in linked_csv.problem
    with pytest.raises(DataError, match="is damaged"):
        restore_backup_set("postgresql:///unused", "public", linked_csv)
    linked_manifest = backup_root / "task_m" / "vector_bak"
    linked_manifest.mkdir(parents=True)
    for table in (COLLECTION_TABLE, EMBEDDING_TABLE):
        (linked_manifest / f"{table}_{TS}.csv").write_text("x\n")
    (linked_manifest / f"vector_backup_{TS}.json").symlink_to(outside / f"langchain_pg_collection_{TS}.csv")
    linked = locate_backup_set(backup_root, task_id="task_m", timestamp=TS)
    assert linked.status == "damaged" and "is a symbolic link, not a regular file" in linked.problem
    for timestamp in ["2026-11-23", "20261123_256000", "", "../20261123_121700"]:
        with pytest.raises(InvalidParams):
            locate_backup_set(backup_root, timestamp=timestamp)
    for task_id in ["../x", "a/b", "a b", "a|b"]:
        with pytest.raises(InvalidParams):
            locate_backup_set(backup_root, task_id=task_id, timestamp=TS)
    with pytest.raises(ResourceNotFound, match="No backup set"):
        locate_backup_set(backup_root, task_id="task_1", timestamp=TS)


# --- sets made by the old system ----------------------------------------------------------------


def test_legacy_set_with_python_repr_json_restores(empty_db, backup_root):
    make_store(empty_db, LANGCHAIN_POSTGRES)
    original = contents(empty_db)
    write_legacy_set(empty_db, backup_root / "task_old" / "vector_bak", TS)
    legacy_set = locate_backup_set(backup_root, task_id="task_old", timestamp=TS)
    assert not legacy_set.has_manifest
    assert b"'ok': True" in set_files(legacy_set)[EMBEDDING_TABLE].read_bytes()

    restore_backup_set(empty_db, "public", legacy_set, RestoreFlags(truncate_before_restore=True, allow_legacy=True))

    restored = dict(query(empty_db, "SELECT id, cmetadata FROM langchain_pg_embedding WHERE id LIKE 'e%%'"))
    assert restored["e2"] == {**TRICKY_METADATA, "i": 2}
    crlf = query(empty_db, "SELECT document FROM langchain_pg_embedding WHERE id = 'e1'")[0][0]
    assert crlf == "line one\nline two\r\nline three with CRLF"
    # The old format cannot tell '' from NULL: documents load as '' (LangChain never writes NULL ones).
    after = dict(query(empty_db, "SELECT id, document FROM langchain_pg_embedding"))
    assert after["e4"] == "" and after["e5"] == ""
    execute(empty_db, lambda cur: cur.execute("UPDATE langchain_pg_embedding SET document = NULL WHERE id = 'e5'"))
    assert contents(empty_db) == original


def test_shipped_legacy_fixture_restores(store_db):
    legacy_set = locate_backup_set(FIXTURE_ROOT, task_id="task_legacy", timestamp="20250101_120000")
    result = restore_backup_set(store_db, "public", legacy_set, RestoreFlags(allow_legacy=True))

    assert [s.rows_restored for s in result.tables] == [2, 8]
    metadata = dict(query(store_db, "SELECT id, cmetadata FROM langchain_pg_embedding"))
    assert metadata["e0"] == {**TRICKY_METADATA, "i": 0}
    assert (
        query(store_db, "SELECT cmetadata::text FROM langchain_pg_collection WHERE name = 'tricky'")[0][0]
        == '{"lang": "zh", "note": "it\'s \\"quoted\\""}'
    )


def test_legacy_set_cannot_create_missing_tables(empty_db):
    legacy_set = locate_backup_set(FIXTURE_ROOT, task_id="task_legacy", timestamp="20250101_120000")
    with pytest.raises(InvalidParams, match="needs the table DDL from a manifest"):
        restore_backup_set(empty_db, "public", legacy_set, RestoreFlags(create_missing=True, allow_legacy=True))


# --- a target that grew a column since the backup ----------------------------------------------


@pytest.mark.parametrize(
    "column, value",
    [("note text", None), ("tenant text NOT NULL DEFAULT 'x'", "x")],
)
def test_target_with_an_extra_column_is_refused_with_a_way_forward_then_filled(
    empty_db, backup_root, monkeypatch, column, value
):
    make_store(empty_db, LANGCHAIN_POSTGRES)
    original = contents(empty_db)
    backup_set = backed_up(empty_db, backup_root)
    name = column.split()[0]
    execute(empty_db, lambda cur: cur.execute(f"ALTER TABLE langchain_pg_embedding ADD COLUMN {column}"))
    before = contents(empty_db)

    with pytest.raises(DataError) as failure:
        restore_backup_set(empty_db, "public", backup_set, RestoreFlags(truncate_before_restore=True))
    assert f"columns only in the table ['{name}']" in failure.value.message
    assert "set fill_extra_columns: true" in failure.value.message and "Nothing was changed" in failure.value.message
    assert contents(empty_db) == before

    monkeypatch.setenv(DSN_ENV, empty_db)
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("vector_restore_job").execute_in_process(
            instance=instance,
            run_config={
                "ops": {
                    "restore_vector_backup": {
                        "config": {"timestamp": TS, "truncate_before_restore": True, "fill_extra_columns": True}
                    }
                },
                "resources": {
                    "pgvector": {"config": {"dsn": {"env": DSN_ENV}}},
                },
            },
        )
    [output] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    assert output.event_specific_data.metadata[f"{EMBEDDING_TABLE}.filled_columns"].value == name
    assert query(empty_db, f"SELECT DISTINCT {name} FROM langchain_pg_embedding") == [(value,)]
    execute(empty_db, lambda cur: cur.execute(f"ALTER TABLE langchain_pg_embedding DROP COLUMN {name}"))
    assert contents(empty_db) == original


def test_an_extra_not_null_column_without_default_cannot_be_filled(empty_db, backup_root):
    make_store(empty_db, LANGCHAIN_POSTGRES)
    backup_set = backed_up(empty_db, backup_root)
    execute(
        empty_db,
        lambda cur: cur.execute(
            "TRUNCATE langchain_pg_embedding; ALTER TABLE langchain_pg_embedding ADD COLUMN must text NOT NULL"
        ),
    )
    with pytest.raises(DataError, match="must cannot be filled: give it a default"):
        restore_backup_set(
            empty_db, "public", backup_set, RestoreFlags(fill_extra_columns=True), tables=[EMBEDDING_TABLE]
        )
