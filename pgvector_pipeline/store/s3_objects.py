"""The objects of a backup store on S3-compatible object storage (see store.s3): keys under the root's prefix,
plain object operations (put, conditional put, get, head, delete, list), whether the server still answers, and
whether it honours conditional writes. Claims and holds (store.s3_lease), set writers and readers (store.s3_set) and
the store itself (store.s3, an S3Objects) are built on it.
"""

import hashlib
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict

from pgvector_pipeline.errors import StorageError
from pgvector_pipeline.store.keys import NO_KEYS, SetKeys
from pgvector_pipeline.store.layout import BACKUP_DIR_NAME, GLOBAL_TASK_KEY, parse_set_file_name, validate_task_id
from pgvector_pipeline.store.manifest import SetDocument
from pgvector_pipeline.store.s3_client import (
    CREATE_REFUSED_CODES,
    MISSING_CODES,
    SUPERSEDED_CODES,
    S3Options,
    S3Root,
    error_code,
    s3_error,
    translated,
    transport_errors,
    unanswered,
)

_READ_CHUNK = 1 << 20


class ObjectInfo(TypedDict, total=False):
    """What the server says of an object, as far as this store reads it (boto3's answers are untyped dicts): a listing
    entry (Key, Size, LastModified, ETag; a common prefix has only Prefix), a HEAD answer or a small GET's
    (ContentLength, ETag, LastModified)."""

    Key: str
    Prefix: str
    Size: int
    ContentLength: int
    ETag: str
    LastModified: datetime


class S3Objects:
    """The objects under `root` (s3://bucket/prefix) on the server `client` talks to."""

    def __init__(self, client: Any, root: S3Root, options: S3Options | None = None, keys: SetKeys = NO_KEYS):
        self.client, self.root = client, root
        self.options = options or S3Options()
        self.keys = keys  # whom new sets are encrypted to, what reads encrypted ones (store.keys)
        self._conditional_writes: tuple[bool, bool] | None = None  # (If-None-Match, If-Match) honoured, once probed
        self._silent = False  # see answering
        client.meta.events.register("after-call.s3", self._answered)
        client.meta.events.register("after-call-error.s3", self._call_failed)

    # --- keys and plain object operations -------------------------------------------------------------------

    @property
    def where(self) -> str:
        return self.root.url()

    def _location_parts(self, task: str) -> tuple[str, ...]:
        if task == GLOBAL_TASK_KEY:
            return (BACKUP_DIR_NAME,)
        return (validate_task_id(task), BACKUP_DIR_NAME)

    def location(self, task: str) -> str:
        return self.root.url(*self._location_parts(task))

    def location_key(self, task: str, name: str = "") -> str:
        """The key of `name` in the location of `task` (with `name` empty: the location's prefix, ending in /)."""
        return self.root.key(*self._location_parts(task)) + "/" + name

    def url_of(self, key: str) -> str:
        return f"s3://{self.root.bucket}/{key}"

    def put(self, key: str, body: bytes, *, if_absent: bool = False, if_match: str | None = None) -> str:
        """Put a small object; its ETag. With `if_absent`, only if the key does not exist; with `if_match`, only over
        the object with that ETag (raises the server's 412, or 404 where the key is gone)."""
        extra = {"IfNoneMatch": "*"} if if_absent else {}
        if if_match is not None:
            extra["IfMatch"] = if_match
        answer = self.client.put_object(Bucket=self.root.bucket, Key=key, Body=body, **extra, **self.options.put_args())
        return str(answer.get("ETag"))

    def get(self, key: str, limit: int) -> bytes:
        """At most `limit` bytes from the start of an object (raises when it is missing)."""
        answer = self.client.get_object(Bucket=self.root.bucket, Key=key, Range=f"bytes=0-{limit - 1}")
        return self.read_body(answer["Body"], limit)

    def read_small(self, key: str, limit: int) -> tuple[bytes, ObjectInfo] | None:
        """At most `limit` bytes of an object and its metadata (ETag, LastModified), or None when it does not exist."""
        try:
            answer = self.client.get_object(Bucket=self.root.bucket, Key=key, Range=f"bytes=0-{limit - 1}")
        except transport_errors() as exc:
            if error_code(exc) in MISSING_CODES:
                return None
            raise
        return self.read_body(answer["Body"], limit), answer

    def read_body(self, body: Any, limit: int) -> bytes:
        """At most `limit` bytes of an object's body, closed; a read that gets no answer is noted (see answering)."""
        with body:
            try:
                data: bytes = body.read(limit)
                return data
            except transport_errors() as exc:
                self.heard_nothing(exc)
                raise

    # --- an endpoint that stops answering -----------------------------------------------------------------

    @property
    def answering(self) -> bool:
        """False once a call or read got no answer at all (after its bounded attempts, see s3_client.GIVE_UP_S)
        and none was answered since. Clean-up after a failure (aborting uploads, deleting a claim or hold, a log
        entry) is skipped then, rather than waiting out the same bound once more per call: what it leaves is
        removed by the next run (the owner is gone, or its claim goes stale) and the bucket's lifecycle rule."""
        return not self._silent

    def heard_nothing(self, exc: BaseException) -> None:
        """Note a failed call or read: one without any answer makes the store not `answering`."""
        if unanswered(exc):
            self._silent = True

    def _answered(self, **_: Any) -> None:
        self._silent = False

    def _call_failed(self, exception: BaseException | None = None, **_: Any) -> None:
        if exception is not None:
            self.heard_nothing(exception)

    def head(self, key: str) -> ObjectInfo | None:
        """An object's metadata, or None when it does not exist."""
        try:
            info: ObjectInfo = self.client.head_object(Bucket=self.root.bucket, Key=key)
            return info
        except transport_errors() as exc:
            if error_code(exc) in MISSING_CODES:
                return None
            raise s3_error(exc, "reading an object's metadata", self.url_of(key)) from exc

    def delete_quietly(self, keys: list[str]) -> None:
        """Delete objects in order, one by one (order matters: a set's CSVs go before its manifest); nothing while
        the server is not answering."""
        for key in keys:
            if not self.answering:
                return  # left for the next cleanup
            try:
                self.client.delete_object(Bucket=self.root.bucket, Key=key)
            except transport_errors():
                pass  # left for the next cleanup

    def sha256_of(self, key: str) -> str:
        with translated("reading back an uploaded file", self.url_of(key)):
            answer = self.client.get_object(Bucket=self.root.bucket, Key=key)
            with answer["Body"] as body:
                try:
                    return stream_sha256(body)
                except transport_errors() as exc:
                    self.heard_nothing(exc)
                    raise

    def objects(self, prefix: str, delimiter: str | None = None) -> Iterator[ObjectInfo]:
        """Every object under `prefix` (and, with a delimiter, each common prefix as {"Prefix": ...}), page by page."""
        paginator = self.client.get_paginator("list_objects_v2")
        extra = {"Delimiter": delimiter} if delimiter else {}
        with translated("listing", self.url_of(prefix)):
            for page in paginator.paginate(Bucket=self.root.bucket, Prefix=prefix, **extra):
                yield from page.get("Contents", [])
                yield from page.get("CommonPrefixes", [])

    def location_names(self, task: str) -> list[tuple[str, ObjectInfo]]:
        """(name relative to the location, listing entry) of every object in a task's location."""
        prefix = self.location_key(task)
        return [(item["Key"][len(prefix) :], item) for item in self.objects(prefix)]

    def set_object_names(self, task: str, timestamp: str) -> list[str]:
        """The names of the objects of set `timestamp` (files, manifest, sealed manifest; not its claim or holds)."""
        return set_names((name for name, _ in self.location_names(task)), timestamp)

    def stale(self, entry: ObjectInfo) -> bool:
        """Whether a claim or hold (a listing or head entry) was not refreshed for stale_after_s: a dead run's."""
        return self.older_than_stale(entry.get("LastModified"))

    def older_than_stale(self, moment: datetime | None) -> bool:
        """Whether `moment` (a claim's or hold's last refresh) is more than stale_after_s ago."""
        return moment is not None and moment < datetime.now(UTC) - timedelta(seconds=self.options.stale_after_s)

    def check_conditional_create(self) -> None:
        """Refuse a server that ignores If-None-Match on PUT: there, two runs could both claim one set. Checked once
        per store object, before its first claim (see _probe_conditional_writes)."""
        if not self._probe_conditional_writes()[0]:
            raise StorageError(
                f"The S3 server of {self.where} ignores If-None-Match on PUT, so it cannot make a claim atomic: two "
                f"runs could write the same set. Use a server with conditional writes (AWS S3, MinIO since 2024, "
                f"Ceph RGW, SeaweedFS 4.x, Cloudflare R2, GCS), or a local or NFS backup root. Nothing was written."
            )

    @property
    def if_match_honoured(self) -> bool:
        """Whether the server honours If-Match on PUT (leases are fenced with it; else compared before each put)."""
        return self._probe_conditional_writes()[1]

    def _probe_conditional_writes(self) -> tuple[bool, bool]:
        """Whether the server honours If-None-Match and If-Match on PUT, probed once per store object: a probe object
        is created, created again (must get 412) and put over a wrong ETag (412 where If-Match is honoured)."""
        if self._conditional_writes is not None:
            return self._conditional_writes
        key = self.root.key(f".pgvector_claim_probe_{uuid.uuid4().hex}")
        try:
            with translated("checking conditional writes", self.url_of(key)):
                self.put(key, b"probe", if_absent=True)
                honoured = (
                    self._refused(lambda: self.put(key, b"probe", if_absent=True), CREATE_REFUSED_CODES),
                    self._refused(lambda: self.put(key, b"probe", if_match=f'"{"0" * 32}"'), SUPERSEDED_CODES),
                )
        finally:
            self.delete_quietly([key])
        self._conditional_writes = honoured
        return honoured

    @staticmethod
    def _refused(put: Callable[[], object], codes: frozenset[str]) -> bool:
        """Whether a conditional put is refused with one of `codes` (other errors are raised)."""
        try:
            put()
        except transport_errors() as exc:
            if error_code(exc) not in codes:
                raise
            return True
        return False

    def missing_file(self, task: str, manifest: SetDocument, etags: Mapping[str, str | None]) -> str | None:
        """The first file of `manifest` that is not in the store as expected: gone, of another size, or another
        object than the one with the ETag `etags` gives for its name (when it gives one); in words. None: all are."""
        for entry in manifest.tables.values():
            head = self.head(self.location_key(task, entry.file))
            if head is None:
                return f"{entry.file} was gone"
            if int(head.get("ContentLength", -1)) != entry.file_bytes:
                return f"{entry.file} held {head.get('ContentLength')} bytes, not {entry.file_bytes},"
            if etags.get(entry.file) not in (None, head.get("ETag")):
                return f"{entry.file} was another object than the one written or read"
        return None


def set_names(names: Iterable[str], timestamp: str) -> list[str]:
    """Of the names in a location, those of set `timestamp`'s objects (files, manifest; not its claim or holds)."""
    return sorted(
        name
        for name in names
        if (parsed := parse_set_file_name(name)) and parsed.timestamp == timestamp and parsed.kind != "lock"
    )


def stream_sha256(body: Any) -> str:
    """The sha256 of an object's body, read to its end in chunks."""
    digest = hashlib.sha256()
    while chunk := body.read(_READ_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()
