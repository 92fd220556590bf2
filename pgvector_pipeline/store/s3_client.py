"""What the object-storage backup store (store.s3) needs of S3 itself: the root URL, the client, and S3's
errors turned into the pipeline's (see errors.py), each saying what to check.

The client is boto3's, configured from the standard AWS chain (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_REGION, profiles, instance and pod roles): the deployment's environment, never run
config. Credentials are never taken from, or shown in, the root URL: no message here quotes one.

boto3 and botocore (an optional, heavy dependency) are imported inside the functions that use them, so that a
process with a local store never loads them.
"""

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pgvector_pipeline.errors import InvalidParams, PipelineError, ResourceNotFound, StorageError
from pgvector_pipeline.store.s3_upload import DEFAULT_PART_SIZE, MIN_PART_SIZE

S3_SCHEME = "s3://"
# S3's bucket naming rules (also MinIO's and SeaweedFS's).
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
# Prefix segments: plain names only, so a prefix cannot climb or hide (no '..', no empty segment, no controls).
_SEGMENT = re.compile(r"[A-Za-z0-9_.=-]{1,200}")
# Every call is bounded, so that an endpoint that stops answering (a hung server, a dead link, a proxy that stops
# forwarding) fails the run within GIVE_UP_S: a dropped connection, a timeout or a 5xx is tried again (with
# back-off) up to MAX_ATTEMPTS times in all, each attempt waiting at most CONNECT_TIMEOUT_S for a connection and
# READ_TIMEOUT_S for each answer (between any two bytes of it). boto3's own bounds (60 s, 5 attempts) kept a
# listing of a silent endpoint waiting 5 minutes, a restore 10. After such a failure the clean-up does not wait on
# the endpoint again (see S3Objects.answering).
MAX_ATTEMPTS = 3
CONNECT_TIMEOUT_S = 5
READ_TIMEOUT_S = 15
GIVE_UP_S = 60
# Codes S3 answers for bad or refused credentials: fixing configuration helps, retrying does not.
_CREDENTIAL_CODES = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
    "AllAccessDisabled",
    "403",
}


# What servers answer a conditional create (If-None-Match: *) of a key that exists (AWS: 412; 409 while another
# create of the same key is in flight).
CREATE_REFUSED_CODES = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict", "409"})
# What servers answer for a key that does not exist (a HEAD has no body, so only its status).
MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
# What servers answer a conditional put (If-Match: <ETag>) over an object that changed or is gone (AWS: 404 for a
# missing key; SeaweedFS: 412 for both). 409 (a conflicting write in flight) is not among them: tried again later.
SUPERSEDED_CODES = frozenset({"PreconditionFailed", "412"}) | MISSING_CODES


def is_s3_root(root: str) -> bool:
    return root.startswith(S3_SCHEME)


@dataclass(frozen=True)
class S3Root:
    """A backup root on object storage: `s3://bucket/prefix` (the prefix may be empty)."""

    bucket: str
    prefix: str = ""

    @classmethod
    def parse(cls, url: str) -> "S3Root":
        """The root a URL names; InvalidParams (never quoting credentials) for anything else."""
        if not is_s3_root(url):
            raise InvalidParams("An object-storage backup root starts with s3://, as in s3://my-bucket/backups.")
        bucket, _, prefix = url[len(S3_SCHEME) :].partition("/")
        if "@" in bucket or ":" in bucket:
            raise InvalidParams(
                "The backup root must not carry credentials or a port (s3://bucket/prefix only): give credentials "
                "through AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile or a role, and the server in "
                "AWS_ENDPOINT_URL."
            )
        if not _BUCKET.fullmatch(bucket) or ".." in bucket:
            raise InvalidParams(
                f"{bucket!r:.70} is not a bucket name: 3-63 lower-case letters, digits, dots and hyphens. The backup "
                f"root looks like s3://my-bucket/backups."
            )
        segments = prefix.strip("/").split("/") if prefix.strip("/") else []
        if any(not _SEGMENT.fullmatch(s) or set(s) == {"."} for s in segments):
            raise InvalidParams(
                "The prefix of the backup root may hold only letters, digits and _ . = - between single slashes "
                "(no '..', no empty parts): for example s3://my-bucket/team/backups."
            )
        return cls(bucket, "/".join(segments))

    def key(self, *parts: str) -> str:
        """The object key of a path below the root."""
        return "/".join(part for part in (self.prefix, *parts) if part)

    def url(self, *parts: str) -> str:
        """s3://bucket/prefix/parts, for messages and metadata."""
        return S3_SCHEME + "/".join(part for part in (self.bucket, self.prefix, *parts) if part)


@dataclass(frozen=True)
class S3Options:
    """How the store uses S3: upload part size, claim and hold timing, server-side encryption passed through."""

    part_size: int = DEFAULT_PART_SIZE
    # A claim or hold is refreshed this often while its run is alive, and taken for a dead run's once it has not
    # been refreshed for `stale_after_s` (object storage cannot tell a live writer from a dead one otherwise).
    refresh_s: float = 30.0
    stale_after_s: float = 600.0
    sse: str | None = None  # ServerSideEncryption: "AES256" or "aws:kms"
    sse_kms_key_id: str | None = None

    def __post_init__(self) -> None:
        if self.part_size < MIN_PART_SIZE:
            raise InvalidParams(
                f"part_size must be at least {MIN_PART_SIZE} bytes (S3's minimum), not {self.part_size}."
            )
        if not 0 < self.refresh_s < self.stale_after_s:
            raise InvalidParams("refresh_s must be more than 0 and less than stale_after_s.")
        if self.sse not in (None, "AES256", "aws:kms"):
            raise InvalidParams(f"sse {self.sse!r:.30} is not known: use AES256 or aws:kms (or leave it empty).")

    def put_args(self) -> dict[str, str]:
        """Extra arguments of every object written (put_object, create_multipart_upload)."""
        args = {}
        if self.sse:
            args["ServerSideEncryption"] = self.sse
        if self.sse_kms_key_id:
            args["SSEKMSKeyId"] = self.sse_kms_key_id
        return args


def make_client(endpoint_url: str | None = None, region: str | None = None) -> Any:
    """A boto3 S3 client from the standard AWS chain; `endpoint_url` and `region` override it when given."""
    import boto3

    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint_url or None, region_name=region or None, config=client_config()
    )


def client_config() -> Any:
    """The botocore Config of every S3 client: bounded calls (see GIVE_UP_S), path-style addressing."""
    from botocore.config import Config

    return Config(
        # total_max_attempts counts the first attempt (botocore's max_attempts counts only the retries).
        retries={"total_max_attempts": MAX_ATTEMPTS, "mode": "standard"},
        connect_timeout=CONNECT_TIMEOUT_S,
        read_timeout=READ_TIMEOUT_S,
        # Path-style addressing works with every S3-compatible server; AWS still serves it. The body is not
        # hashed into the signature (botocore does so on http endpoints unless told not to): each part carries
        # a CRC32 checksum the server checks, and the set's sha256 are checked end to end; signing costs a
        # second sha256 pass over every byte (a backup to SeaweedFS on loopback took 1.47x the local one).
        s3={"addressing_style": "path", "payload_signing_enabled": False},
    )


def error_code(exc: BaseException) -> str | None:
    """S3's error code of a ClientError ("NoSuchKey", "PreconditionFailed", "404", ...), else None."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code") or response.get("ResponseMetadata", {}).get("HTTPStatusCode"))
    return None


def transport_errors() -> tuple[type[BaseException], ...]:
    """Everything a call to S3 or a read of an object's stream raises when the server or the network fails."""
    from botocore.exceptions import BotoCoreError, ClientError
    from urllib3.exceptions import HTTPError

    return (BotoCoreError, ClientError, HTTPError, OSError)


def unanswered(exc: BaseException) -> bool:
    """Whether a failed call or read got no answer at all (connection refused, dropped or timed out, after the
    bounded attempts), as opposed to an S3 error the server answered."""
    return error_code(exc) is None and isinstance(exc, transport_errors())


def s3_error(exc: BaseException, doing: str, where: str) -> PipelineError:
    """A clear pipeline error for a failed call to S3 while `doing` at `where` (an s3:// URL)."""
    from botocore.exceptions import NoCredentialsError, PartialCredentialsError

    code = error_code(exc)
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return InvalidParams(
            f"No S3 credentials were found while {doing} at {where}. Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
            f"(or AWS_PROFILE, or give the code server a role)."
        )
    if code in ("NoSuchBucket",):
        return ResourceNotFound(
            f"The bucket of {where} does not exist (while {doing}). Create it, or correct PGVECTOR_BACKUP_ROOT and "
            f"AWS_ENDPOINT_URL."
        )
    if code in _CREDENTIAL_CODES:
        return InvalidParams(
            f"S3 refused the request while {doing} at {where} ({code}): the credentials are wrong, or they lack a "
            f"permission the tool needs (list, get, put, delete, multipart upload; the policy: docs/how-to/s3.md, Production). Check "
            f"AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, the profile or role, and the bucket policy."
        )
    if code is not None:
        message = getattr(exc, "response", {}).get("Error", {}).get("Message") or ""
        return StorageError(
            f"S3 answered {code} ({message[:200]}) while {doing} at {where}.",
            can_retry=code in ("500", "502", "503", "504", "SlowDown", "InternalError", "ServiceUnavailable"),
        )
    # No answer: the connection failed, dropped or timed out (after botocore's bounded retries).
    return StorageError(
        f"S3 at {where} could not be reached or stopped answering while {doing} ({type(exc).__name__}), after up to "
        f"{MAX_ATTEMPTS} attempts. Check AWS_ENDPOINT_URL and that the server is up; the run can be retried.",
        can_retry=True,
    )


@contextmanager
def translated(doing: str, where: str) -> Iterator[None]:
    """S3 and network errors inside the block become pipeline errors (see s3_error); pipeline errors pass."""
    try:
        yield
    except PipelineError:
        raise
    except transport_errors() as exc:
        raise s3_error(exc, doing, where) from exc
