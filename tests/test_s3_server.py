"""The S3 server the object-storage tests run against, and the guarantee an object store's claims rest on.

An object store has no flock: a set is claimed by creating its claim object only if it does not exist
(`If-None-Match: *`). This checks that the test server (SeaweedFS from PyPI) refuses the second create, as
AWS S3 and MinIO do; if a server upgrade dropped it, claims on it would no longer be atomic.
"""

import pytest
from botocore.exceptions import ClientError


def test_a_conditional_create_refuses_a_second_claim(s3_server, s3_bucket):
    client = s3_server.client()
    key = "vector_bak/vector_backup_20261201_120000.claim"
    client.put_object(Bucket=s3_bucket, Key=key, Body=b"run one", IfNoneMatch="*")

    with pytest.raises(ClientError) as refused:
        client.put_object(Bucket=s3_bucket, Key=key, Body=b"run two", IfNoneMatch="*")

    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    assert refused.value.response["Error"]["Code"] == "PreconditionFailed"
    assert client.get_object(Bucket=s3_bucket, Key=key)["Body"].read() == b"run one"
