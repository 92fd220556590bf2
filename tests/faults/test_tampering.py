"""Sets whose manifest was deleted, or whose files changed after adoption, are never restored silently."""

import re
import shutil
from pathlib import Path

import pytest

from pgvector_pipeline.contract import RestoreFlags
from pgvector_pipeline.errors import DataError
from pgvector_pipeline.names import EMBEDDING_TABLE
from pgvector_pipeline.operations.backup import back_up_database
from pgvector_pipeline.operations.restore import restore_backup_set
from pgvector_pipeline.store.layout import GLOBAL_TASK_KEY, LOG_FILE_NAME
from pgvector_pipeline.store.local import LocalBackupStore, locate_backup_set
from pgvector_pipeline.testing.db import execute, query
from pgvector_pipeline.testing.langchain_tables import insert_sample_store
from tests.helpers import PLAIN_CSV, flip_a_digit, set_files

TS = "20261124_130000"
LEGACY_FIXTURE = Path(__file__).parents[1] / "fixtures" / "legacy_root" / "task_legacy"
LEGACY_TS = "20250101_120000"


def contents(dsn: str) -> list[tuple]:
    return query(dsn, "SELECT t::text FROM langchain_pg_embedding t ORDER BY 1")


def cut_after_three_quarters(data: bytes) -> bytes:
    lines = data.split(b"\n")
    return b"\n".join(lines[: len(lines) * 3 // 4]) + b"\n"


def header_only(data: bytes) -> bytes:
    return data.split(b"\n", 1)[0] + b"\n"


def swap_header_names(data: bytes) -> bytes:
    header, rest = data.split(b"\n", 1)
    return header.replace(b"id,", b"@@,").replace(b"document", b"id").replace(b"@@,", b"document,") + b"\n" + rest


@pytest.fixture
def backed_up(store_db, backup_root):
    execute(
        store_db,
        lambda cur: insert_sample_store(cur, "public", collections=1, embeddings_per_collection=1000, dimension=8),
    )
    # Plain CSVs: the tampering below edits a CSV's bytes (compressed files: tests/test_compression.py).
    result = back_up_database(store_db, "public", LocalBackupStore(backup_root), GLOBAL_TASK_KEY, TS, PLAIN_CSV)
    return store_db, result


@pytest.mark.parametrize("tamper", [flip_a_digit, cut_after_three_quarters, header_only, swap_header_names])
def test_set_whose_manifest_was_deleted_is_refused(backed_up, backup_root, tamper):
    dsn, result = backed_up
    path = result.table(EMBEDDING_TABLE).path
    path.write_bytes(tamper(path.read_bytes()))
    result.manifest_path.unlink()
    before = contents(dsn)

    backup_set = locate_backup_set(backup_root, timestamp=TS)

    assert backup_set.status == "damaged" and not backup_set.complete
    for allow_legacy in (False, True):
        with pytest.raises(DataError) as failure:
            restore_backup_set(
                dsn, "public", backup_set, RestoreFlags(truncate_before_restore=True, allow_legacy=allow_legacy)
            )
        assert (
            f"records that this tool wrote set {TS} with manifest vector_backup_{TS}.json, and that manifest is gone"
            in failure.value.message
        )
    assert contents(dsn) == before


def test_set_without_manifest_or_log_needs_allow_legacy(backed_up, backup_root):
    dsn, result = backed_up
    result.manifest_path.unlink()
    (result.directory / LOG_FILE_NAME).unlink()
    backup_set = locate_backup_set(backup_root, timestamp=TS)
    assert backup_set.status == "legacy"

    with pytest.raises(DataError, match="has no manifest, so nothing can verify its files"):
        restore_backup_set(dsn, "public", backup_set, RestoreFlags(truncate_before_restore=True))
    restored = restore_backup_set(
        dsn, "public", backup_set, RestoreFlags(truncate_before_restore=True, allow_legacy=True)
    )
    assert [s.rows_restored for s in restored.tables] == [1, 1000]


def test_adopted_set_catches_damage_done_after_adoption(store_db, backup_root):
    shutil.copytree(LEGACY_FIXTURE, backup_root / "task_legacy")
    legacy = locate_backup_set(backup_root, task_id="task_legacy", timestamp=LEGACY_TS)
    manifest = legacy.store.adopt(legacy)
    assert manifest.adopted and manifest.tables[EMBEDDING_TABLE].rows == 8
    adopted = locate_backup_set(backup_root, task_id="task_legacy", timestamp=LEGACY_TS)
    assert adopted.status == "complete"

    path = set_files(adopted)[EMBEDDING_TABLE]
    path.write_bytes(re.sub(rb"custom|tricky", b"XXXXXX", path.read_bytes()) + b"e9,,,,\n")
    with pytest.raises(DataError, match="does not match its manifest"):
        restore_backup_set(store_db, "public", adopted)
    assert contents(store_db) == []


def test_a_table_added_to_a_manifest_that_no_backup_takes_is_refused_and_nothing_restored(backed_up, backup_root):
    """A crafted set: an app's table without vectors added to a real set's manifest, with a correct sha256."""
    import hashlib
    import json

    from pgvector_pipeline.store.layout import csv_name

    dsn, result = backed_up
    execute(
        dsn,
        lambda cur: cur.execute(
            "CREATE TABLE app_users (id int PRIMARY KEY, name text); INSERT INTO app_users VALUES (1, 'alice')"
        ),
    )
    data = b"id,name\n666,mallory\n"
    file_name = csv_name("app_users", TS, "none")
    (result.manifest_path.parent / file_name).write_bytes(data)
    manifest = json.loads(result.manifest_path.read_text())
    digest = hashlib.sha256(data).hexdigest()
    manifest["tables"]["app_users"] = {
        **manifest["tables"][EMBEDDING_TABLE],
        "file": file_name,
        "rows": 1,
        "bytes": len(data),
        "sha256": digest,
        "stored_bytes": len(data),
        "stored_sha256": digest,
        "columns": [
            {"name": "id", "type": "integer", "not_null": True},
            {"name": "name", "type": "text", "not_null": False},
        ],
        "create_table": "CREATE TABLE app_users (id integer NOT NULL, name text)",
        "indexes": [],
        "references": [],
    }
    result.manifest_path.write_text(json.dumps(manifest))
    backup_set = LocalBackupStore(backup_root).locate(timestamp=TS)
    before = contents(dsn)

    with pytest.raises(DataError, match=r"The set holds app_users, which in schema public has no vector"):
        restore_backup_set(dsn, "public", backup_set, RestoreFlags(truncate_before_restore=True))

    assert query(dsn, "SELECT id, name FROM app_users") == [(1, "alice")]
    assert contents(dsn) == before
