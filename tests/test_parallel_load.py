"""Large files of a swapped restore loaded by several sessions at once (postgres.parallel_load): cut at row
boundaries only, every row loaded once, all sessions or none committed, nothing left behind on any failure."""

import csv
import dataclasses
import io

import pytest

from pgvector_pipeline.contract import RestoreFlags
from pgvector_pipeline.errors import DatabaseError, DataError
from pgvector_pipeline.names import EMBEDDING_TABLE
from pgvector_pipeline.operations.backup import back_up_database
from pgvector_pipeline.operations.restore import restore_backup_set
from pgvector_pipeline.postgres.connection import APPLICATION_NAME
from pgvector_pipeline.postgres.parallel_load import row_blocks
from pgvector_pipeline.store.local import LocalBackupStore
from pgvector_pipeline.testing.admin import terminate_backends
from pgvector_pipeline.testing.db import execute, query
from pgvector_pipeline.testing.langchain_tables import insert_sample_store
from tests.faulty_stores import FaultyStore
from tests.helpers import PLAIN_CSV, RecordingLog, flip_a_digit, set_files

SWAP = RestoreFlags(truncate_before_restore=True)


def test_blocks_end_only_where_rows_end():
    rows = [["id", "document"]] + [[str(i), f'line "{i}"\r\nnext, "quoted" ""\n{"x" * (i % 50)}'] for i in range(300)]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    data = buffer.getvalue().encode()
    stream = io.BytesIO(data)

    blocks = list(row_blocks(stream.read, block_bytes=97))  # small blocks: cuts fall inside quoted fields

    assert b"".join(blocks) == data[data.index(b"\n") + 1 :]
    parsed = [row for block in blocks for row in csv.reader(io.StringIO(block.decode(), newline=""))]
    assert parsed == rows[1:]
    assert len(blocks) > 20


def contents(dsn: str) -> tuple:
    return query(dsn, f"SELECT count(*), md5(string_agg(t::text, ',' ORDER BY id)) FROM {EMBEDDING_TABLE} t")[0]


@pytest.fixture
def big_set(store_db, backup_root):
    """About 28 MB of embedding CSV (above the size several sessions load), and a plain set of it."""
    execute(
        store_db,
        lambda cur: insert_sample_store(cur, "public", collections=2, embeddings_per_collection=6000, dimension=256),
    )
    execute(store_db, lambda cur: cur.execute(f"CREATE INDEX ix_document ON {EMBEDDING_TABLE} (document)"))
    result = back_up_database(store_db, "public", LocalBackupStore(backup_root), "global", None, PLAIN_CSV)
    return store_db, LocalBackupStore(backup_root).locate(timestamp=result.timestamp)


def leftovers(dsn: str) -> list:
    return query(dsn, "SELECT relname FROM pg_class WHERE relname ~ '^pgvector_(new|old)_'")


def test_two_sessions_load_every_row_once(big_set):
    dsn, backup_set = big_set
    before = contents(dsn)
    execute(dsn, lambda cur: cur.execute(f"DELETE FROM {EMBEDDING_TABLE} WHERE cmetadata->>'page' = '1'"))
    log = RecordingLog()

    restore_backup_set(dsn, "public", backup_set, SWAP, load_sessions=2, log=log)

    assert contents(dsn) == before
    assert (
        f"Loading {EMBEDDING_TABLE} (id, collection_id, embedding, document, cmetadata) by 2 sessions at once."
        in log.infos
    )
    assert leftovers(dsn) == []


def test_a_damaged_file_commits_no_session_and_leaves_no_new_table(big_set, backup_root):
    dsn, backup_set = big_set
    path = set_files(backup_set)[EMBEDDING_TABLE]
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] + flip_a_digit(data[len(data) // 2 :]))
    before = contents(dsn)

    with pytest.raises(DataError, match="sha256"):
        restore_backup_set(dsn, "public", LocalBackupStore(backup_root).locate(timestamp=backup_set.timestamp), SWAP)

    assert contents(dsn) == before
    assert leftovers(dsn) == []


def test_a_loading_session_killed_rolls_back_the_others_and_leaves_no_new_table(big_set, backup_root, admin_dsn):
    dsn, backup_set = big_set
    before = contents(dsn)

    def kill_loaders(table: str, reads: int) -> None:
        if table == EMBEDDING_TABLE and reads == 8:  # the two sessions are loading
            assert terminate_backends(admin_dsn, APPLICATION_NAME) >= 1

    faulty = dataclasses.replace(backup_set, store=FaultyStore(backup_root, on_read=kill_loaders))
    with pytest.raises(DatabaseError):
        restore_backup_set(dsn, "public", faulty, SWAP)

    assert contents(dsn) == before
    assert leftovers(dsn) == []


def test_the_new_tables_a_dead_restore_left_are_dropped_by_the_next(big_set):
    dsn, backup_set = big_set
    oid = query(dsn, f"SELECT '{EMBEDDING_TABLE}'::regclass::oid")[0][0]
    # As a killed restore leaves them: a new table it loaded, an old one it could not drop.
    execute(
        dsn, lambda cur: cur.execute(f"CREATE TABLE pgvector_new_{oid} (x int); CREATE TABLE pgvector_old_1 (x int)")
    )

    log = RecordingLog()
    restore_backup_set(dsn, "public", backup_set, SWAP, log=log)

    assert leftovers(dsn) == []
    # Named, so an operator who wonders where the killed load's tables went can read it in the run's log.
    assert f"Dropped pgvector_new_{oid}, pgvector_old_1, left by a swapped restore that died." in log.infos


def test_the_sessions_progress_is_reported_together_and_as_events(big_set):
    from pgvector_pipeline.postgres.progress import ProgressEvent

    dsn, backup_set = big_set

    class Watching(RecordingLog):
        progress_interval_s = 0.05  # read the server's progress often: the load takes about a second
        events: list[ProgressEvent] = []

        def progress(self, event: ProgressEvent) -> None:
            self.events.append(event)

    log = Watching()
    restore_backup_set(dsn, "public", backup_set, SWAP, load_sessions=2, log=log)

    # The loading sessions are other server processes than the restore's: their COPYs are summed by table name.
    copies = [line for line in log.infos if line.startswith(f"COPY {EMBEDDING_TABLE}: ")]
    assert any(" of 12,000 rows (" in line and " by 2 sessions (" in line for line in copies), log.infos
    events = [e for e in log.events if e.task == f"COPY {EMBEDDING_TABLE}"]
    # The first reading may come before the sessions sent a byte (a busy machine): bytes are counted once they do.
    assert events and all(e.total == 12000 and e.unit == "rows" for e in events)
    assert any(e.bytes_done > 0 for e in events)
    # The last event is the whole file, whatever the last reading of the server's progress said.
    assert (events[-1].done, events[-1].total) == (12000, 12000)


def test_a_role_with_one_connection_slot_restores_in_its_own_session_and_says_so(big_set, make_role, admin_dsn):
    dsn, backup_set = big_set
    restorer = make_role("SELECT", "INSERT", "TRUNCATE")
    role = query(restorer, "SELECT current_user")[0][0]
    execute(
        dsn,
        lambda cur: cur.execute(
            f'ALTER TABLE {EMBEDDING_TABLE} OWNER TO "{role}"; ALTER TABLE langchain_pg_collection OWNER TO "{role}";'
            f'GRANT CREATE ON SCHEMA public TO "{role}"'
        ),
    )
    execute(admin_dsn, lambda cur: cur.execute(f'ALTER ROLE "{role}" CONNECTION LIMIT 1'))
    before = contents(dsn)
    execute(dsn, lambda cur: cur.execute(f"DELETE FROM {EMBEDDING_TABLE} WHERE id LIKE '%%7'"))
    log = RecordingLog()

    result = restore_backup_set(restorer, "public", backup_set, SWAP, log=log)

    assert result.swap == "swapped in"
    assert contents(dsn) == before
    assert leftovers(dsn) == []
    assert any("in this session alone: no further session could connect" in line for line in log.infos), log.infos
    assert log.warnings == []


def test_ctrl_c_during_a_parallel_load_stays_an_interrupt_and_commits_nothing(store_db):
    from contextlib import contextmanager

    from pgvector_pipeline.postgres.parallel_load import parallel_copy

    execute(store_db, lambda cur: cur.execute("CREATE TABLE loaded (id int, document text)"))
    header_and_rows = b"id,document\n" + b"".join(f"{i},row {i}\n".encode() for i in range(20000))

    class Interrupted(io.BytesIO):
        def read(self, size=-1):
            if self.tell() > 100_000:
                raise KeyboardInterrupt
            return super().read(min(size, 4096) if size and size > 0 else 4096)

    @contextmanager
    def open_csv():
        yield Interrupted(header_and_rows)

    with pytest.raises(KeyboardInterrupt):
        parallel_copy(store_db, "public", "loaded", ["id", "document"], open_csv, 2)

    assert query(store_db, "SELECT count(*) FROM loaded") == [(0,)]
