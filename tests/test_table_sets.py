"""A set is what its manifest says: sets of other tables than the two LangChain ones back up, list and restore."""

import dataclasses
import json

import pytest

from pgvector_pipeline.contract import RestoreFlags
from pgvector_pipeline.errors import InvalidParams
from pgvector_pipeline.names import COLLECTION_TABLE, EMBEDDING_TABLE
from pgvector_pipeline.operations.backup import BackupOptions, back_up_database
from pgvector_pipeline.operations.restore import restore_backup_set
from pgvector_pipeline.postgres.maintenance import check_truncate_tables
from pgvector_pipeline.store.local import LocalBackupStore, locate_backup_set
from pgvector_pipeline.tables import DEFAULT_TABLES, BackupTable, TableSet
from pgvector_pipeline.testing.db import execute, query

TS = "20261201_111500"
THIRD = "project_notes"


def with_third_table(dsn: str) -> TableSet:
    def create(cur) -> None:
        cur.execute(f"CREATE TABLE {THIRD} (id int PRIMARY KEY, note text NOT NULL, embedding vector(3))")
        cur.execute(f"INSERT INTO {THIRD} VALUES (1, 'a, \"quoted\" note', '[1,2,3]'), (2, '', NULL)")

    execute(dsn, create)
    return TableSet(DEFAULT_TABLES.tables + (BackupTable(THIRD, label="note"),))


def rows(dsn: str, table: str) -> list[str]:
    return [row[0] for row in query(dsn, f"SELECT t::text FROM {table} t ORDER BY t::text")]


def test_a_third_table_backs_up_lists_and_restores(store_db, backup_root):
    tables = with_third_table(store_db)
    before = {table: rows(store_db, table) for table in tables.names}
    result = back_up_database(
        store_db, "public", LocalBackupStore(backup_root), "global", TS, BackupOptions(tables=tables)
    )
    assert [t.table for t in result.tables] == [COLLECTION_TABLE, EMBEDDING_TABLE, THIRD]
    backup_set = locate_backup_set(backup_root, timestamp=TS)
    assert backup_set.status == "complete" and backup_set.tables == [COLLECTION_TABLE, EMBEDDING_TABLE, THIRD]
    assert backup_set.rows(THIRD) == 2
    execute(store_db, lambda cur: cur.execute(f"DELETE FROM {THIRD}"))
    restored = restore_backup_set(store_db, "public", backup_set, RestoreFlags(truncate_before_restore=True))
    assert [s.table for s in restored.tables] == [COLLECTION_TABLE, EMBEDDING_TABLE, THIRD]
    assert {table: rows(store_db, table) for table in tables.names} == before


def test_a_set_of_one_table_is_complete_and_restores_that_table(store_db, backup_root):
    only_collections = TableSet((DEFAULT_TABLES.tables[0],))
    back_up_database(
        store_db, "public", LocalBackupStore(backup_root), "global", TS, BackupOptions(tables=only_collections)
    )
    backup_set = locate_backup_set(backup_root, timestamp=TS)
    assert (backup_set.status, backup_set.tables, sorted(backup_set.table_files)) == (
        "complete",
        [COLLECTION_TABLE],
        [COLLECTION_TABLE],
    )
    result = restore_backup_set(store_db, "public", backup_set, RestoreFlags(verify_only=True))
    assert [s.table for s in result.tables] == [COLLECTION_TABLE]
    with pytest.raises(InvalidParams) as refused:
        restore_backup_set(store_db, "public", backup_set, tables=[EMBEDDING_TABLE])
    assert refused.value.message == (
        f"Cannot restore ['{EMBEDDING_TABLE}']: set {TS} holds ['{COLLECTION_TABLE}']; choose from those."
    )


def test_a_set_missing_a_file_its_manifest_lists_is_incomplete(store_db, backup_root):
    result = back_up_database(store_db, "public", LocalBackupStore(backup_root), "global", TS)
    result.table(COLLECTION_TABLE).path.unlink()
    backup_set = locate_backup_set(backup_root, timestamp=TS)
    assert (backup_set.status, backup_set.missing_tables) == ("incomplete", [COLLECTION_TABLE])


def test_a_manifest_may_list_any_plain_identifier_table_but_nothing_else(store_db, backup_root):
    result = back_up_database(store_db, "public", LocalBackupStore(backup_root), "global", TS)
    manifest = json.loads(result.manifest_path.read_text())
    manifest["tables"]["bad-name"] = manifest["tables"].pop(COLLECTION_TABLE)
    result.manifest_path.write_text(json.dumps(manifest))
    backup_set = locate_backup_set(backup_root, timestamp=TS)
    assert backup_set.status == "damaged"
    assert "tables.<key>" in backup_set.problem and "bad-name" not in backup_set.problem


def test_truncating_a_referenced_table_needs_the_tables_that_reference_it():
    with pytest.raises(InvalidParams) as refused:
        check_truncate_tables([COLLECTION_TABLE])
    assert refused.value.message == (
        f"Truncating {COLLECTION_TABLE} alone would break the foreign key from {EMBEDDING_TABLE}. "
        f"Truncate {COLLECTION_TABLE} together with {EMBEDDING_TABLE}, or only {EMBEDDING_TABLE}."
    )
    assert check_truncate_tables([EMBEDDING_TABLE, COLLECTION_TABLE]) == [COLLECTION_TABLE, EMBEDDING_TABLE]
    third = TableSet(DEFAULT_TABLES.tables + (BackupTable(THIRD, label="note"),))
    assert check_truncate_tables([THIRD], third) == [THIRD]
    assert dataclasses.replace(third.tables[1]).references == (COLLECTION_TABLE,)
