"""S3 backup stores for the fault tests, on a real SeaweedFS server (directly, or through a proxy that fails)."""

from pgvector_pipeline.store.s3 import S3BackupStore
from pgvector_pipeline.store.s3_client import S3Options, S3Root, client_config
from pgvector_pipeline.store.s3_upload import MIN_PART_SIZE
from pgvector_pipeline.testing.seaweed import ACCESS_KEY, REGION, SECRET_KEY

# Claims and holds go stale fast here, so a dead run's leftovers can be cleaned within the test.
FAST = S3Options(part_size=MIN_PART_SIZE, refresh_s=0.2, stale_after_s=2.0)


def store_on(server, bucket: str, endpoint: str | None = None, options: S3Options = FAST, **client) -> S3BackupStore:
    """The store s3://bucket/backups of `server` (through `endpoint` when given), with the deployment's client
    configuration; `client` overrides the credentials."""
    import boto3

    credentials = client or {"aws_access_key_id": ACCESS_KEY, "aws_secret_access_key": SECRET_KEY}
    s3 = boto3.client(
        "s3", endpoint_url=endpoint or server.endpoint_url, region_name=REGION, config=client_config(), **credentials
    )
    return S3BackupStore(s3, S3Root(bucket, "backups"), options)


def requests_of(store: S3BackupStore) -> list[str]:
    """Every HTTP request the store's client sends from now on (retries included), by operation name."""
    sent: list[str] = []
    store.client.meta.events.register("before-send.s3", lambda request, **_: sent.append(request.method))
    return sent


def uploads(server, bucket: str) -> list[str]:
    """The keys of the bucket's unfinished multipart uploads."""
    return [u["Key"] for u in server.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


def objects(server, bucket: str) -> list[str]:
    """The keys of every object in the bucket."""
    return [o["Key"] for o in server.client().list_objects_v2(Bucket=bucket).get("Contents", [])]
