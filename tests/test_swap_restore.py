"""Restores that load beside the live tables and swap them in (`swap`, issue 23): readers are not blocked until the
swap, writers wait and land in the restored tables, the swapped tables are the live ones in every respect, and any
failure before the swap leaves the live tables as they were."""

import dataclasses
import threading
import time

import psycopg2
import pytest

from pgvector_pipeline.contract import RestoreFlags
from pgvector_pipeline.errors import DatabaseError, DataError, InvalidParams
from pgvector_pipeline.names import COLLECTION_TABLE, EMBEDDING_TABLE
from pgvector_pipeline.operations.backup import back_up_database
from pgvector_pipeline.operations.restore import restore_backup_set
from pgvector_pipeline.store.local import LocalBackupStore
from pgvector_pipeline.testing.db import execute, query
from pgvector_pipeline.testing.langchain_tables import insert_sample_store
from tests.catalog_fingerprint import contents, dress, fingerprint
from tests.faulty_stores import FaultyStore
from tests.helpers import PLAIN_CSV, RecordingLog

SWAP = RestoreFlags(truncate_before_restore=True)  # the default for truncating restores
IN_PLACE = RestoreFlags(truncate_before_restore=True, in_place=True)


def backed_up(dsn: str, root):
    result = back_up_database(dsn, "public", LocalBackupStore(root), "global", None, PLAIN_CSV)
    return LocalBackupStore(root).locate(timestamp=result.timestamp)


@pytest.fixture
def dressed(store_db, backup_root):
    """LangChain tables with indexes, grants, policies, triggers and comments, 40 rows, and a set of them."""
    return dress(store_db), backed_up(store_db, backup_root)


def test_a_swapped_restore_leaves_the_tables_as_they_were_with_the_sets_rows(dressed):
    dsn, backup_set = dressed
    rows, before = contents(dsn), fingerprint(dsn)
    execute(dsn, lambda cur: cur.execute(f"DELETE FROM {EMBEDDING_TABLE} WHERE cmetadata->>'page' = '3'"))
    log = RecordingLog()

    result = restore_backup_set(dsn, "public", backup_set, SWAP, log=log)

    assert contents(dsn) == rows
    assert fingerprint(dsn) == before
    assert [(s.table, s.rows_restored) for s in result.tables] == [(COLLECTION_TABLE, 2), (EMBEDDING_TABLE, 40)]
    assert result.swap == "swapped in"
    assert any(
        line.startswith("Swapped the new langchain_pg_collection, langchain_pg_embedding in") for line in log.infos
    )
    assert query(dsn, "SELECT count(*) FROM pg_class WHERE relname LIKE 'pgvector_%%'") == [(0,)]


def test_a_view_makes_it_load_in_place_and_say_why(dressed):
    dsn, backup_set = dressed
    execute(dsn, lambda cur: cur.execute(f"CREATE VIEW docs AS SELECT document FROM {EMBEDDING_TABLE}"))
    log = RecordingLog()

    result = restore_backup_set(dsn, "public", backup_set, SWAP, log=log)

    assert f"Loading in place (the tables cannot be swapped): view docs reads {EMBEDDING_TABLE}." in log.infos
    assert result.swap == f"in place: view docs reads {EMBEDDING_TABLE}"
    assert query(dsn, "SELECT count(*) FROM docs") == [(40,)]


def test_a_row_the_new_table_refuses_leaves_the_live_tables_and_no_new_ones(dressed):
    dsn, backup_set = dressed
    execute(
        dsn,
        lambda cur: cur.execute(
            f"DELETE FROM {EMBEDDING_TABLE} WHERE cmetadata->>'page' = '3';"
            f"ALTER TABLE {EMBEDDING_TABLE} ADD CONSTRAINT no_page_3 CHECK (cmetadata->>'page' <> '3')"
        ),
    )
    rows, before = contents(dsn), fingerprint(dsn)

    with pytest.raises(DataError, match="no_page_3"):
        restore_backup_set(dsn, "public", backup_set, SWAP)

    assert (contents(dsn), fingerprint(dsn)) == (rows, before)
    assert query(dsn, "SELECT count(*) FROM pg_class WHERE relname LIKE 'pgvector_%%'") == [(0,)]


def test_in_place_goes_with_a_truncating_restore():
    with pytest.raises(InvalidParams) as refused:
        RestoreFlags(in_place=True)
    assert refused.value.message == (
        "in_place chooses how a truncating restore loads: it goes with truncate_before_restore. A restore that "
        "appends always loads into the live tables; leave in_place off."
    )


def test_a_restore_asked_to_load_in_place_says_so_and_blocks_no_differently(dressed):
    dsn, backup_set = dressed
    log = RecordingLog()

    result = restore_backup_set(dsn, "public", backup_set, IN_PLACE, log=log)

    assert result.swap == "in place: asked (in_place)"
    assert not any(line.startswith("Loading into new tables") for line in log.infos)


def test_a_write_during_the_load_waits_and_lands_in_the_restored_table(dressed, backup_root):
    dsn, backup_set = dressed
    outcome: dict = {}

    def write() -> None:
        conn = psycopg2.connect(dsn)
        try:
            with conn, conn.cursor() as cur:
                cur.execute(
                    f"INSERT INTO {EMBEDDING_TABLE} (id, collection_id, document) SELECT 'written-during-restore', "
                    f"uuid, 'late' FROM {COLLECTION_TABLE} LIMIT 1"
                )
            outcome["ok"] = True
        except psycopg2.Error as exc:
            outcome["error"] = exc
        finally:
            conn.close()

    writer = threading.Thread(target=write)

    def start_writer(table: str, reads: int) -> None:
        if table == EMBEDDING_TABLE and reads == 1:  # the live tables are SHARE-locked and the new ones loading
            writer.start()
            time.sleep(0.5)

    faulty = dataclasses.replace(backup_set, store=FaultyStore(backup_root, on_read=start_writer))
    restore_backup_set(dsn, "public", faulty, SWAP)
    writer.join(timeout=30)

    assert outcome == {"ok": True}
    assert query(dsn, f"SELECT document FROM {EMBEDDING_TABLE} WHERE id = 'written-during-restore'") == [("late",)]
    assert query(dsn, f"SELECT count(*) FROM {EMBEDDING_TABLE}") == [(41,)]


def test_a_reader_that_never_lets_go_makes_the_swap_give_up_naming_it(dressed):
    dsn, backup_set = dressed
    rows = contents(dsn)
    reader = psycopg2.connect(dsn, application_name="stuck_reader")
    try:
        with reader.cursor() as cur:
            cur.execute(f"SELECT count(*) FROM {EMBEDDING_TABLE}")  # holds ACCESS SHARE until its transaction ends
        with pytest.raises(DatabaseError, match=r"Gave up swapping .*\(stuck_reader, idle in transaction"):
            restore_backup_set(dsn, "public", backup_set, SWAP)
    finally:
        reader.close()
    assert contents(dsn) == rows


def longest_search_wait(dsn: str, during) -> tuple[float, float]:
    """The longest a search loop waited for one search while `during()` ran, and how long `during` took."""
    waits: list[float] = []
    stop = threading.Event()

    def search() -> None:
        conn = psycopg2.connect(dsn)
        conn.autocommit = True
        with conn.cursor() as cur:
            while not stop.is_set():
                started = time.monotonic()
                cur.execute(
                    f"SELECT id FROM {EMBEDDING_TABLE} ORDER BY embedding <=> (SELECT embedding FROM "
                    f"{EMBEDDING_TABLE} LIMIT 1) LIMIT 5"
                )
                waits.append(time.monotonic() - started)
        conn.close()

    loop = threading.Thread(target=search)
    loop.start()
    started = time.monotonic()
    try:
        during()
    finally:
        took = time.monotonic() - started
        stop.set()
        loop.join()
    return max(waits), took


def test_searches_wait_at_most_the_swap_while_a_restore_loads_and_indexes(store_db, backup_root):
    execute(
        store_db,
        lambda cur: insert_sample_store(cur, "public", collections=2, embeddings_per_collection=10000, dimension=128),
    )
    execute(
        store_db,
        lambda cur: cur.execute(
            f"CREATE INDEX ix_hnsw ON {EMBEDDING_TABLE} USING hnsw ((embedding::vector(128)) vector_cosine_ops)"
        ),
    )
    backup_set = backed_up(store_db, backup_root)

    in_place_wait, in_place_took = longest_search_wait(
        store_db, lambda: restore_backup_set(store_db, "public", backup_set, IN_PLACE)
    )
    swap_wait, swap_took = longest_search_wait(
        store_db, lambda: restore_backup_set(store_db, "public", backup_set, SWAP)
    )

    # In place, a search waits for the whole restore; swapped, at most one attempt's lock wait and the renames.
    print(
        f"in place: longest wait {in_place_wait:.2f} s of {in_place_took:.2f} s; swap: {swap_wait:.3f} s of {swap_took:.2f} s"
    )
    assert swap_took > 2.0  # long enough for the bound to mean something
    assert in_place_wait > 0.8 * in_place_took, (in_place_wait, in_place_took)
    assert swap_wait < 1.0, (swap_wait, swap_took)


@pytest.mark.parametrize(
    ("moment", "doing"),
    [
        ("langchain_pg_embedding: built ix_embedding_hnsw on the new table.", "building the new tables' indexes"),
        ("Swapped the new langchain_pg_collection, langchain_pg_embedding in", "swapping the new tables in"),
    ],
)
def test_a_connection_lost_while_building_or_after_swapping_leaves_the_live_tables(dressed, admin_dsn, moment, doing):
    from pgvector_pipeline.postgres.connection import APPLICATION_NAME
    from pgvector_pipeline.testing.admin import terminate_backends

    dsn, backup_set = dressed
    rows, before = contents(dsn), fingerprint(dsn)

    class KillAt(RecordingLog):
        def info(self, msg: str) -> None:
            super().info(msg)
            if msg.startswith(moment):
                assert terminate_backends(admin_dsn, APPLICATION_NAME) == 1

    with pytest.raises(DatabaseError) as lost:
        restore_backup_set(dsn, "public", backup_set, SWAP, log=KillAt())

    assert lost.value.can_retry
    assert (contents(dsn), fingerprint(dsn)) == (rows, before)
    assert query(dsn, "SELECT count(*) FROM pg_class WHERE relname LIKE 'pgvector_%%'") == [(0,)]


KILLED_CHILD = """
import sys, time
sys.path.insert(0, sys.argv[3])
import dataclasses
from pgvector_pipeline.contract import RestoreFlags
from pgvector_pipeline.operations.restore import restore_backup_set
from pgvector_pipeline.store.local import LocalBackupStore
from tests.faulty_stores import FaultyStore

def stall(table, reads):
    if table == "langchain_pg_embedding":
        print("loading", flush=True)
        time.sleep(60)  # killed here, in the middle of the load into the new tables

backup_set = LocalBackupStore(sys.argv[2]).locate(timestamp=sys.argv[4])
faulty = dataclasses.replace(backup_set, store=FaultyStore(sys.argv[2], on_read=stall))
restore_backup_set(sys.argv[1], "public", faulty, RestoreFlags(truncate_before_restore=True))
"""


def test_a_restoring_process_killed_mid_load_leaves_the_live_tables(dressed, backup_root):
    import signal
    import subprocess
    import sys
    from pathlib import Path

    dsn, backup_set = dressed
    rows, before = contents(dsn), fingerprint(dsn)
    repo = str(Path(__file__).resolve().parents[1])
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_CHILD, dsn, str(backup_root), repo, backup_set.timestamp],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout.readline().strip() == "loading"
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)

    # The server ends the dead client's transaction: the new tables and the SHARE lock go with it.
    deadline = time.monotonic() + 30
    while query(dsn, "SELECT count(*) FROM pg_class WHERE relname LIKE 'pgvector_%%'") != [(0,)]:
        assert time.monotonic() < deadline, "the killed restore's new tables are still there"
        time.sleep(0.2)
    assert (contents(dsn), fingerprint(dsn)) == (rows, before)


def test_tables_a_dead_swapped_restore_left_are_dropped_and_named(dressed):
    dsn, backup_set = dressed
    execute(dsn, lambda cur: cur.execute("CREATE TABLE pgvector_old_42 (x int); CREATE TABLE pgvector_new_43 (x int)"))
    log = RecordingLog()

    restore_backup_set(dsn, "public", backup_set, SWAP, log=log)

    assert "Dropped pgvector_new_43, pgvector_old_42, left by a swapped restore that died." in log.infos
    assert query(dsn, "SELECT count(*) FROM pg_class WHERE relname ~ '^pgvector_(new|old)_'") == [(0,)]


def test_the_restore_job_says_in_its_metadata_that_it_swapped(dressed, instance, monkeypatch):
    from pgvector_pipeline.contract import RESTORE_JOB, restore_run_config
    from pgvector_pipeline.definitions import defs
    from tests.helpers import DSN_ENV, resources_config

    dsn, backup_set = dressed
    monkeypatch.setenv(DSN_ENV, dsn)
    config = restore_run_config(None, backup_set.timestamp, flags=SWAP)

    result = defs.get_job_def(RESTORE_JOB).execute_in_process(
        run_config={**config, **resources_config()}, instance=instance
    )

    [output] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    assert output.event_specific_data.metadata["swap"].value == "swapped in"


def test_indexes_with_long_names_alike_swap_in_under_their_names(dressed):
    dsn, backup_set = dressed
    # Two names of 63 characters that differ only at the end: a prefix plus the name, cut to 63, would clash.
    names = ["ix_" + "a" * 59 + "1", "ix_" + "a" * 59 + "2"]
    for name, column in zip(names, ("document", "id"), strict=True):
        execute(
            dsn,
            lambda cur, name=name, column=column: cur.execute(f"CREATE INDEX {name} ON {EMBEDDING_TABLE} ({column})"),
        )
    before = fingerprint(dsn)

    result = restore_backup_set(dsn, "public", backup_set, SWAP)

    assert result.swap == "swapped in"
    assert fingerprint(dsn) == before


@pytest.mark.parametrize("flags", [SWAP, IN_PLACE], ids=["swapped", "in place"])
def test_an_identity_column_never_hands_out_an_id_again(dressed, backup_root, flags):
    dsn, _ = dressed
    execute(
        dsn,
        lambda cur: cur.execute(
            f"ALTER TABLE {EMBEDDING_TABLE} ADD COLUMN seq bigint GENERATED BY DEFAULT AS IDENTITY"
        ),
    )
    backup_set = backed_up(dsn, backup_root)  # seq 1..40
    # Later rows took ids 41..45 and were deleted again: the app may have handed those ids out already.
    execute(
        dsn,
        lambda cur: cur.execute(
            f"INSERT INTO {EMBEDDING_TABLE} (id, collection_id, document) SELECT 'later-' || g, uuid, 'x' "
            f"FROM {COLLECTION_TABLE}, generate_series(1, 5) g WHERE name = 'sample_collection_0';"
            f"DELETE FROM {EMBEDDING_TABLE} WHERE id LIKE 'later-%%'"
        ),
    )

    restore_backup_set(dsn, "public", backup_set, flags)

    execute(
        dsn,
        lambda cur: cur.execute(
            f"INSERT INTO {EMBEDDING_TABLE} (id, collection_id, document) SELECT 'after', uuid, 'x' "
            f"FROM {COLLECTION_TABLE} WHERE name = 'sample_collection_0'"
        ),
    )
    assert query(dsn, f"SELECT seq FROM {EMBEDDING_TABLE} WHERE id = 'after'") == [(46,)]


def test_an_identity_columns_sequence_keeps_its_name_and_grants(dressed, backup_root, make_role):
    dsn, _ = dressed
    app = make_role("SELECT", "INSERT")
    app_role = app.split("user=")[1].split()[0]
    execute(
        dsn,
        lambda cur: cur.execute(
            f"ALTER TABLE {EMBEDDING_TABLE} ADD COLUMN seq bigint GENERATED BY DEFAULT AS IDENTITY;"
            f"GRANT USAGE, SELECT ON SEQUENCE {EMBEDDING_TABLE}_seq_seq TO {app_role}"
        ),
    )
    backup_set = backed_up(dsn, backup_root)

    result = restore_backup_set(dsn, "public", backup_set, SWAP)

    assert result.swap == "swapped in"
    assert query(dsn, f"SELECT pg_get_serial_sequence('{EMBEDDING_TABLE}', 'seq')") == [
        (f"public.{EMBEDDING_TABLE}_seq_seq",)
    ]
    assert query(dsn, f"SELECT nextval('{EMBEDDING_TABLE}_seq_seq')") == [(41,)]
    assert query(dsn, f"SELECT has_sequence_privilege(%s, '{EMBEDDING_TABLE}_seq_seq', 'USAGE')", (app_role,)) == [
        (True,)
    ]
    assert query(dsn, "SELECT count(*) FROM pg_class WHERE relname LIKE 'pgvector_%%'") == [(0,)]


def test_a_langchain_writer_during_the_load_never_makes_the_swap_give_up(store_db, backup_root):
    """PGVector.add_texts reads langchain_pg_collection, then inserts into langchain_pg_embedding in one transaction:
    its insert waits for the restore (writers are held off), while the swap waits for its read. The restore cancels
    that one statement (the only way either can go on), says so, and finishes; the app retries into the restored
    tables. The app's longest wait is measured."""
    from tests import langchain_stores as lc

    store = lc.postgres_store(store_db, "docs")
    store.add_texts([f"text {i}" for i in range(30)])
    backup_set = backed_up(store_db, backup_root)
    outcome: dict = {"waits": [], "errors": []}

    def app_writes() -> None:
        app = lc.postgres_store(store_db, "docs")
        for _ in range(5):
            started = time.monotonic()
            try:
                app.add_texts(["written during the restore"])
                outcome["waits"].append(time.monotonic() - started)
                return
            except Exception as exc:  # the app sees its statement cancelled, and retries
                outcome["waits"].append(time.monotonic() - started)
                outcome["errors"].append(str(exc).splitlines()[0])

    writer = threading.Thread(target=app_writes)

    def start_writer(table: str, reads: int) -> None:
        if table == EMBEDDING_TABLE and reads == 1:  # the live tables are SHARE-locked and the new ones loading
            writer.start()
            time.sleep(1.0)  # the app has read the collections and waits to insert

    log = RecordingLog()
    faulty = dataclasses.replace(backup_set, store=FaultyStore(backup_root, on_read=start_writer))
    result = restore_backup_set(store_db, "public", faulty, SWAP, log=log)
    writer.join(timeout=60)

    assert result.swap == "swapped in"
    assert any("Cancelled the statement of session" in line for line in log.infos), log.infos
    # Cancelled by the swap first. On a busy machine its retry may come in just before the next swap attempt and be
    # cancelled again, or lose to PostgreSQL's deadlock detector before the swap's canceller sees it wait: either way
    # the app's statement fails and it retries; the swap never gives up.
    errors = outcome["errors"]
    assert errors and "canceling statement due to user request" in errors[0], errors
    assert all("canceling statement due to user request" in e or "deadlock detected" in e for e in errors), errors
    assert query(store_db, f"SELECT count(*) FROM {EMBEDDING_TABLE} WHERE document = 'written during the restore'") == [
        (1,)
    ]
    assert query(store_db, f"SELECT count(*) FROM {EMBEDDING_TABLE}") == [(31,)]
    print(f"the app's waits: {', '.join(f'{wait:.2f} s' for wait in outcome['waits'])}")
    assert max(outcome["waits"]) < 15


class DDLWhileIndexesBuild(RecordingLog):
    """A log that, when the first index of a new table is built, has the app commit `ddl` on the live tables (the
    writers' SHARE lock lets CREATE INDEX, CREATE VIEW and GRANT through)."""

    def __init__(self, dsn: str, ddl: str):
        super().__init__()
        self.dsn, self.ddl, self.done = dsn, ddl, False

    def info(self, msg: str) -> None:
        super().info(msg)
        if not self.done and "on the new table" in msg:
            self.done = True
            execute(self.dsn, lambda cur: cur.execute(self.ddl))


@pytest.mark.parametrize(
    ("ddl", "named"),
    [
        (f"CREATE INDEX ix_app_made ON {EMBEDDING_TABLE} (document)", "ix_app_made"),
        (f"CREATE VIEW app_docs AS SELECT document FROM {EMBEDDING_TABLE}", "view app_docs"),
        (f"GRANT SELECT ON {COLLECTION_TABLE} TO PUBLIC", "langchain_pg_collection: grants"),
    ],
    ids=["index", "view", "grant"],
)
def test_app_ddl_committed_while_the_new_indexes_build_is_never_lost_nor_left_on_the_old_table(dressed, ddl, named):
    dsn, backup_set = dressed
    log = DDLWhileIndexesBuild(dsn, ddl)

    with pytest.raises(DatabaseError, match=f"while they loaded, the live tables were changed .*{named}") as raised:
        restore_backup_set(dsn, "public", backup_set, SWAP, log=log)

    assert log.done and raised.value.can_retry
    after_ddl = fingerprint(dsn)
    assert query(dsn, "SELECT count(*) FROM pg_class WHERE relname LIKE 'pgvector_%%'") == [(0,)]
    # Restored again, the change is carried over (or the view makes it load in place).
    restore_backup_set(dsn, "public", backup_set, SWAP)
    assert fingerprint(dsn) == after_ddl
    if "VIEW" in ddl:
        assert query(dsn, "SELECT count(*) FROM app_docs") == [(40,)]
