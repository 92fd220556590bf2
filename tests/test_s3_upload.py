"""Streaming multipart uploads against a real S3 server (SeaweedFS): exact bytes, bounded parts, nothing left
behind on failure."""

import hashlib
import os

import pytest

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
    assert client.head_object(Bucket=s3_bucket, Key="vector_bak/big.csv.zst", PartNumber=1)["PartsCount"] == 4


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
