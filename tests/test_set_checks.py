"""Every backup proven restorable (issue 24): the checks each backup run makes of the set it wrote, read back from
the store: files against the manifest, every vector parsed, rows against the location's previous set. A sound set
passes; a damaged file, a NaN, a collection of mixed dimensions and a store that lost most of its rows are caught,
in plain Python and as the backup assets' checks in Dagster."""

import logging
import re

import dagster as dg
import pytest

from pgvector_pipeline.contract import RestoreFlags
from pgvector_pipeline.errors import DataError
from pgvector_pipeline.names import EMBEDDING_TABLE
from pgvector_pipeline.operations.backup import BackupChoices, BackupOptions, back_up_database, backup_options
from pgvector_pipeline.operations.restore import restore_backup_set
from pgvector_pipeline.operations.set_checks import (
    EMBEDDINGS_CHECK,
    FILES_CHECK,
    ROWS_CHECK,
    check_files_and_embeddings,
    check_set,
    check_written_set,
)
from pgvector_pipeline.set_formats import BINARY, CSV
from pgvector_pipeline.store.codecs import UNCOMPRESSED
from pgvector_pipeline.store.local import LocalBackupStore
from pgvector_pipeline.tables import TableSpec
from pgvector_pipeline.testing.db import execute, query
from pgvector_pipeline.testing.langchain_tables import fill_sample_store
from tests.helpers import PLAIN_CSV, flip_a_digit, rewrite_csv_keeping_manifest_consistent, set_files


def backed_up(dsn: str, root):
    result = back_up_database(dsn, "public", LocalBackupStore(root), "global", None, PLAIN_CSV)
    return LocalBackupStore(root).locate(timestamp=result.timestamp)


def add_a_shorter_vector(dsn: str) -> None:
    """A dimension-less column takes any length: sample_collection_1 now holds a 3-dimensional vector too."""
    execute(
        dsn,
        lambda cur: cur.execute(
            f"INSERT INTO {EMBEDDING_TABLE} (id, collection_id, embedding, document) SELECT 'short', uuid, "
            "'[1,2,3]', 'x' FROM langchain_pg_collection WHERE name = 'sample_collection_1'"
        ),
    )


def verdicts(backup_set, previous=None) -> dict[str, tuple[bool, str]]:
    return {check.name: (check.passed, check.description) for check in check_set(backup_set, previous)}


def test_a_sound_set_passes_every_check(store_db, backup_root):
    fill_sample_store(store_db, collections=2, embeddings_per_collection=20, dimension=8)

    found = verdicts(backed_up(store_db, backup_root))

    assert found == {
        FILES_CHECK: (True, "All 2 files match the manifest (sizes and sha256, as stored and decompressed)."),
        EMBEDDINGS_CHECK: (True, "All 40 vectors load as pgvector reads them, and have one dimension per collection."),
        ROWS_CHECK: (True, "No earlier complete set in this location to compare with."),
    }


def test_a_changed_file_fails_the_files_check(store_db, backup_root):
    fill_sample_store(store_db, collections=1, embeddings_per_collection=20, dimension=8)
    backup_set = backed_up(store_db, backup_root)
    path = set_files(backup_set)[EMBEDDING_TABLE]
    path.write_bytes(flip_a_digit(path.read_bytes()))

    found = verdicts(backup_set)

    assert not found[FILES_CHECK][0]
    assert found[FILES_CHECK][1].startswith(
        f"{set_files(backup_set)[EMBEDDING_TABLE].name} does not match its manifest"
    )
    assert found[EMBEDDINGS_CHECK] == (False, "Not checked: the set's files do not match its manifest.")


def test_a_nan_and_a_collection_of_mixed_dimensions_fail_the_embeddings_check(store_db, backup_root):
    fill_sample_store(store_db, collections=2, embeddings_per_collection=5, dimension=4)
    add_a_shorter_vector(store_db)
    backup_set = backed_up(store_db, backup_root)
    # pgvector refuses NaN, so a set can hold one only by damage that kept the manifest consistent.
    rewrite_csv_keeping_manifest_consistent(
        backup_set, EMBEDDING_TABLE, lambda data: data.replace(b'"[1,2,3]"', b'"[1,NaN,3]"')
    )

    passed, description = verdicts(backup_set)[EMBEDDINGS_CHECK]

    assert not passed
    assert "row 11, embedding: NaN or infinity" in description
    assert "has vectors of [3, 4] dimensions" in description and "langchain_pg_embedding.embedding " in description


@pytest.mark.parametrize("set_format", [CSV, BINARY])
def test_each_vector_column_may_have_its_own_dimension_and_a_collection_is_named_alike(
    store_db, backup_root, set_format
):
    """Dimensions were grouped by table and collection over all vector columns: a table with a vector(3) and a
    halfvec(2) column failed the check as 'mixed'; a binary set named a collection by its key's bytes in hex."""
    fill_sample_store(store_db, collections=2, embeddings_per_collection=5, dimension=4)
    add_a_shorter_vector(store_db)
    execute(
        store_db,
        lambda cur: cur.execute(
            f"ALTER TABLE {EMBEDDING_TABLE} ADD COLUMN small halfvec(2); UPDATE {EMBEDDING_TABLE} SET small = '[1,2]'"
        ),
    )
    options = BackupOptions(set_format=set_format, compression=UNCOMPRESSED)
    result = back_up_database(store_db, "public", LocalBackupStore(backup_root), "global", None, options)
    backup_set = LocalBackupStore(backup_root).locate(timestamp=result.timestamp)
    [(key,)] = query(store_db, "SELECT uuid::text FROM langchain_pg_collection WHERE name = 'sample_collection_1'")

    files, vectors = check_files_and_embeddings(backup_set)

    assert files.passed and not vectors.passed
    assert vectors.description == (
        f"Vectors that would not restore or search as they should: {EMBEDDING_TABLE}.embedding of collection {key} "
        f"has vectors of [3, 4] dimensions."
    )
    assert vectors.metadata["vectors"] == 22


def test_vectors_pgvector_would_refuse_fail_the_embeddings_check_and_the_restore(store_db, backup_root):
    """The check mirrors pgvector's input function: a number past float4's range and a vector of no dimensions parse
    as float64 text, yet the restore of such a set fails."""
    fill_sample_store(store_db, collections=1, embeddings_per_collection=3, dimension=2)
    execute(store_db, lambda cur: cur.execute(f"UPDATE {EMBEDDING_TABLE} SET embedding = '[1,2]'"))
    backup_set = backed_up(store_db, backup_root)
    damaged = iter((b'"[1e39,2]"', b'"[]"'))
    rewrite_csv_keeping_manifest_consistent(
        backup_set, EMBEDDING_TABLE, lambda data: re.sub(rb'"\[1,2\]"', lambda _: next(damaged, b'"[1,2]"'), data)
    )

    passed, description = verdicts(backup_set)[EMBEDDINGS_CHECK]
    with pytest.raises(DataError, match="out of range for type vector"):
        restore_backup_set(store_db, "public", backup_set, RestoreFlags(truncate_before_restore=True))

    assert not passed
    assert "row 1, embedding: a number out of range for type vector" in description
    assert "row 2, embedding: no dimensions" in description


def test_worker_processes_find_what_this_process_finds(store_db, backup_root):
    """A large set's vectors are parsed by worker processes: the same verdicts, the rows at fault in the same order,
    as parsed here (batches of 250 vectors: this set makes several)."""
    fill_sample_store(store_db, collections=2, embeddings_per_collection=400, dimension=4)
    add_a_shorter_vector(store_db)
    backup_set = backed_up(store_db, backup_root)
    at_fault = iter(range(3))
    rewrite_csv_keeping_manifest_consistent(
        backup_set,
        EMBEDDING_TABLE,
        lambda data: re.sub(rb'"\[[^"]*\]"', lambda m: b'"[1,NaN,3]"' if next(at_fault, 3) < 2 else m[0], data),
    )

    here = check_files_and_embeddings(backup_set, workers=0)
    pooled = check_files_and_embeddings(backup_set, workers=2)

    assert [(c.passed, c.description) for c in pooled] == [(c.passed, c.description) for c in here]
    assert (here[1].metadata["parsed_by"], pooled[1].metadata["parsed_by"]) == (
        "the run's process",
        "2 worker processes",
    )
    assert not here[1].passed and here[1].metadata["vectors"] == 801
    assert (
        here[1].description.startswith(
            "Vectors that would not restore or search as they should: langchain_pg_embedding_"
        )
        and ".csv row 1, embedding: NaN or infinity; " in here[1].description
    )


def test_a_store_that_lost_most_of_its_rows_warns(store_db, backup_root):
    fill_sample_store(store_db, collections=1, embeddings_per_collection=100, dimension=4)
    first = backed_up(store_db, backup_root)
    execute(store_db, lambda cur: cur.execute(f"DELETE FROM {EMBEDDING_TABLE} WHERE id NOT LIKE '%%-1%%'"))
    second = backed_up(store_db, backup_root)

    check = {c.name: c for c in check_set(second, first)}[ROWS_CHECK]

    assert (check.passed, check.warn_only) == (False, True)
    assert check.description.startswith(
        f"Fewer rows than set {first.timestamp} by more than 50%: langchain_pg_embedding 100 -> "
    )


def test_the_backup_run_records_the_checks_on_its_assets(store_db, backup_root, instance, monkeypatch):
    from pgvector_pipeline.definitions import defs
    from tests.helpers import DSN_ENV, resources_config

    monkeypatch.setenv(DSN_ENV, store_db)
    fill_sample_store(store_db, collections=1, embeddings_per_collection=5, dimension=4)
    execute(
        store_db,
        lambda cur: cur.execute(
            f"INSERT INTO {EMBEDDING_TABLE} (id, collection_id, embedding, document) SELECT 'short', uuid, "
            "'[1,2,3]', 'x' FROM langchain_pg_collection"
        ),
    )
    from pgvector_pipeline.contract import REQUEST_BACKUP_JOB, request_run_config

    result = defs.get_job_def(REQUEST_BACKUP_JOB).execute_in_process(
        run_config={**request_run_config(), **resources_config()}, instance=instance
    )

    assert result.success
    embedding_checks = {
        e.check_name: e
        for e in (
            event.event_specific_data
            for event in result.all_events
            if event.event_type_value == "ASSET_CHECK_EVALUATION"
        )
        if e.asset_key == dg.AssetKey("langchain_pg_embedding_backup")
    }
    assert embedding_checks[FILES_CHECK].passed
    assert not embedding_checks[EMBEDDINGS_CHECK].passed
    assert embedding_checks[EMBEDDINGS_CHECK].severity == dg.AssetCheckSeverity.ERROR
    assert embedding_checks[ROWS_CHECK].passed


# A caller's script with no `if __name__ == "__main__":` guard, as Dagster's own testing pattern (execute_in_process
# at top level) is often written: every time it is imported it notes so, then checks the set.
_UNGUARDED_SCRIPT = """
import sys

with open(sys.argv[1], "a") as imports:
    imports.write("imported\\n")

from pgvector_pipeline.store.local import LocalBackupStore
from pgvector_pipeline.operations.set_checks import check_files_and_embeddings

backup_set = LocalBackupStore(sys.argv[2]).locate(timestamp=sys.argv[3])
files, embeddings = check_files_and_embeddings(backup_set)
print(files.passed, embeddings.passed, embeddings.metadata["parsed_by"])
"""


def test_parse_workers_never_run_the_callers_script(store_db, backup_root, tmp_path):
    """The workers start from a module of this package: a script without a main guard runs once, not once more in
    every worker (where it checked the set again, started workers of its own, and took 105 s instead of 17)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import pgvector_pipeline
    from pgvector_pipeline.operations.set_checks import CHECK_WORKERS_ENV

    fill_sample_store(store_db, collections=2, embeddings_per_collection=400, dimension=4)
    backup_set = backed_up(store_db, backup_root)
    script, imports = tmp_path / "unguarded.py", tmp_path / "imports.txt"
    script.write_text(_UNGUARDED_SCRIPT)
    package_parent = str(Path(pgvector_pipeline.__file__).parent.parent)

    done = subprocess.run(
        [sys.executable, str(script), str(imports), str(backup_root), backup_set.timestamp],
        env={**os.environ, CHECK_WORKERS_ENV: "2", "PYTHONPATH": package_parent},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert imports.read_text() == "imported\n"
    assert (done.returncode, done.stdout) == (0, "True True 2 worker processes\n"), done.stderr


def kill_parse_workers() -> int:
    """SIGKILL this process's parse workers (its children running pgvector_pipeline.operations.parse_workers); how many."""
    import os
    import signal
    from pathlib import Path

    killed = 0
    for proc in Path("/proc").iterdir():
        try:
            parent = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (proc / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if parent == os.getpid() and b"pgvector_pipeline.operations.parse_workers" in command:
            os.kill(int(proc.name), signal.SIGKILL)
            killed += 1
    return killed


def test_a_killed_parse_worker_makes_the_run_parse_the_set_itself(store_db, backup_root):
    """A worker that dies (out of memory, killed) is no verdict on the set: it is read again and parsed here."""
    import dataclasses

    from tests.faulty_stores import FaultyStore

    fill_sample_store(store_db, collections=2, embeddings_per_collection=400, dimension=64)
    backup_set = backed_up(store_db, backup_root)
    killed = []

    def kill_on_third_read(table, calls):
        if table == EMBEDDING_TABLE and calls == 3 and not killed:
            killed.append(kill_parse_workers())

    faulty = dataclasses.replace(backup_set, store=FaultyStore(backup_root, on_read=kill_on_third_read))

    files, embeddings = check_files_and_embeddings(faulty, workers=2)

    assert killed == [2]
    assert (files.passed, embeddings.passed, embeddings.metadata["parsed_by"]) == (True, True, "the run's process")
    assert embeddings.metadata["vectors"] == 800


# A backup run's own checks (check_written_set): the stored bytes read back, the vectors as the snapshot counted them.


def written(dsn: str, root, options=PLAIN_CSV):
    result = back_up_database(dsn, "public", LocalBackupStore(root), "global", None, options)
    return result, LocalBackupStore(root).locate(timestamp=result.timestamp)


def test_a_run_checks_the_set_it_wrote_by_its_stored_digests_and_parses_nothing(store_db, backup_root):
    fill_sample_store(store_db, collections=2, embeddings_per_collection=20, dimension=8)
    result, backup_set = written(store_db, backup_root)

    checks = {
        check.name: check
        for check in check_written_set(LocalBackupStore(backup_root), result, logging.getLogger(__name__))[0]
    }

    assert checks[FILES_CHECK].passed
    assert checks[FILES_CHECK].description == (
        "All 2 files read back from the store match the sizes and sha256 they were written with (the content inside "
        "was hashed and counted as it was exported)."
    )
    assert checks[EMBEDDINGS_CHECK].passed
    assert checks[EMBEDDINGS_CHECK].metadata["parsed_by"] == (
        "not parsed again: the server printed each from a value pgvector accepted"
    )
    assert checks[EMBEDDINGS_CHECK].metadata["vectors"] == 40


def test_a_run_finds_a_collection_of_mixed_dimensions_without_parsing(store_db, backup_root):
    fill_sample_store(store_db, collections=2, embeddings_per_collection=20, dimension=8)
    add_a_shorter_vector(store_db)
    result, backup_set = written(store_db, backup_root)

    checks = {
        check.name: check
        for check in check_written_set(LocalBackupStore(backup_root), result, logging.getLogger(__name__))[0]
    }

    assert not checks[EMBEDDINGS_CHECK].passed
    assert re.fullmatch(
        r"Vectors that would not search as they should: collection 'sample_collection_1' has vectors of \[3, 8\] "
        r"dimensions\.",
        checks[EMBEDDINGS_CHECK].description,
    )


def test_a_run_whose_file_changed_after_it_was_written_marks_the_set_damaged(store_db, backup_root):
    fill_sample_store(store_db, collections=2, embeddings_per_collection=20, dimension=8)
    result, backup_set = written(store_db, backup_root)
    path = set_files(backup_set)[EMBEDDING_TABLE]
    path.write_bytes(flip_a_digit(path.read_bytes()))

    checks = {
        check.name: check
        for check in check_written_set(LocalBackupStore(backup_root), result, logging.getLogger(__name__))[0]
    }

    assert not checks[FILES_CHECK].passed and "damaged" in checks[FILES_CHECK].description
    assert LocalBackupStore(backup_root).locate(timestamp=result.timestamp).status == "damaged"


def test_a_run_parses_vectors_of_a_column_the_snapshot_did_not_count(store_db, backup_root):
    execute(
        store_db,
        lambda cur: cur.execute(
            "CREATE TABLE docs (id int PRIMARY KEY, v vector); INSERT INTO docs SELECT i, '[1,2]' FROM "
            "generate_series(1, 5) i"
        ),
    )
    choices = BackupChoices(compression=UNCOMPRESSED, tables=(TableSpec("docs"),))
    options = backup_options(store_db, "public", choices, 1, 10, logging.getLogger(__name__))
    result, backup_set = written(store_db, backup_root, options)

    checks = {
        check.name: check
        for check in check_written_set(LocalBackupStore(backup_root), result, logging.getLogger(__name__))[0]
    }

    assert checks[EMBEDDINGS_CHECK].passed
    assert checks[EMBEDDINGS_CHECK].metadata["parsed_by"] == "the run's process"
