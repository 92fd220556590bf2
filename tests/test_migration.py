"""Restores that migrate a set into LangChain's newer layouts. The stores are written by the real LangChain classes,
and each migration is judged by what LangChain reads afterwards: the same search answers (ids, contents, metadata,
scores) as the source store gave. Tests marked BOTH_FORMATS run for a CSV set and a binary one (issue 34): a binary
set's columns are of the source's types, so its rows reach the migration's stages through casts."""

import itertools
import uuid

import pytest

from pgvector_pipeline.contract import (
    MIGRATE_TO_LANGCHAIN_POSTGRES,
    MIGRATE_TO_PGVECTOR_STORE,
    RESTORE_JOB,
    Migration,
    RestoreFlags,
    restore_run_config,
)
from pgvector_pipeline.definitions import defs
from pgvector_pipeline.errors import DataError, InvalidParams
from pgvector_pipeline.operations.backup import BackupOptions, back_up_database
from pgvector_pipeline.operations.restore import restore_backup_set
from pgvector_pipeline.postgres.pgvector_store import migrated_id
from pgvector_pipeline.set_formats import BINARY, CSV
from pgvector_pipeline.store.local import LocalBackupStore
from pgvector_pipeline.testing.db import execute, query
from pgvector_pipeline.testing.embedded import ensure_database
from tests import langchain_stores as lc
from tests.helpers import DSN_ENV, resources_config

_databases = itertools.count()

TEXTS = {
    "handbook": ["alpha report", "beta notes", "", "line one\r\nline two", "alpha beta"],
    "tickets": ["gamma", "delta ticket", "alpha ticket"],
}


def metadata(collection: str, i: int) -> dict:
    return {"page": i, "source": f"{collection}.pdf", "tags": ["x", collection], "nested": {"k": i}}


def new_db(pg_server) -> str:
    return ensure_database(pg_server, f"migration_{next(_databases)}")


def fill(store_factory, dsn: str, ids_for=None) -> dict[str, object]:
    """Each collection of TEXTS written by LangChain (ids from `ids_for(collection, i)`, or LangChain's own)."""
    stores = {}
    for collection, texts in TEXTS.items():
        store = store_factory(dsn, collection)
        ids = [ids_for(collection, i) for i in range(len(texts))] if ids_for else None
        store.add_texts(texts, metadatas=[metadata(collection, i) for i in range(len(texts))], ids=ids)
        stores[collection] = store
    return stores


def back_up(dsn: str, root, set_format: str = CSV):
    result = back_up_database(
        dsn, "public", LocalBackupStore(root), "global", None, BackupOptions(set_format=set_format)
    )
    backup_set = LocalBackupStore(root).locate(timestamp=result.timestamp)
    assert backup_set.manifest.set_format == set_format
    return backup_set


# The set's format, for tests that run over both (the fixture below is the others' CSV).
BOTH_FORMATS = pytest.mark.parametrize("set_format", [CSV, BINARY])


@pytest.fixture
def set_format() -> str:
    return CSV


@pytest.fixture
def postgres_source(pg_server, backup_root, set_format):
    """A langchain_postgres PGVector store (ids: some LangChain's uuids, some an app's own strings), its search
    answers per collection, and its backup set (of `set_format`)."""
    dsn = new_db(pg_server)
    stores = fill(lc.postgres_store, dsn, lambda c, i: f"{c}-{i}" if i % 2 else str(uuid.uuid4()))
    return dsn, {name: lc.search(store) for name, store in stores.items()}, back_up(dsn, backup_root, set_format)


@BOTH_FORMATS
def test_a_langchain_postgres_set_becomes_a_pgvector_store_table_in_another_schema(pg_server, postgres_source):
    _, before, backup_set = postgres_source
    target = new_db(pg_server)
    migration = Migration(MIGRATE_TO_PGVECTOR_STORE, "handbook_store", ("page:integer", "source:text"))

    result = restore_backup_set(target, "rag", backup_set, collections=["handbook"], migration=migration)

    assert [(s.table, s.rows_restored) for s in result.tables] == [("handbook_store", len(TEXTS["handbook"]))]
    after = lc.vector_store_search(target, "handbook_store", "rag", metadata_columns=["page", "source"])
    assert after == _as_migrated(before["handbook"])
    columns = query(
        target,
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'rag' AND "
        "table_name = 'handbook_store' ORDER BY ordinal_position",
    )
    assert columns == [
        ("langchain_id", "uuid"),
        ("content", "text"),
        ("embedding", "USER-DEFINED"),
        ("page", "integer"),
        ("source", "text"),
        ("langchain_metadata", "json"),
    ]
    assert query(
        target,
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = "
        "'rag.handbook_store'::regclass AND attname = 'embedding'",
    ) == [(f"vector({lc.DIMENSION})",)]
    assert query(
        target, "SELECT count(*) FROM pg_constraint WHERE conrelid = 'rag.handbook_store'::regclass AND contype = 'p'"
    ) == [(1,)]


def _as_migrated(answers: dict[str, list[lc.Answer]]) -> dict[str, list[lc.Answer]]:
    """What a PGVectorStore answers after migration: ids that were not UUIDs are uuid5s, the old id in metadata."""

    def migrated(answer: lc.Answer) -> lc.Answer:
        try:
            uuid.UUID(answer.id)
            return answer
        except ValueError:
            return lc.Answer(
                str(migrated_id(answer.id)),
                answer.content,
                {**answer.metadata, "langchain_pg_embedding_id": answer.id},
                answer.score,
            )

    return {query: [migrated(a) for a in found] for query, found in answers.items()}


@BOTH_FORMATS
def test_all_collections_of_a_community_set_become_one_store_table(pg_server, backup_root, set_format):
    source = new_db(pg_server)
    stores = fill(lc.community_store, source, lambda c, i: f"{c}-{i}")
    backup_set = back_up(source, backup_root, set_format)
    target = new_db(pg_server)

    restore_backup_set(target, "public", backup_set, migration=Migration(MIGRATE_TO_PGVECTOR_STORE, "everything"))

    assert query(target, "SELECT count(*) FROM everything") == [(sum(map(len, TEXTS.values())),)]
    after = lc.vector_store_search(target, "everything", k=20)
    wanted = {a.id: a for found in after.values() for a in found}
    for collection, store in stores.items():
        for found in lc.search(store).values():
            for answer in found:  # community answers carry no id: look them up by content and metadata
                twins = [
                    a
                    for a in wanted.values()
                    if (a.content, a.metadata.get("page"), a.metadata.get("source"))
                    == (answer.content, answer.metadata["page"], answer.metadata["source"])
                ]
                assert len(twins) == 1
                old_id = f"{collection}-{answer.metadata['page']}"
                assert twins[0].id == str(migrated_id(old_id))
                assert twins[0].metadata == {**answer.metadata, "langchain_pg_embedding_id": old_id}


@BOTH_FORMATS
def test_a_community_set_migrates_into_langchain_postgres_tables(pg_server, backup_root, set_format):
    source = new_db(pg_server)
    stores = fill(
        lc.community_store,
        source,
        lambda c, i: "shared" if (c, i) in {("handbook", 0), ("tickets", 0)} else (None if i == 1 else f"{c}-{i}"),
    )
    backup_set = back_up(source, backup_root, set_format)
    old_keys = dict(
        query(source, "SELECT document || '/' || (cmetadata->>'source'), uuid::text FROM langchain_pg_embedding")
    )
    target = new_db(pg_server)
    lc.postgres_store(target, "made_by_langchain")  # langchain_postgres creates its tables (and one collection)

    migration = Migration(MIGRATE_TO_LANGCHAIN_POSTGRES)
    restore_backup_set(target, "public", backup_set, migration=migration)

    for collection, store in stores.items():
        before, after = lc.search(store), lc.search(lc.postgres_store(target, collection))
        for query_text in lc.QUERIES:
            for old, new in zip(before[query_text], after[query_text], strict=True):
                assert (new.content, new.metadata, new.score) == (old.content, old.metadata, old.score)
                page = old.metadata["page"]
                unique_custom_id = page not in (0, 1)  # "shared" twice, None once
                key = old_keys[f"{old.content}/{old.metadata['source']}"]
                assert new.id == (f"{collection}-{page}" if unique_custom_id else key)


@BOTH_FORMATS
def test_a_migration_creates_langchain_postgres_tables_in_an_empty_database(pg_server, backup_root, set_format):
    source = new_db(pg_server)
    fill(lc.community_store, source, lambda c, i: f"{c}-{i}")
    backup_set = back_up(source, backup_root, set_format)
    target = new_db(pg_server)

    restore_backup_set(
        target,
        "public",
        backup_set,
        RestoreFlags(create_missing=True),
        migration=Migration(MIGRATE_TO_LANGCHAIN_POSTGRES),
    )

    ids = query(target, "SELECT id FROM langchain_pg_embedding ORDER BY 1")
    assert ids == sorted((f"{c}-{i}",) for c, texts in TEXTS.items() for i in range(len(texts)))
    assert lc.search(lc.postgres_store(target, "tickets"))["gamma"][0].id == "tickets-0"


def test_a_langchain_postgres_set_is_not_migrated_backwards(pg_server, postgres_source):
    _, _, backup_set = postgres_source
    target = new_db(pg_server)
    lc.community_store(target, "old_app").add_texts(["x"])

    with pytest.raises(DataError, match="langchain_community's older layout.*is not supported"):
        restore_backup_set(target, "public", backup_set)
    with pytest.raises(InvalidParams, match="this set's layout is langchain_postgres: restore it without migrate_to"):
        restore_backup_set(target, "public", backup_set, migration=Migration(MIGRATE_TO_LANGCHAIN_POSTGRES))
    assert query(target, "SELECT count(*) FROM langchain_pg_embedding") == [(1,)]


def test_a_community_set_into_langchain_postgres_tables_says_to_migrate(pg_server, backup_root):
    source = new_db(pg_server)
    fill(lc.community_store, source)
    backup_set = back_up(source, backup_root)
    target = new_db(pg_server)
    lc.postgres_store(target, "made_by_langchain")

    with pytest.raises(DataError, match="Restore with migrate_to: langchain_postgres"):
        restore_backup_set(target, "public", backup_set)


@BOTH_FORMATS
def test_a_null_document_refuses_the_migration_and_creates_nothing(pg_server, postgres_source, backup_root, set_format):
    source, _, _ = postgres_source
    execute(source, lambda cur: cur.execute("UPDATE langchain_pg_embedding SET document = NULL WHERE id = 'tickets-1'"))
    backup_set = back_up(source, backup_root, set_format)
    target = new_db(pg_server)

    with pytest.raises(DataError, match=r"1 embeddings of the set have no document \(ids 'tickets-1'\)"):
        restore_backup_set(target, "public", backup_set, migration=Migration(MIGRATE_TO_PGVECTOR_STORE, "store"))
    assert query(
        target, "SELECT to_regclass('public.store') IS NULL, count(*) FROM pg_extension WHERE extname = 'vector'"
    ) == [(True, 0)]


@BOTH_FORMATS
def test_ids_the_store_table_holds_already_refuse_the_whole_load(pg_server, postgres_source):
    _, _, backup_set = postgres_source
    target = new_db(pg_server)
    migration = Migration(MIGRATE_TO_PGVECTOR_STORE, "store")
    restore_backup_set(target, "public", backup_set, collections=["tickets"], migration=migration)

    with pytest.raises(DataError, match="Two rows would have one id in store"):
        restore_backup_set(target, "public", backup_set, migration=migration)
    assert query(target, "SELECT count(*) FROM store") == [(len(TEXTS["tickets"]),)]

    restore_backup_set(target, "public", backup_set, RestoreFlags(truncate_before_restore=True), migration=migration)
    assert query(target, "SELECT count(*) FROM store") == [(sum(map(len, TEXTS.values())),)]


@pytest.mark.parametrize(
    ("migration", "message"),
    [
        (Migration("pgvectorstore"), "migrate_to is 'pgvectorstore'; use 'langchain_postgres', 'pgvector_store'"),
        (Migration(MIGRATE_TO_PGVECTOR_STORE), "needs store_table"),
        (Migration(MIGRATE_TO_PGVECTOR_STORE, "s", ("page",)), "'page' is not 'name:type'"),
        (Migration(MIGRATE_TO_PGVECTOR_STORE, "s", ("page:int; drop table x",)), "has type 'int; drop table x'"),
        (Migration(MIGRATE_TO_PGVECTOR_STORE, "s", ("content:text",)), "named twice or like the table's own"),
        (Migration(store_table="s"), "set migrate_to: pgvector_store with them"),
    ],
)
def test_bad_migration_settings_are_refused_before_connecting(postgres_source, migration, message):
    _, _, backup_set = postgres_source
    with pytest.raises(InvalidParams, match=message):
        restore_backup_set("postgresql://nobody@127.0.0.1:1/none", "public", backup_set, migration=migration)


def test_the_restore_job_migrates_from_run_config(pg_server, postgres_source, instance, monkeypatch):
    _, before, backup_set = postgres_source
    target = new_db(pg_server)
    monkeypatch.setenv(DSN_ENV, target)
    migration = Migration(MIGRATE_TO_PGVECTOR_STORE, "tickets_store", ("source:text",))
    config = restore_run_config(None, backup_set.timestamp, collections=["tickets"], migration=migration)

    result = defs.get_job_def(RESTORE_JOB).execute_in_process(
        run_config={**config, **resources_config()}, instance=instance
    )

    assert result.success
    after = lc.vector_store_search(target, "tickets_store", metadata_columns=["source"])
    assert after == _as_migrated(before["tickets"])


@BOTH_FORMATS
def test_a_metadata_value_its_column_cannot_hold_refuses_the_load(pg_server, postgres_source):
    _, _, backup_set = postgres_source
    target = new_db(pg_server)
    migration = Migration(MIGRATE_TO_PGVECTOR_STORE, "store", ("source:integer",))

    with pytest.raises(
        DataError,
        match=r"A row of the set does not fit store: invalid input syntax for type integer: "
        r'"handbook.pdf".*metadata_columns',
    ):
        restore_backup_set(target, "public", backup_set, migration=migration)
    assert query(target, "SELECT to_regclass('public.store') IS NULL") == [(True,)]
