"""Room on the database server's disk for a restore (issue 23): the tables live on a 16 MiB file system of the
server's (a tablespace on a tmpfs). A restore the disk cannot hold beside the live rows is refused before anything
changes, in place and swapped; a disk that fills up during the load rolls everything back with a message that says
so; and a swapped restore's new tables live where the live ones live."""

import os
import re

import pytest

from pgvector_pipeline.contract import RestoreFlags
from pgvector_pipeline.errors import DatabaseError
from pgvector_pipeline.names import EMBEDDING_TABLE
from pgvector_pipeline.operations.backup import back_up_database
from pgvector_pipeline.operations.restore import restore_backup_set
from pgvector_pipeline.store.local import LocalBackupStore
from pgvector_pipeline.testing.db import execute, query
from pgvector_pipeline.testing.langchain_tables import insert_sample_store
from tests.catalog_fingerprint import contents, fingerprint
from tests.helpers import PLAIN_CSV, RecordingLog

IN_PLACE = RestoreFlags(truncate_before_restore=True, in_place=True)
SWAP = RestoreFlags(truncate_before_restore=True)
MODES = pytest.mark.parametrize("flags", [IN_PLACE, SWAP], ids=["in place", "swap"])


@pytest.fixture
def store_on_small_disk(store_db, small_tablespace, backup_root):
    """2,000 embeddings of 128 dimensions (about 3 MB with their indexes) in tablespace `small`, and their set."""
    execute(
        store_db,
        lambda cur: insert_sample_store(cur, "public", collections=2, embeddings_per_collection=1000, dimension=128),
    )
    execute(store_db, lambda cur: cur.execute(f"ALTER TABLE {EMBEDDING_TABLE} SET TABLESPACE small"))
    execute(store_db, lambda cur: cur.execute("ALTER INDEX ix_cmetadata_gin SET TABLESPACE small"))
    result = back_up_database(store_db, "public", LocalBackupStore(backup_root), "global", None, PLAIN_CSV)
    return store_db, LocalBackupStore(backup_root).locate(timestamp=result.timestamp), small_tablespace


def fill(directory, leave_bytes: int):
    """Write a file into `directory` until only about `leave_bytes` are free; returns it."""
    filler = directory / "filler"
    stat = os.statvfs(directory)
    with open(filler, "wb") as out:
        out.write(b"\0" * max(stat.f_bavail * stat.f_frsize - leave_bytes, 0))
    return filler


@MODES
def test_a_restore_the_disk_cannot_hold_is_refused_before_anything_changes(store_on_small_disk, flags):
    dsn, backup_set, disk = store_on_small_disk
    rows, before = contents(dsn), fingerprint(dsn)
    fill(disk, 1 << 20)

    with pytest.raises(DatabaseError) as refused:
        restore_backup_set(dsn, "public", backup_set, flags)

    # About the 1 MiB the filler left: the file system may give a block or two back before the restore measures.
    assert re.match(
        rf"Not enough disk space on the database server for this restore: 1\.[0-2] MB free in {re.escape(str(disk))}, "
        rf"about ",
        refused.value.message,
    ), refused.value.message
    assert "Nothing was changed." in refused.value.message
    assert (contents(dsn), fingerprint(dsn)) == (rows, before)


@MODES
def test_a_disk_that_fills_during_the_load_rolls_back_and_says_so(store_on_small_disk, flags):
    dsn, backup_set, disk = store_on_small_disk
    rows, before = contents(dsn), fingerprint(dsn)
    filled = []

    class FillAt(RecordingLog):
        def info(self, msg: str) -> None:
            super().info(msg)
            if msg.startswith(f"Loading {EMBEDDING_TABLE} ") and not filled:
                filled.append(fill(disk, 64 << 10))

    with pytest.raises(DatabaseError) as full:
        restore_backup_set(dsn, "public", backup_set, flags, log=FillAt())

    assert full.value.message.startswith(
        f"The database server ran out of disk space while restoring {EMBEDDING_TABLE}: could not extend file "
    )
    assert (contents(dsn), fingerprint(dsn)) == (rows, before)
    assert query(dsn, "SELECT count(*) FROM pg_class WHERE relname LIKE 'pgvector_%%'") == [(0,)]
    # The rolled-back load gave its space back: with the filler gone, the same restore succeeds.
    filled[0].unlink()
    restore_backup_set(dsn, "public", backup_set, flags)
    assert contents(dsn) == rows


def test_the_swapped_tables_live_where_the_live_ones_did(store_on_small_disk):
    dsn, backup_set, _ = store_on_small_disk
    execute(dsn, lambda cur: cur.execute("ALTER TABLE langchain_pg_embedding SET UNLOGGED"))
    where = (
        "SELECT c.relname, c.relpersistence, coalesce(t.spcname, '-') FROM pg_class c LEFT JOIN pg_tablespace t ON "
        "t.oid = c.reltablespace WHERE c.relname IN ('langchain_pg_collection', 'langchain_pg_embedding', "
        "'ix_cmetadata_gin', 'langchain_pg_embedding_pkey') ORDER BY 1"
    )
    before = query(dsn, where)
    assert ("langchain_pg_embedding", "u", "small") in before and ("langchain_pg_collection", "p", "-") in before

    result = restore_backup_set(dsn, "public", backup_set, SWAP)

    assert result.swap == "swapped in"
    assert query(dsn, where) == before


def test_the_estimate_holds_after_a_bulk_insert_the_statistics_have_not_seen(store_db, backup_root):
    """Right after a bulk insert the planner's row count (reltuples) still says what the table held at its last ANALYZE;
    bytes per row from it made a 3 MB table's restore 'need' hundreds of MB. The rows are scaled to the table's
    current size, as the planner does."""
    import re

    execute(store_db, lambda cur: cur.execute(f"ALTER TABLE {EMBEDDING_TABLE} SET (autovacuum_enabled = false)"))
    execute(
        store_db,
        lambda cur: insert_sample_store(cur, "public", collections=1, embeddings_per_collection=20, dimension=128),
    )
    execute(store_db, lambda cur: cur.execute(f"ANALYZE {EMBEDDING_TABLE}"))  # the statistics see 20 rows
    execute(
        store_db,
        lambda cur: cur.execute(
            f"INSERT INTO {EMBEDDING_TABLE} (id, collection_id, embedding, document, cmetadata) SELECT 'bulk-' || g, "
            f"e.collection_id, e.embedding, 'bulk document ' || g, e.cmetadata FROM generate_series(1, 2000) g, "
            f"(SELECT * FROM {EMBEDDING_TABLE} LIMIT 1) e"
        ),
    )
    result = back_up_database(store_db, "public", LocalBackupStore(backup_root), "global", None, PLAIN_CSV)
    backup_set = LocalBackupStore(backup_root).locate(timestamp=result.timestamp)
    table_bytes = query(store_db, f"SELECT pg_total_relation_size('{EMBEDDING_TABLE}')")[0][0]
    log = RecordingLog()

    restore_backup_set(store_db, "public", backup_set, SWAP, log=log)

    [line] = [line for line in log.infos if line.startswith("Disk space: ")]
    needed = re.findall(r"about ([0-9.]+) (KB|MB|GB) needed", line)
    assert needed, line
    value, unit = needed[0]
    needed_bytes = float(value) * {"KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}[unit]
    assert needed_bytes < 3 * table_bytes, (line, table_bytes)
