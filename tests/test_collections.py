"""Per-collection backups: the set holds the chosen collections and only their embeddings, from one snapshot,
and its manifest records which collections it holds and the embeddings of each."""

import threading
import time

import pytest

from pgvector_pipeline.assets.backup import ASSET_BY_TABLE
from pgvector_pipeline.assets.inventory import inventory_frame
from pgvector_pipeline.contract import PLAIN_RESTORE, RESTORE_JOB, RestoreFlags, restore_run_config
from pgvector_pipeline.definitions import defs
from pgvector_pipeline.errors import DataError, InvalidParams, ResourceNotFound
from pgvector_pipeline.names import COLLECTION_TABLE, EMBEDDING_TABLE
from pgvector_pipeline.operations.backup import BackupOptions, back_up_database
from pgvector_pipeline.operations.restore import restore_backup_set
from pgvector_pipeline.store.codecs import UNCOMPRESSED
from pgvector_pipeline.store.local import LocalBackupStore
from pgvector_pipeline.testing.db import execute, query
from pgvector_pipeline.testing.langchain_tables import insert_sample_store
from tests.helpers import DSN_ENV, RecordingLog, read_csv_rows, recent_timestamp, resources_config, run_backup

PER_COLLECTION = 40


@pytest.fixture
def three_collections(store_db) -> str:
    execute(
        store_db,
        lambda cur: insert_sample_store(
            cur, "public", collections=3, embeddings_per_collection=PER_COLLECTION, dimension=8
        ),
    )
    return store_db


def collection_ids(dsn: str, names: list[str]) -> set[str]:
    return {r[0] for r in query(dsn, "SELECT uuid::text FROM langchain_pg_collection WHERE name = ANY(%s)", (names,))}


def test_a_backup_of_some_collections_holds_only_theirs(three_collections, backup_root):
    chosen = ["sample_collection_0", "sample_collection_2"]
    result = back_up_database(
        three_collections,
        "public",
        LocalBackupStore(backup_root),
        "global",
        None,
        BackupOptions(collections=tuple(chosen), compression=UNCOMPRESSED),
    )

    collections = read_csv_rows(result.table(COLLECTION_TABLE).path)
    embeddings = read_csv_rows(result.table(EMBEDDING_TABLE).path)
    assert sorted(row["name"] for row in collections) == chosen
    assert {row["collection_id"] for row in embeddings} == collection_ids(three_collections, chosen)
    assert (result.table(COLLECTION_TABLE).rows, result.table(EMBEDDING_TABLE).rows) == (2, 2 * PER_COLLECTION)
    listed = LocalBackupStore(backup_root).locate(timestamp=result.timestamp)
    assert listed.manifest.collections.selected == chosen
    assert listed.manifest.collections.embeddings == dict.fromkeys(chosen, PER_COLLECTION)
    assert listed.manifest.embedding_dimensions == {"8": 2 * PER_COLLECTION}

    restore_backup_set(three_collections, "public", listed, RestoreFlags(truncate_before_restore=True))
    assert query(three_collections, "SELECT name FROM langchain_pg_collection ORDER BY 1") == [(n,) for n in chosen]
    assert query(three_collections, "SELECT count(*) FROM langchain_pg_embedding")[0][0] == 2 * PER_COLLECTION


def test_the_filter_holds_inside_parallel_ranges(three_collections, backup_root, small_export_ranges):
    store = LocalBackupStore(backup_root)
    options = dict(collections=("sample_collection_1",), compression=UNCOMPRESSED)
    parallel = back_up_database(three_collections, "public", store, "global", None, BackupOptions(**options))
    alone = back_up_database(
        three_collections, "public", store, "global", None, BackupOptions(export_sessions=1, **options)
    )
    assert parallel.table(EMBEDDING_TABLE).sha256 == alone.table(EMBEDDING_TABLE).sha256
    assert parallel.table(EMBEDDING_TABLE).rows == PER_COLLECTION


def test_a_full_backup_records_every_collection(three_collections, backup_root):
    result = back_up_database(three_collections, "public", LocalBackupStore(backup_root), "global", None)
    manifest = LocalBackupStore(backup_root).locate(timestamp=result.timestamp).manifest
    assert manifest.format == "pgvector-pipeline-backup/4"
    assert manifest.collections.selected is None
    assert manifest.collections.embeddings == {f"sample_collection_{i}": PER_COLLECTION for i in range(3)}


def test_an_unknown_collection_names_those_that_exist_and_writes_nothing(three_collections, backup_root):
    store = LocalBackupStore(backup_root)
    with pytest.raises(ResourceNotFound, match="No collection named 'sample_colection_1'") as missing:
        back_up_database(
            three_collections, "public", store, "global", None, BackupOptions(collections=("sample_colection_1",))
        )
    assert "'sample_collection_0', 'sample_collection_1', 'sample_collection_2'" in missing.value.message
    assert store.list_sets() == []


def test_truncating_after_a_backup_of_some_collections_is_refused():
    with pytest.raises(InvalidParams, match="rows: they would be lost"):
        BackupOptions(collections=("sample_collection_0",), truncate_after_backup=True)


def test_a_backup_run_of_some_collections_shows_them(instance, three_collections, backup_root, monkeypatch):
    monkeypatch.setenv(DSN_ENV, three_collections)
    result = run_backup(instance, backup_root, "global", recent_timestamp(), collections=["sample_collection_1"])
    assert result.success
    event = instance.get_latest_materialization_event(ASSET_BY_TABLE[EMBEDDING_TABLE]).asset_materialization
    assert event.metadata["collections"].value == "chosen: sample_collection_1"
    assert event.metadata["dagster/row_count"].value == PER_COLLECTION
    [row] = event.metadata["embeddings_per_collection"].value.records
    assert row.data == {"collection": "sample_collection_1", "embeddings": PER_COLLECTION}
    [listed] = inventory_frame(LocalBackupStore(backup_root).list_sets(), str(backup_root)).to_dict("records")
    assert listed["collections"] == f"1 chosen: 'sample_collection_1' ({PER_COLLECTION})"

    full = run_backup(instance, backup_root, "global", recent_timestamp_after(listed["timestamp"]))
    assert full.success
    newest = inventory_frame(LocalBackupStore(backup_root).list_sets(), str(backup_root)).to_dict("records")[0]
    assert newest["collections"] == "all (3)"

    refused = run_backup(
        instance,
        backup_root,
        "global",
        recent_timestamp_after(newest["timestamp"]),
        collections=["sample_collection_1"],
        truncate_after_backup=True,
    )
    failure = refused.failure_data_for_node("vector_store_backup").user_failure_data
    assert failure.metadata["error_type"].value == "INVALID_PARAMS" and "would be lost" in failure.description


def recent_timestamp_after(timestamp: str) -> str:
    """A recent timestamp later than `timestamp` (sets are stamped to the second)."""
    while (now := recent_timestamp()) <= timestamp:
        time.sleep(0.2)
    return now


def table_text(dsn: str, collection: str) -> list[str]:
    """A collection's rows (its own and its embeddings') as text, for byte-equal comparisons."""
    return [
        r[0]
        for r in query(
            dsn,
            "SELECT c::text FROM langchain_pg_collection c WHERE c.name = %s "
            "UNION ALL SELECT * FROM (SELECT e::text FROM langchain_pg_embedding e JOIN langchain_pg_collection c "
            "ON e.collection_id = c.uuid WHERE c.name = %s ORDER BY e.id) x",
            (collection, collection),
        )
    ]


def test_replacing_one_collection_leaves_the_others_byte_equal_while_an_app_writes(three_collections, backup_root):
    store = LocalBackupStore(backup_root)
    made = back_up_database(three_collections, "public", store, "global", None)
    backed_up = table_text(three_collections, "sample_collection_1")

    def damage(cur) -> None:  # what a training task might do to one collection
        cur.execute(
            "DELETE FROM langchain_pg_embedding WHERE id IN (SELECT e.id FROM langchain_pg_embedding e JOIN "
            "langchain_pg_collection c ON e.collection_id = c.uuid WHERE c.name = 'sample_collection_1' LIMIT 7)"
        )
        cur.execute(
            "UPDATE langchain_pg_embedding SET document = 'rewritten' WHERE collection_id = "
            "(SELECT uuid FROM langchain_pg_collection WHERE name = 'sample_collection_1')"
        )

    execute(three_collections, damage)
    others = {name: table_text(three_collections, name) for name in ("sample_collection_0", "sample_collection_2")}
    stop, written = threading.Event(), []

    def app_writes() -> None:  # an app keeps adding documents to another collection during the restore
        n = 0
        while not stop.is_set():
            execute(
                three_collections,
                lambda cur, n=n: cur.execute(
                    "INSERT INTO langchain_pg_embedding (id, collection_id, embedding, document) SELECT %s, uuid, "
                    "'[1,2,3,4,5,6,7,8]', 'new' FROM langchain_pg_collection WHERE name = 'sample_collection_2'",
                    (f"app-{n}",),
                ),
            )
            written.append(f"app-{n}")
            n += 1

    writer = threading.Thread(target=app_writes)
    writer.start()
    try:
        result = restore_backup_set(
            three_collections,
            "public",
            store.locate(timestamp=made.timestamp),
            RestoreFlags(replace_collections=True),
            collections=["sample_collection_1"],
        )
    finally:
        stop.set()
        writer.join()
    assert [t.rows_restored for t in result.tables] == [1, PER_COLLECTION]
    assert table_text(three_collections, "sample_collection_1") == backed_up
    assert table_text(three_collections, "sample_collection_0") == others["sample_collection_0"]
    now_2 = table_text(three_collections, "sample_collection_2")
    app_rows = [row for row in now_2 if row.startswith("(app-")]
    assert written and len(app_rows) == len(written)  # every write the app made during the restore is there
    assert [row for row in now_2 if not row.startswith("(app-")] == others["sample_collection_2"]


@pytest.mark.parametrize(
    ("collections", "flags", "words"),
    [
        (["no_such"], RestoreFlags(replace_collections=True), "holds no collection named 'no_such'"),
        (["sample_collection_1"], RestoreFlags(truncate_before_restore=True), "the others would be lost"),
        ([], RestoreFlags(replace_collections=True), "needs the collections to replace"),
    ],
)
def test_collection_restores_that_cannot_work_are_refused_before_anything_changes(
    three_collections, backup_root, collections, flags, words
):
    store = LocalBackupStore(backup_root)
    made = back_up_database(three_collections, "public", store, "global", None)
    before = table_text(three_collections, "sample_collection_1")
    with pytest.raises(InvalidParams, match=words):
        restore_backup_set(
            three_collections, "public", store.locate(timestamp=made.timestamp), flags, collections=collections
        )
    assert table_text(three_collections, "sample_collection_1") == before


def test_the_restore_job_replaces_the_collections_named(instance, three_collections, backup_root, monkeypatch):
    monkeypatch.setenv(DSN_ENV, three_collections)
    made = back_up_database(three_collections, "public", LocalBackupStore(backup_root), "global", None)
    backed_up = table_text(three_collections, "sample_collection_0")
    execute(three_collections, lambda cur: cur.execute("UPDATE langchain_pg_embedding SET document = 'changed'"))
    changed = table_text(three_collections, "sample_collection_2")
    result = defs.resolve_job_def(RESTORE_JOB).execute_in_process(
        instance=instance,
        run_config={
            **restore_run_config(
                "global",
                made.timestamp,
                flags=RestoreFlags(replace_collections=True),
                collections=["sample_collection_0"],
            ),
            **resources_config(),
        },
    )
    assert result.success
    [output] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    metadata = output.event_specific_data.metadata
    assert metadata["collections"].value == "sample_collection_0"
    assert metadata[f"{EMBEDDING_TABLE}.rows_restored"].value == PER_COLLECTION
    assert table_text(three_collections, "sample_collection_0") == backed_up
    assert table_text(three_collections, "sample_collection_2") == changed


def restore_chosen(dsn: str, store, timestamp: str, flags: RestoreFlags = PLAIN_RESTORE, **chosen):
    return restore_backup_set(dsn, "public", store.locate(timestamp=timestamp), flags, **chosen)


def drop_collection(dsn: str, name: str) -> None:
    def drop(cur) -> None:
        cur.execute(
            "DELETE FROM langchain_pg_embedding WHERE collection_id = "
            "(SELECT uuid FROM langchain_pg_collection WHERE name = %s)",
            (name,),
        )
        cur.execute("DELETE FROM langchain_pg_collection WHERE name = %s", (name,))

    execute(dsn, drop)


def test_a_renamed_collection_gets_a_new_key_and_its_embeddings_follow(three_collections, backup_root):
    store = LocalBackupStore(backup_root)
    made = back_up_database(three_collections, "public", store, "global", None)
    [(old_key,)] = query(
        three_collections, "SELECT uuid::text FROM langchain_pg_collection WHERE name = 'sample_collection_1'"
    )
    original = query(
        three_collections,
        "SELECT id, document FROM langchain_pg_embedding WHERE collection_id = %s ORDER BY id",
        (old_key,),
    )

    # Its embeddings keep their ids: with the original still there they would collide.
    with pytest.raises(DataError, match="ids of the embeddings being restored"):
        restore_chosen(three_collections, store, made.timestamp, rename={"sample_collection_1": "tenant_b"})
    assert query(three_collections, "SELECT count(*) FROM langchain_pg_collection")[0][0] == 3

    drop_collection(three_collections, "sample_collection_1")
    result = restore_chosen(three_collections, store, made.timestamp, rename={"sample_collection_1": "tenant_b"})
    assert [t.rows_restored for t in result.tables] == [1, PER_COLLECTION]
    [(new_key,)] = query(three_collections, "SELECT uuid::text FROM langchain_pg_collection WHERE name = 'tenant_b'")
    assert new_key != old_key
    assert (
        query(
            three_collections,
            "SELECT id, document FROM langchain_pg_embedding WHERE collection_id = %s ORDER BY id",
            (new_key,),
        )
        == original
    )

    # A name the target holds is refused unless replacing; replacing swaps the collection in place.
    with pytest.raises(DataError, match="The target already holds 'tenant_b'. Set replace_collections"):
        restore_chosen(three_collections, store, made.timestamp, rename={"sample_collection_1": "tenant_b"})
    replaced = restore_chosen(
        three_collections,
        store,
        made.timestamp,
        RestoreFlags(replace_collections=True),
        rename={"sample_collection_1": "tenant_b"},
    )
    assert [t.rows_restored for t in replaced.tables] == [1, PER_COLLECTION]
    assert query(three_collections, "SELECT count(*) FROM langchain_pg_collection")[0][0] == 3


def test_the_same_key_under_another_name_is_a_clear_error(three_collections, backup_root):
    store = LocalBackupStore(backup_root)
    made = back_up_database(three_collections, "public", store, "global", None)
    execute(
        three_collections,
        lambda cur: cur.execute("UPDATE langchain_pg_collection SET name = 'moved' WHERE name = 'sample_collection_1'"),
    )
    with pytest.raises(DataError, match="keys \\(uuid\\) of the collections being restored"):
        restore_chosen(three_collections, store, made.timestamp, collections=["sample_collection_1"])


@pytest.mark.parametrize(
    ("rename", "collections", "words"),
    [
        ({"sample_collection_1": "x"}, ["sample_collection_0"], "which collections does not restore"),
        (
            {"sample_collection_1": "sample_collection_0"},
            ["sample_collection_0", "sample_collection_1"],
            "would name two",
        ),
        ({"sample_collection_1": " "}, [], "empty new name"),
    ],
)
def test_renames_that_cannot_work_are_refused(three_collections, backup_root, rename, collections, words):
    store = LocalBackupStore(backup_root)
    made = back_up_database(three_collections, "public", store, "global", None)
    with pytest.raises(InvalidParams, match=words):
        restore_chosen(three_collections, store, made.timestamp, collections=collections, rename=rename)


def test_the_restore_job_renames(instance, three_collections, backup_root, monkeypatch):
    monkeypatch.setenv(DSN_ENV, three_collections)
    made = back_up_database(three_collections, "public", LocalBackupStore(backup_root), "global", None)
    drop_collection(three_collections, "sample_collection_2")
    result = defs.resolve_job_def(RESTORE_JOB).execute_in_process(
        instance=instance,
        run_config={
            **restore_run_config("global", made.timestamp, rename={"sample_collection_2": "archive_2"}),
            **resources_config(),
        },
    )
    assert result.success
    [output] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    assert output.event_specific_data.metadata["renamed"].value == "sample_collection_2 -> archive_2"
    assert query(three_collections, "SELECT name FROM langchain_pg_collection ORDER BY 1") == [
        ("archive_2",),
        ("sample_collection_0",),
        ("sample_collection_1",),
    ]


def test_a_set_of_just_the_collections_restored_loads_without_staging(three_collections, backup_root):
    store = LocalBackupStore(backup_root)
    made = back_up_database(
        three_collections, "public", store, "global", None, BackupOptions(collections=("sample_collection_1",))
    )
    backed_up = table_text(three_collections, "sample_collection_1")
    execute(three_collections, lambda cur: cur.execute("UPDATE langchain_pg_embedding SET document = 'changed'"))
    others = {n: table_text(three_collections, n) for n in ("sample_collection_0", "sample_collection_2")}
    log = RecordingLog()
    result = restore_chosen(
        three_collections,
        store,
        made.timestamp,
        RestoreFlags(replace_collections=True),
        collections=["sample_collection_1"],
        log=log,
    )
    assert [t.rows_restored for t in result.tables] == [1, PER_COLLECTION]
    assert sum("loading straight into the table" in line for line in log.infos) == 2
    assert table_text(three_collections, "sample_collection_1") == backed_up
    assert {n: table_text(three_collections, n) for n in others} == others

    # Its key under another name is still a clear error on this path.
    execute(
        three_collections,
        lambda cur: cur.execute("UPDATE langchain_pg_collection SET name = 'moved' WHERE name = 'sample_collection_1'"),
    )
    with pytest.raises(DataError, match="keys \\(uuid\\) of the collections being restored"):
        restore_chosen(three_collections, store, made.timestamp, collections=["sample_collection_1"])
