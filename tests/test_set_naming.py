"""Naming a set: `latest` for the newest complete set of a task (store.naming, through every store's `locate`), and a
request's mistyped task id, timestamp, table or collection refused before launch with the nearest names
(named_set.check_named_set). Each store test runs on a local directory and on S3 (a real SeaweedFS server)."""

import pytest

from pgvector_pipeline.contract import RestoreFlags
from pgvector_pipeline.errors import InvalidParams, ResourceNotFound
from pgvector_pipeline.names import COLLECTION_TABLE, EMBEDDING_TABLE
from pgvector_pipeline.operations.backup import BackupOptions, back_up_database
from pgvector_pipeline.operations.named_set import check_named_set
from pgvector_pipeline.operations.restore import check_restore_collections, check_restore_tables
from pgvector_pipeline.store.codecs import NONE, Compression
from pgvector_pipeline.store.naming import LATEST, latest_note, validate_set_timestamp
from tests.helpers import recent_timestamps
from tests.stores import make_store


@pytest.fixture
def filled_db(empty_db) -> str:
    make_store(empty_db, "langchain_postgres")
    return empty_db


def back_up(dsn, store, timestamp, task="global", **options):
    """A set of plain CSVs (as the old system wrote, so that taking its manifest away makes it a legacy set)."""
    return back_up_database(
        dsn, "public", store, task, timestamp, BackupOptions(compression=Compression(NONE), **options)
    )


def test_latest_passes_timestamp_validation_and_nothing_else_does():
    assert validate_set_timestamp(LATEST) == LATEST
    assert validate_set_timestamp("20261124_101500") == "20261124_101500"
    for wrong in ("Latest", "latest ", "20261124_1015", "newest"):
        with pytest.raises(InvalidParams, match="or 'latest' for the newest complete set"):
            validate_set_timestamp(wrong)


def test_latest_is_the_newest_complete_set_never_a_damaged_unfinished_or_legacy_one(filled_db, any_store):
    writing, damaged, legacy, good, old = recent_timestamps(5)
    for timestamp in (old, good, legacy, damaged):  # oldest first: names and snapshot times agree
        back_up(filled_db, any_store, timestamp)
    assert any_store.locate(timestamp=LATEST).timestamp == damaged
    any_store.mark_damaged(any_store.locate(timestamp=damaged), "a test says so", print)
    strip_manifest_of_task(any_store, "global", legacy)
    with any_store.new_set("global", writing):  # claimed: being written now
        statuses = {s.timestamp: s.status for s in any_store.list_sets()}
        assert statuses == {
            writing: "unfinished",
            damaged: "damaged",
            legacy: "legacy",
            good: "complete",
            old: "complete",
        }
        chosen = any_store.locate(task_id="global", timestamp=LATEST)
    assert chosen.timestamp == good
    assert latest_note(chosen).startswith(f"'latest' is set {good} in {any_store.location('global')}, taken at ")


def test_latest_without_a_complete_set_names_the_location_and_what_is_there(filled_db, any_store):
    with pytest.raises(ResourceNotFound) as none:
        any_store.locate(task_id="global", timestamp=LATEST)
    assert none.value.message == (
        f"No complete backup set in {any_store.location('global')} for 'latest' (no sets). Back up first, or "
        f"name another task."
    )
    made = back_up(filled_db, any_store, None, task="task_7", create_task_dir=True)
    strip_manifest_of_task(any_store, "task_7", made.timestamp)
    with pytest.raises(ResourceNotFound) as only_legacy:
        any_store.locate(task_id="task_7", timestamp=LATEST)
    assert only_legacy.value.message == (
        f"No complete backup set in {any_store.location('task_7')} for 'latest' (1 legacy). The newest old-system "
        f"set without a manifest is {made.timestamp}: name it by its timestamp (it restores with allow_legacy), or "
        f"let backup_discovery_sensor adopt it."
    )


def strip_manifest_of_task(store, task, timestamp):
    """A task's set as the old system would have left it (its CSVs only)."""
    from pgvector_pipeline.store.layout import LOG_FILE_NAME, manifest_name

    if hasattr(store, "client"):
        for item in list(store.objects(store.location_key(task))):
            if item["Key"].endswith(manifest_name(timestamp)) or "/vector_backup_log/" in item["Key"]:
                store.client.delete_object(Bucket=store.root.bucket, Key=item["Key"])
    else:
        from pathlib import Path

        location = Path(store.location(task))
        (location / manifest_name(timestamp)).unlink()
        (location / LOG_FILE_NAME).unlink()


def test_a_mistyped_name_is_refused_with_the_nearest_ones(filled_db, any_store):
    older, newer = recent_timestamps(2)[::-1]
    back_up(filled_db, any_store, older, task="task_7", create_task_dir=True)
    back_up(filled_db, any_store, newer, task="task_7")
    where = any_store.location("task_7")

    with pytest.raises(InvalidParams) as short:
        check_named_set(any_store, "task_7", newer[:-2])
    assert short.value.message.startswith(f"No set {newer[:-2]} in {where}; nearest: {newer}")
    assert short.value.message.endswith(
        ". Name a set by its timestamp (YYYYMMDD_HHMMSS), or 'latest' for the newest complete set."
    )

    with pytest.raises(InvalidParams) as typo_task:
        check_named_set(any_store, "task_77", LATEST)
    assert typo_task.value.message == (
        f"No task 'task_77' in {any_store.where}; nearest: task_7. List the tasks (vector_backup_inventory) and name "
        f"one of them, or 'global'."
    )
    # One digit off the newer set and never the older's last digit (older ..59, newer ..00: ..09 would be nearer it).
    missing = newer[:-1] + next(d for d in "9876" if d not in (newer[-1], older[-1]))
    with pytest.raises(InvalidParams) as typo_timestamp:
        check_named_set(any_store, "task_7", missing)
    assert typo_timestamp.value.message.startswith(f"No set {missing} in {where}; nearest: {newer}")
    with pytest.raises(InvalidParams) as typo_table:
        check_named_set(any_store, "task_7", newer, ["langchain_pg_embeding"])
    assert typo_table.value.message == (
        f"Cannot restore ['langchain_pg_embeding'] (nearest: {EMBEDDING_TABLE}): set {newer} holds "
        f"['{COLLECTION_TABLE}', '{EMBEDDING_TABLE}']; choose from those."
    )
    with pytest.raises(InvalidParams) as typo_collection:
        check_named_set(any_store, "task_7", LATEST, None, ["trick"])
    assert typo_collection.value.message == (
        f"Set {newer} holds no collection named 'trick' (nearest: 'tricky'); it holds 'no metadata', 'tricky'. "
        f"Nothing was changed."
    )
    chosen = check_named_set(any_store, "task_7", LATEST, [EMBEDDING_TABLE, COLLECTION_TABLE], ["tricky"])
    assert (chosen.task, chosen.timestamp) == ("task_7", newer)
    with pytest.raises(ResourceNotFound, match="No complete backup set in .* for 'latest' \\(no sets\\)"):
        check_named_set(any_store, None, LATEST)


def test_the_restore_itself_says_the_nearest_table_and_collection(filled_db, any_store):
    made = back_up(filled_db, any_store, None)
    backup_set = any_store.locate(timestamp=made.timestamp)
    with pytest.raises(InvalidParams, match=r"\(nearest: langchain_pg_collection\)"):
        check_restore_tables(backup_set, ["langchain_pg_colection"])
    with pytest.raises(InvalidParams, match=r"\(nearest: 'no metadata'\)"):
        check_restore_collections(backup_set, [COLLECTION_TABLE, EMBEDDING_TABLE], ["no metadat"], RestoreFlags())


def test_listed_records_are_matched_as_the_store_matches_its_sets(filled_db, any_store):
    """What a client sees (the inventory's records, as they travel in JSON) names and refuses sets with the same words
    as the store itself: the same set for `latest`, the same nearest names for each kind of typo."""
    import json

    from pgvector_pipeline.operations.named_set import check_listed_set
    from pgvector_pipeline.store.backup_set_info import set_record

    older, newer = recent_timestamps(2)[::-1]
    back_up(filled_db, any_store, older, task="task_7", create_task_dir=True)
    back_up(filled_db, any_store, newer, task="task_7")
    records = [json.loads(json.dumps(set_record(s, any_store.where))) for s in any_store.list_sets()]

    chosen = check_listed_set(records, any_store.where, "task_7", LATEST, [EMBEDDING_TABLE], ["tricky"])
    assert (chosen.task, chosen.timestamp, chosen.location) == ("task_7", newer, any_store.location("task_7"))
    missing = "2020" + newer[4:]  # neither set's name
    # A set the listing lacks may be newer than the listing: those refusals end with the hint.
    for task, timestamp, tables, collections, hint in [
        ("task_77", LATEST, None, (), " (hint)"),
        ("task_7", missing, None, (), " (hint)"),
        ("task_7", newer[:-2], None, (), " (hint)"),
        ("task_7", older, ["langchain_pg_embeding"], (), ""),
        ("task_7", LATEST, None, ["trick"], ""),
    ]:
        with pytest.raises(InvalidParams) as by_store:
            check_named_set(any_store, task, timestamp, tables, collections)
        with pytest.raises(InvalidParams) as by_listing:
            check_listed_set(records, any_store.where, task, timestamp, tables, collections, stale_hint=" (hint)")
        assert by_listing.value.message == by_store.value.message + hint
    with pytest.raises(ResourceNotFound, match=r"for 'latest' \(no sets\)\. Back up first, or name another task\.$"):
        check_listed_set(records, any_store.where, None, LATEST)
