"""Binary sets (issue 34) in every restore mode and path: chosen collections (replacing, renamed, a set of just them),
appending, verify_only, extra columns, json and jsonb, vector(n), the drill and `verify`, copies to S3 and back,
listing, the checks, retention, a set that lost its manifest, and a restore through `--direct`. Each set is a binary
one: zstd (the default codec) unless a test says gzip or none. (Crafted and damaged files: tests/test_binary_damage.py;
the suites that run over both formats: test_migration, test_any_table, test_restore, test_generated_columns.)"""

import json

import pytest

from pgvector_pipeline.contract import PLAIN_RESTORE, RestoreFlags
from pgvector_pipeline.errors import DataError
from pgvector_pipeline.names import COLLECTION_TABLE, EMBEDDING_TABLE
from pgvector_pipeline.operations.backup import BackupOptions
from pgvector_pipeline.operations.copy import copy_set
from pgvector_pipeline.operations.drill import restore_drill
from pgvector_pipeline.operations.restore import restore_backup_set
from pgvector_pipeline.operations.set_checks import check_files_and_embeddings
from pgvector_pipeline.set_formats import BINARY
from pgvector_pipeline.store.codecs import GZIP, Compression
from pgvector_pipeline.store.layout import LOG_FILE_NAME
from pgvector_pipeline.store.local import LocalBackupStore
from pgvector_pipeline.store.roots import BACKUP_ROOT_ENV
from pgvector_pipeline.store.s3 import S3BackupStore
from pgvector_pipeline.store.s3_client import S3Root
from pgvector_pipeline.testing.db import execute, query
from tests.binary_helpers import BINARY_GZIP, BINARY_PLAIN, BINARY_ZSTD, TABLES, backed_up, make_tricky_store, rows
from tests.helpers import (
    DSN_ENV,
    RecordingLog,
    direct,
    manifest_path,
    retain_newest,
    set_directory,
    set_files,
)


def collection_rows(dsn: str, name: str) -> list[str]:
    """A collection's own row and its embeddings' rows, as text (with the collection's key, which a rename changes)."""
    return [
        r[0]
        for r in query(
            dsn,
            "SELECT c::text FROM langchain_pg_collection c WHERE c.name = %s UNION ALL SELECT * FROM (SELECT e::text "
            "FROM langchain_pg_embedding e JOIN langchain_pg_collection c ON e.collection_id = c.uuid WHERE c.name = %s "
            "ORDER BY e.id) x",
            (name, name),
        )
    ]


@pytest.fixture
def tricky_db(empty_db) -> str:
    return make_tricky_store(empty_db)


def embeddings_of(dsn: str, name: str) -> list[tuple]:
    """A collection's embeddings without their collection key."""
    return query(
        dsn,
        "SELECT e.id, e.embedding::text, e.document, e.cmetadata::text FROM langchain_pg_embedding e "
        "JOIN langchain_pg_collection c ON e.collection_id = c.uuid WHERE c.name = %s ORDER BY e.id",
        (name,),
    )


@pytest.mark.parametrize("options", [BINARY_ZSTD, BINARY_GZIP], ids=["zstd", "gzip"])
def test_chosen_collections_replace_theirs_and_leave_the_others_byte_equal(tricky_db, backup_root, options):
    backup_set = backed_up(tricky_db, backup_root, options)
    assert backup_set.manifest.binary
    tricky, other = collection_rows(tricky_db, "tricky"), collection_rows(tricky_db, "no metadata")
    execute(
        tricky_db,
        lambda cur: cur.execute(
            "DELETE FROM langchain_pg_embedding WHERE id IN ('e0', 'e3'); "
            "UPDATE langchain_pg_embedding SET document = 'changed', cmetadata = '{}'"
        ),
    )
    changed_other = collection_rows(tricky_db, "no metadata")

    result = restore_backup_set(
        tricky_db, "public", backup_set, RestoreFlags(replace_collections=True), collections=["tricky"]
    )

    assert [t.rows_restored for t in result.tables] == [1, 6]
    assert collection_rows(tricky_db, "tricky") == tricky
    assert collection_rows(tricky_db, "no metadata") == changed_other != other


def test_a_binary_set_of_just_the_collections_restored_loads_straight(tricky_db, backup_root):
    backup_set = backed_up(
        tricky_db, backup_root, BackupOptions(set_format=BINARY, compression=Compression(GZIP), collections=("tricky",))
    )
    tricky = collection_rows(tricky_db, "tricky")
    execute(tricky_db, lambda cur: cur.execute("UPDATE langchain_pg_embedding SET document = 'changed'"))
    other = collection_rows(tricky_db, "no metadata")
    log = RecordingLog()

    restore_backup_set(
        tricky_db, "public", backup_set, RestoreFlags(replace_collections=True), collections=["tricky"], log=log
    )

    assert sum("loading straight into the table" in line for line in log.infos) == 2
    assert collection_rows(tricky_db, "tricky") == tricky
    assert collection_rows(tricky_db, "no metadata") == other


def test_a_renamed_collection_of_a_binary_set_gets_a_new_key_and_its_embeddings(tricky_db, backup_root):
    backup_set = backed_up(tricky_db, backup_root)
    embeddings = embeddings_of(tricky_db, "no metadata")
    [(old_key,)] = query(tricky_db, "SELECT uuid::text FROM langchain_pg_collection WHERE name = 'no metadata'")
    execute(
        tricky_db, lambda cur: cur.execute("DELETE FROM langchain_pg_embedding WHERE id IN ('other-dim', 'no-vector')")
    )

    result = restore_backup_set(tricky_db, "public", backup_set, rename={"no metadata": "archive"})

    assert [t.rows_restored for t in result.tables] == [1, 2]
    assert embeddings_of(tricky_db, "archive") == embeddings
    [(new_key,)] = query(tricky_db, "SELECT uuid::text FROM langchain_pg_collection WHERE name = 'archive'")
    assert new_key != old_key


def test_a_binary_set_appends_and_verify_only_rolls_everything_back(tricky_db, backup_root):
    backup_set = backed_up(tricky_db, backup_root, BINARY_PLAIN)
    before = rows(tricky_db)
    execute(tricky_db, lambda cur: cur.execute("DELETE FROM langchain_pg_embedding"))
    emptied = rows(tricky_db)

    for flags in (RestoreFlags(verify_only=True), RestoreFlags(verify_only=True, truncate_before_restore=True)):
        checked = restore_backup_set(tricky_db, "public", backup_set, flags, tables=[EMBEDDING_TABLE])
        assert [t.rows_restored for t in checked.tables] == [8]
        assert rows(tricky_db) == emptied

    restore_backup_set(tricky_db, "public", backup_set, PLAIN_RESTORE, tables=[EMBEDDING_TABLE])
    assert rows(tricky_db) == before


def test_a_binary_set_fills_columns_the_set_lacks(tricky_db, backup_root):
    backup_set = backed_up(tricky_db, backup_root)
    before = rows(tricky_db)
    execute(
        tricky_db,
        lambda cur: cur.execute(
            "ALTER TABLE langchain_pg_embedding ADD COLUMN added integer DEFAULT 7; "
            "TRUNCATE langchain_pg_embedding, langchain_pg_collection"
        ),
    )

    restore_backup_set(tricky_db, "public", backup_set, RestoreFlags(fill_extra_columns=True))

    assert query(tricky_db, "SELECT DISTINCT added FROM langchain_pg_embedding") == [(7,)]
    execute(tricky_db, lambda cur: cur.execute("ALTER TABLE langchain_pg_embedding DROP COLUMN added"))
    assert rows(tricky_db) == before


def test_the_drill_of_a_binary_set_digests_what_the_live_tables_and_a_csv_set_hold(tricky_db, backup_root):
    binary = backed_up(tricky_db, backup_root)
    csv = backed_up(tricky_db, backup_root, BackupOptions())
    before = rows(tricky_db)

    drilled = restore_drill(tricky_db, "public", binary, True, RecordingLog())
    as_csv = restore_drill(tricky_db, "public", csv, True, RecordingLog())

    assert drilled.passed and drilled.live_equal is True
    assert [(t.table, t.restored_rows, t.live_equal) for t in drilled.tables] == [
        (COLLECTION_TABLE, 2, True),
        (EMBEDDING_TABLE, 8, True),
    ]
    assert [t.restored_digest for t in drilled.tables] == [t.restored_digest for t in as_csv.tables]
    assert [t.restored_digest for t in drilled.tables] == [t.live_digest for t in drilled.tables]
    assert rows(tricky_db) == before


def test_verify_of_a_binary_set_from_the_shell_and_a_direct_restore(tricky_db, backup_root):
    binary = backed_up(tricky_db, backup_root, BINARY_GZIP)
    before = rows(tricky_db)
    env = {DSN_ENV: tricky_db, BACKUP_ROOT_ENV: str(backup_root)}

    same = direct("verify", env=env)
    assert same.returncode == 0, same.stderr
    assert json.loads(same.stdout)["live_equal"] is True

    execute(tricky_db, lambda cur: cur.execute("UPDATE langchain_pg_embedding SET document = 'changed'"))
    restored = direct("restore", "--timestamp", binary.timestamp, "--truncate", env=env)
    assert restored.returncode == 0, restored.stderr
    assert rows(tricky_db) == before


def test_a_binary_set_copies_to_s3_and_back_byte_for_byte_and_restores_from_either(
    tricky_db, backup_root, tmp_path, s3_server, s3_bucket
):
    local = LocalBackupStore(backup_root)
    source = backed_up(tricky_db, backup_root)
    offsite_store = S3BackupStore(s3_server.client(), S3Root(s3_bucket, "offsite"))

    copy_set(source, offsite_store)
    offsite = offsite_store.locate(timestamp=source.timestamp)
    assert offsite.status == "complete" and offsite.manifest == source.manifest
    assert offsite.table_files == source.table_files
    assert offsite.table_files[EMBEDDING_TABLE] == f"{EMBEDDING_TABLE}_{source.timestamp}.pgcopy.zst"
    key = offsite_store.location_key("global", offsite.table_files[EMBEDDING_TABLE])
    stored = offsite_store.client.get_object(Bucket=s3_bucket, Key=key)["Body"].read()
    assert stored == (local.set_directory(source) / source.table_files[EMBEDDING_TABLE]).read_bytes()

    before = rows(tricky_db)
    execute(tricky_db, lambda cur: cur.execute("TRUNCATE langchain_pg_embedding, langchain_pg_collection"))
    restore_backup_set(tricky_db, "public", offsite)
    assert rows(tricky_db) == before

    elsewhere = LocalBackupStore(tmp_path / "restored_host")
    copy_set(offsite, elsewhere)
    back = elsewhere.locate(timestamp=source.timestamp)
    assert back.manifest == source.manifest and back.table_files == source.table_files
    restore_backup_set(tricky_db, "public", back, RestoreFlags(truncate_before_restore=True))
    assert rows(tricky_db) == before


def test_json_and_jsonb_targets_take_a_binary_sets_jsonb_and_json(tricky_db, backup_root):
    backup_set = backed_up(tricky_db, backup_root)
    assert [c.type for c in backup_set.manifest.tables[COLLECTION_TABLE].columns if c.name == "cmetadata"] == ["json"]
    metadata = query(
        tricky_db,
        "SELECT c.cmetadata::jsonb::text, e.cmetadata::text FROM langchain_pg_embedding e JOIN langchain_pg_collection c "
        "ON e.collection_id = c.uuid ORDER BY e.id",
    )
    execute(
        tricky_db,
        lambda cur: cur.execute(
            "TRUNCATE langchain_pg_embedding, langchain_pg_collection; DROP INDEX IF EXISTS ix_cmetadata_gin; "
            "ALTER TABLE langchain_pg_collection ALTER cmetadata TYPE jsonb; "
            "ALTER TABLE langchain_pg_embedding ALTER cmetadata TYPE json"
        ),
    )

    restore_backup_set(tricky_db, "public", backup_set)

    assert (
        query(
            tricky_db,
            "SELECT c.cmetadata::text, e.cmetadata::jsonb::text FROM langchain_pg_embedding e JOIN "
            "langchain_pg_collection c ON e.collection_id = c.uuid ORDER BY e.id",
        )
        == metadata
    )


def test_a_vector_n_target_takes_a_vector_sets_rows_of_its_dimension_and_refuses_others(tricky_db, backup_root):
    backup_set = backed_up(tricky_db, backup_root)
    before = rows(tricky_db)
    execute(
        tricky_db,
        lambda cur: cur.execute(
            "DELETE FROM langchain_pg_embedding WHERE id = 'other-dim'; "
            "ALTER TABLE langchain_pg_embedding ALTER embedding TYPE vector(3)"
        ),
    )
    kept = rows(tricky_db)

    with pytest.raises(DataError) as refused:
        restore_backup_set(tricky_db, "public", backup_set, RestoreFlags(truncate_before_restore=True))
    assert refused.value.message.startswith(
        "PostgreSQL rejected the data while restoring langchain_pg_embedding: expected 3 dimensions, not 5"
    )
    assert rows(tricky_db) == kept

    execute(tricky_db, lambda cur: cur.execute("ALTER TABLE langchain_pg_embedding ALTER embedding TYPE vector"))
    restore_backup_set(tricky_db, "public", backup_set, RestoreFlags(truncate_before_restore=True))
    assert rows(tricky_db) == before


def test_binary_sets_list_check_and_go_by_retention_with_every_file(tricky_db, backup_root):
    store = LocalBackupStore(backup_root)
    made = [backed_up(tricky_db, backup_root, options) for options in (BINARY_PLAIN, BINARY_GZIP, BINARY_ZSTD)]
    plain, gzip, newest = (store.locate(timestamp=s.timestamp) for s in made)

    listed = store.list_sets()
    assert [s.timestamp for s in listed] == [newest.timestamp, gzip.timestamp, plain.timestamp]
    assert [(s.status, s.codecs[EMBEDDING_TABLE], s.rows(EMBEDDING_TABLE)) for s in listed] == [
        ("complete", "zstd", 8),
        ("complete", "gzip", 8),
        ("complete", "none", 8),
    ]
    assert sorted(set_files(plain)[t].name for t in TABLES) == [f"{table}_{plain.timestamp}.pgcopy" for table in TABLES]
    assert plain.sizes == {t: set_files(plain)[t].stat().st_size for t in TABLES}
    for backup_set in (plain, gzip):
        files, vectors = check_files_and_embeddings(backup_set)
        assert (files.passed, vectors.passed) == (True, True), (files.description, vectors.description)
        assert vectors.metadata["vectors"] == 7  # one embedding is NULL

    path = set_files(gzip)[EMBEDDING_TABLE]
    data = path.read_bytes()
    path.write_bytes(data[:-12] + bytes([data[-12] ^ 1]) + data[-11:])
    files, _ = check_files_and_embeddings(gzip)
    assert not files.passed and f"{path.name} does not match its manifest" in files.description
    assert store.locate(timestamp=gzip.timestamp).status == "damaged"

    log = RecordingLog()
    deleted = retain_newest(backup_root, 1, log)
    assert sorted(s.timestamp for s in deleted.deleted) == sorted([plain.timestamp, gzip.timestamp])
    assert sorted(p.name for p in set_directory(newest).iterdir() if "vector_backup_log" not in p.name) == sorted(
        [*(f"{table}_{newest.timestamp}.pgcopy.zst" for table in TABLES), f"vector_backup_{newest.timestamp}.json"]
    )


def test_binary_files_without_their_manifest_are_a_damaged_set_not_an_old_systems(tricky_db, backup_root):
    store = LocalBackupStore(backup_root)
    for options in (BINARY_PLAIN, BINARY_ZSTD):
        backup_set = backed_up(tricky_db, backup_root, options)
        manifest_path(backup_set).unlink()
        (set_directory(backup_set) / LOG_FILE_NAME).unlink(missing_ok=True)  # copied without it, say
        lost = store.locate(timestamp=backup_set.timestamp)
        assert (lost.status, lost.complete) == ("damaged", False)
        names = ", ".join(sorted(backup_set.table_files.values()))
        assert lost.problem == (
            f"{lost.location} holds {names} of set {lost.timestamp} but not its manifest "
            f"vector_backup_{lost.timestamp}.json: binary COPY files are written by this tool alone, with a manifest "
            f"that records each column's type; without it they can be neither verified nor restored, so the set is "
            f"treated as damaged."
        )
        with pytest.raises(DataError, match="not a legacy set"):
            store.adopt(lost)
        with pytest.raises(DataError, match="binary COPY files are written by this tool alone"):
            restore_backup_set(tricky_db, "public", lost, RestoreFlags(allow_legacy=True))
