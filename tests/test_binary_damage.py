"""Crafted and damaged binary files (issue 34): a stream cut short inside a tuple, bytes after its trailer, a field
length of 2**31-1, a tuple of the wrong field count. Each is refused as DataError naming its file, before the server
reads the offending bytes, and nothing is loaded: plain and compressed, by one session and by the parallel load, and
the set checks find the same. The files' manifests are rewritten to match them (sizes and sha256s), as a crafted set's
would be: only the stream's own structure can refuse them."""

import hashlib
import json

import pytest

from pgvector_pipeline import pgcopy
from pgvector_pipeline.contract import RestoreFlags
from pgvector_pipeline.errors import DataError
from pgvector_pipeline.names import EMBEDDING_TABLE
from pgvector_pipeline.operations.restore import restore_backup_set
from pgvector_pipeline.operations.set_checks import check_files_and_embeddings
from pgvector_pipeline.store.codecs import NONE, codec_of
from pgvector_pipeline.store.local import LocalBackupStore
from pgvector_pipeline.testing.db import query
from tests.binary_helpers import BINARY_GZIP, BINARY_PLAIN, BINARY_ZSTD, backed_up, make_tricky_store, rows
from tests.helpers import RecordingLog, csv_of, manifest_path, set_directory


@pytest.fixture
def tricky_db(empty_db) -> str:
    return make_tricky_store(empty_db)


def cut_mid_tuple(data: bytes) -> bytes:
    return data[: len(data) // 2]


def bytes_after_the_trailer(data: bytes) -> bytes:
    return data + b"\x00\x05"


def a_huge_field_length(data: bytes) -> bytes:
    at = len(pgcopy.HEADER) + 2  # the first tuple's first field
    return data[:at] + (2**31 - 1).to_bytes(4, "big") + data[at + 4 :]


def a_wrong_field_count(data: bytes) -> bytes:
    at = len(pgcopy.HEADER)
    count = int.from_bytes(data[at : at + 2], "big")
    return data[:at] + (count - 1).to_bytes(2, "big") + data[at + 2 :]


def _compressed(data: bytes, codec: str) -> bytes:
    encoder = codec_of(codec).encoder()
    return encoder.compress(data) + encoder.flush()


# Each crafted change, and what the refusal says after the file's name.
CRAFTED = [
    (cut_mid_tuple, "the binary COPY stream ends inside a tuple (no trailer): the file is cut short."),
    (bytes_after_the_trailer, "bytes follow the binary COPY trailer: the file is damaged."),
    (a_huge_field_length, "a field of the binary COPY stream claims 2147483647 bytes: the file is damaged."),
    (
        a_wrong_field_count,
        "a tuple of the binary COPY stream has 4 fields where the set's table has 5 columns: the file is damaged.",
    ),
]


def craft(backup_set, table: str, change) -> str:
    """Change the binary stream of `table`'s file (decompressed, changed, compressed again as it was) and write a
    manifest that matches the result; the file's name."""
    path = set_directory(backup_set) / backup_set.table_files[table]
    codec = backup_set.manifest.tables[table].codec
    stream = change(csv_of(path))
    stored = stream if codec == NONE else _compressed(stream, codec)
    path.write_bytes(stored)
    document = json.loads(manifest_path(backup_set).read_text())
    document["tables"][table].update(
        bytes=len(stream),
        sha256=hashlib.sha256(stream).hexdigest(),
        stored_bytes=len(stored),
        stored_sha256=hashlib.sha256(stored).hexdigest(),
    )
    manifest_path(backup_set).write_text(json.dumps(document))
    return path.name


def a_stream(rows: int = 3) -> bytes:
    """A binary COPY stream of (int4, text, NULL) tuples, with a header extension of 3 bytes."""
    header = pgcopy.SIGNATURE + (0).to_bytes(4, "big") + (3).to_bytes(4, "big") + b"ext"
    tuples = b"".join(
        (3).to_bytes(2, "big")
        + (4).to_bytes(4, "big")
        + n.to_bytes(4, "big")
        + (n + 1).to_bytes(4, "big")
        + b"x" * (n + 1)
        + (-1).to_bytes(4, "big", signed=True)
        for n in range(rows)
    )
    return header + tuples + pgcopy.TRAILER


class _Reads:
    """`data` handed out `size` bytes per read."""

    def __init__(self, data: bytes, size: int):
        self.data, self.size, self.at = data, size, 0

    def read(self, size: int = -1, /) -> bytes:
        piece = self.data[self.at : self.at + self.size]
        self.at += len(piece)
        return piece


def read_all(data: bytes, size: int) -> bytes:
    checked, out = pgcopy.CheckedStream(_Reads(data, size), "f.pgcopy", 3), b""
    while piece := checked.read(1 << 16):
        out += piece
    return out


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 19, 64, 1 << 16])
def test_the_stream_check_passes_a_sound_stream_and_refuses_each_crafted_one_however_it_is_read(size):
    data = a_stream()
    assert read_all(data, size) == data
    tuples = len(data) - len(pgcopy.TRAILER)
    for crafted, words in [
        (data[:tuples], "the binary COPY stream ends inside a tuple (no trailer): the file is cut short."),
        (data[:7], "the binary COPY stream ends before its binary COPY header: the file is cut short."),
        (data + b"\x00", "bytes follow the binary COPY trailer: the file is damaged."),
        (data.replace(b"\x00\x03\x00\x00\x00\x04", b"\x00\x02\x00\x00\x00\x04", 1), "has 2 fields where"),
        (data[:24] + b"\xff\xff\xff\xfe" + data[28:], "a field of the binary COPY stream claims -2 bytes"),
        (b"PGCOPY\n\xff\r\n\x01" + data[11:], "does not start with PostgreSQL's binary COPY signature"),
    ]:
        with pytest.raises(DataError) as refused:
            read_all(crafted, size)
        assert refused.value.message.startswith("f.pgcopy") and words in refused.value.message


def restore_crafted(dsn: str, backup_root, timestamp: str, log=None):
    return restore_backup_set(
        dsn,
        "public",
        LocalBackupStore(backup_root).locate(timestamp=timestamp),
        RestoreFlags(truncate_before_restore=True),
        log=log,
    )


@pytest.mark.parametrize(("change", "words"), CRAFTED)
@pytest.mark.parametrize("options", [BINARY_PLAIN, BINARY_ZSTD], ids=["plain", "zstd"])
def test_a_crafted_binary_file_is_refused_naming_it_and_nothing_loads(tricky_db, backup_root, options, change, words):
    backup_set = backed_up(tricky_db, backup_root, options)
    name = craft(backup_set, EMBEDDING_TABLE, change)
    before = rows(tricky_db)

    with pytest.raises(DataError) as refused:
        restore_crafted(tricky_db, backup_root, backup_set.timestamp)

    assert refused.value.message == f"{backup_set.location}/{name}: {words}"
    assert rows(tricky_db) == before


@pytest.mark.parametrize(("change", "words"), CRAFTED)
def test_a_crafted_binary_file_is_refused_by_the_parallel_load(tricky_db, backup_root, monkeypatch, change, words):
    monkeypatch.setattr("pgvector_pipeline.postgres.load.PARALLEL_LOAD_MIN_BYTES", 0)
    monkeypatch.setattr("pgvector_pipeline.postgres.parallel_load.BLOCK_BYTES", 64)
    backup_set = backed_up(tricky_db, backup_root, BINARY_GZIP)
    name = craft(backup_set, EMBEDDING_TABLE, change)
    before = rows(tricky_db)
    log = RecordingLog()

    with pytest.raises(DataError) as refused:
        restore_crafted(tricky_db, backup_root, backup_set.timestamp, log)

    assert any("by 2 sessions at once" in line for line in log.infos), log.infos
    assert refused.value.message == f"{backup_set.location}/{name}: {words}"
    assert rows(tricky_db) == before
    assert query(tricky_db, "SELECT count(*) FROM pg_class WHERE relname LIKE 'pgvector_new_%%'") == [(0,)]


@pytest.mark.parametrize(("change", "words"), CRAFTED)
def test_the_checks_find_a_crafted_binary_file(tricky_db, backup_root, change, words):
    backup_set = backed_up(tricky_db, backup_root, BINARY_PLAIN)
    name = craft(backup_set, EMBEDDING_TABLE, change)

    files, vectors = check_files_and_embeddings(LocalBackupStore(backup_root).locate(timestamp=backup_set.timestamp))

    assert (files.passed, vectors.passed) == (False, False)
    assert files.description == f"{name}: {words}"
