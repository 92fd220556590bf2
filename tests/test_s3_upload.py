"""Streaming multipart uploads against a real S3 server (SeaweedFS): exact bytes, bounded parts, nothing left
behind on failure."""

import hashlib
import os

import pytest
import zstandard

from pgvector_pipeline.store.codecs import ZSTD, Compression
from pgvector_pipeline.store.files import EncodingSink
from pgvector_pipeline.store.s3_upload import MIN_PART_SIZE, MultipartUpload


def chunks(total: int, size: int = 70_000):
    """`total` pseudo-random bytes in COPY-sized writes."""
    produced = 0
    while produced < total:
        chunk = os.urandom(min(size, total - produced))
        produced += len(chunk)
        yield chunk


def test_an_object_streams_in_parts_and_reads_back_exactly(s3_server, s3_bucket):
    client = s3_server.client()
    digest = hashlib.sha256()
    with MultipartUpload(client, s3_bucket, "vector_bak/big.csv.zst", part_size=MIN_PART_SIZE) as upload:
        for chunk in chunks(3 * MIN_PART_SIZE + 12_345):
            digest.update(chunk)
            upload.write(chunk)
    assert upload.completed and upload.bytes == 3 * MIN_PART_SIZE + 12_345
    stored = client.get_object(Bucket=s3_bucket, Key="vector_bak/big.csv.zst")["Body"].read()
    assert hashlib.sha256(stored).hexdigest() == digest.hexdigest()
    # A part is sent once it holds part_size bytes: 75 writes of 70,000 (5,250,000 bytes) each, then the rest.
    first = client.head_object(Bucket=s3_bucket, Key="vector_bak/big.csv.zst", PartNumber=1)
    assert (first["PartsCount"], first["ContentLength"]) == (3, 75 * 70_000)


def test_an_empty_object_is_one_empty_part(s3_server, s3_bucket):
    client = s3_server.client()
    with MultipartUpload(client, s3_bucket, "vector_bak/empty.csv"):
        pass
    assert client.get_object(Bucket=s3_bucket, Key="vector_bak/empty.csv")["Body"].read() == b""


def test_a_failed_writer_aborts_its_upload_and_leaves_no_object(s3_server, s3_bucket):
    client = s3_server.client()
    with pytest.raises(RuntimeError, match="COPY failed"):
        with MultipartUpload(client, s3_bucket, "vector_bak/cut.csv", part_size=MIN_PART_SIZE) as upload:
            for chunk in chunks(2 * MIN_PART_SIZE):
                upload.write(chunk)
            raise RuntimeError("COPY failed")
    assert not upload.completed
    assert client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []
    assert client.list_objects_v2(Bucket=s3_bucket).get("KeyCount", 0) == 0


def test_parts_below_the_s3_minimum_are_refused(s3_server, s3_bucket):
    with pytest.raises(ValueError, match="below S3's minimum"):
        MultipartUpload(s3_server.client(), s3_bucket, "k", part_size=1 << 20)


class _UploadSink(EncodingSink):
    """A table writer's core on object storage: CSV in, compressed parts out to one multipart upload."""

    def __init__(self, upload: MultipartUpload, compression: Compression):
        super().__init__(compression)
        self._upload = upload

    def _put(self, data: bytes) -> None:
        self._upload.write(data)


def test_a_csv_streams_compressed_into_an_object_with_both_digests(s3_server, s3_bucket):
    client = s3_server.client()
    lines = [b"id,embedding\n"] + [f"doc-{i},[{i * 0.001:.6f},0.5,0.25]\n".encode() for i in range(400_000)]
    with MultipartUpload(client, s3_bucket, "vector_bak/t_20261201_120000.csv.zst") as upload:
        sink = _UploadSink(upload, Compression(ZSTD))
        for line in lines:
            sink.write(line)
        sink.finish_encoding()
    csv = b"".join(lines)
    stored = client.get_object(Bucket=s3_bucket, Key="vector_bak/t_20261201_120000.csv.zst")["Body"].read()
    assert (sink.writes, sink.bytes, sink.sha256) == (len(lines), len(csv), hashlib.sha256(csv).hexdigest())
    assert (sink.stored_bytes, sink.stored_sha256) == (len(stored), hashlib.sha256(stored).hexdigest())
    assert zstandard.ZstdDecompressor().decompressobj().decompress(stored) == csv
    assert upload.bytes == len(stored) < len(csv) / 2


def test_parts_grow_so_a_large_object_stays_under_s3s_part_limit(s3_server, s3_bucket):
    """S3 takes at most 10,000 parts: the part size doubles after every `parts_per_size` parts (1,000 in use)."""
    client = s3_server.client()
    key = "vector_bak/growing.csv"
    with MultipartUpload(client, s3_bucket, key, part_size=MIN_PART_SIZE, parts_per_size=2) as upload:
        for chunk in chunks(8 * MIN_PART_SIZE, size=1 << 20):
            upload.write(chunk)
    sizes = [client.head_object(Bucket=s3_bucket, Key=key, PartNumber=n)["ContentLength"] for n in range(1, 5)]
    assert sizes == [MIN_PART_SIZE, MIN_PART_SIZE, 2 * MIN_PART_SIZE, 2 * MIN_PART_SIZE]
    # The last 10 MiB are sent as the fifth part when the upload completes (short of the 20 MiB due).
    assert client.head_object(Bucket=s3_bucket, Key=key, PartNumber=1)["PartsCount"] == 5
