"""One set on object storage while it is written or read, what dead runs left of sets removed, and a set marked
damaged (see store.s3 for the store itself, store.s3_objects for the objects all of it is built on).

Object storage has no flock, rename or append, so:
- a claim is `vector_backup_{ts}.lock`, created only if absent (`If-None-Match: *`): of two runs claiming the
  same set at once, exactly one gets it. The owner re-puts it every `refresh_s`, fenced (store.s3_lease); a claim
  not refreshed for `stale_after_s`, or whose owner is known gone, is a dead run's, and the next backup into the
  location takes it over and removes its leftovers;
- table files stream as multipart uploads straight to their final names (no temporary copy); the set stays
  unfinished while its claim exists, and the manifest, put last and only if absent, makes it complete. Before it
  is put, every file is checked to exist with its size and ETag, and the claim is renewed (fenced): a run whose
  claim was taken over, or whose files were removed, publishes nothing;
- a reader puts a hold (`vector_backup_{ts}.<token>.hold`, refreshed the same way) and then checks that no
  claim exists; retention claims the set and then checks for holds. Each writes before it looks, so with
  S3's read-after-write consistency at least one of them sees the other and backs off.
"""

import io
import json
import uuid
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypedDict

from pgvector_pipeline.errors import DataError, StorageError
from pgvector_pipeline.set_formats import CSV
from pgvector_pipeline.store.backup_set_info import BackupSetInfo
from pgvector_pipeline.store.claims import SetTaken, claim_new_timestamp
from pgvector_pipeline.store.codecs import UNCOMPRESSED, Compression
from pgvector_pipeline.store.damage import marker_document
from pgvector_pipeline.store.files import EncodingSink
from pgvector_pipeline.store.interface import InterruptedSet
from pgvector_pipeline.store.keys import Recipients
from pgvector_pipeline.store.layout import (
    damaged_name,
    hold_name,
    lock_name,
    manifest_name,
    parse_hold_name,
    parse_set_file_name,
    sealed_manifest_name,
    table_file_name,
    validate_timestamp,
)
from pgvector_pipeline.store.manifest import Manifest, SealedIndex, SetDocument
from pgvector_pipeline.store.s3_client import CREATE_REFUSED_CODES, error_code, s3_error, translated, transport_errors
from pgvector_pipeline.store.s3_lease import Lease, abandoned, read_lease
from pgvector_pipeline.store.s3_objects import ObjectInfo, S3Objects, set_names
from pgvector_pipeline.store.s3_upload import MultipartUpload
from pgvector_pipeline.store.sealing import MAX_SEALED_MANIFEST_BYTES, published_documents

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer


class S3TableWriter(EncodingSink):
    """A table's file streamed into a multipart upload under its final name (see EncodingSink); nothing is
    visible until `finish` completes the upload."""

    def __init__(
        self,
        store: S3Objects,
        key: str,
        name: str,
        progress: Callable[[int, int], None] | None,
        compression: Compression,
        recipients: Recipients | None = None,
    ):
        self._s3, self.key, self.name = store, key, name
        self.completed = False
        self._upload = MultipartUpload(
            store.client,
            store.root.bucket,
            key,
            part_size=store.options.part_size,
            extra_args=store.options.put_args(),
            reachable=lambda: store.answering,
        )
        with translated(f"starting the upload of {name}", store.url_of(key)):
            self._upload.__enter__()
        # Last: the encryption's thread may put age's header at once.
        super().__init__(compression, progress, recipients, name)

    def _put(self, data: bytes) -> None:
        # Called for every CSV line of a plain set: a try costs nothing until it fails, a context manager would
        # be built each time.
        try:
            self._upload.write(data)
        except transport_errors() as exc:
            raise s3_error(exc, f"uploading {self.name}", self._s3.url_of(self.key)) from exc

    def finish(self) -> None:
        """Finish the encoding and complete the upload: the object exists from here on."""
        self.finish_encoding()
        with translated(f"completing the upload of {self.name}", self._s3.url_of(self.key)):
            self._upload.complete()  # on a failure the set writer discards this writer, aborting the upload
        self.completed = True

    @property
    def etag(self) -> str | None:
        """The object's ETag, once the upload completed."""
        return self._upload.etag

    def discard(self) -> int:
        """Abort the upload, or delete the object once complete (neither while the server is not answering: see
        S3Objects.answering); the bytes it held."""
        self.abort_encoding()
        if self.completed:
            self._s3.delete_quietly([self.key])
        else:
            self._upload.abort()
        return self.stored_bytes

    def failed(self, exc: OSError, doing: str, set_bytes_estimate: int | None = None) -> StorageError:
        self.discard()
        error = s3_error(exc, doing, self._s3.url_of(self.key))
        return error if isinstance(error, StorageError) else StorageError(error.message)


class S3SetWriter:
    """One set of `task` on object storage while it is written (see store.interface.SetWriter)."""

    def __init__(
        self,
        store: S3Objects,
        task: str,
        timestamp: str | None,
        on_interrupted: Callable[[InterruptedSet], None] | None = None,
    ):
        self._store, self.task = store, task
        self.timestamp = None if timestamp is None else validate_timestamp(timestamp)
        self.writers: dict[str, S3TableWriter] = {}
        self.published = False
        self._on_interrupted = on_interrupted
        self._lease: Lease | None = None
        self._sealed_put = False

    @property
    def location(self) -> str:
        return self._store.location(self.task)

    def _key(self, name: str) -> str:
        return self._store.location_key(self.task, name)

    def __enter__(self) -> "S3SetWriter":
        self._store.check_conditional_create()
        for interrupted in remove_interrupted_sets(self._store, self.task):
            if self._on_interrupted:
                self._on_interrupted(interrupted)
        if self.timestamp is not None:
            self._claim(self.timestamp)
        else:
            claim_new_timestamp(self._claim, self.location)
        return self

    def _claim(self, timestamp: str) -> None:
        lease = Lease.put(self._store, self._key(lock_name(timestamp)), exclusive=True)
        if lease is None:
            raise SetTaken(
                f"Another run is writing set {timestamp} in {self.location} right now. Each start gets its own set: "
                f"request a new backup (without a timestamp) instead of repeating this one."
            )
        try:
            existing = self._store.set_object_names(self.task, timestamp)
        except BaseException:
            lease.release()  # the set could not be checked: the claim goes with the failure
            raise
        if existing:
            lease.release()
            raise SetTaken(
                f"A backup set with timestamp {timestamp} already exists in {self.location} "
                f"({', '.join(existing)}). Backups never overwrite: request a new backup."
            )
        self.timestamp, self._lease = timestamp, lease

    def open_table(
        self,
        table: str,
        progress: Callable[[int, int], None] | None = None,
        compression: Compression = UNCOMPRESSED,
        set_format: str = CSV,
    ) -> S3TableWriter:
        assert self.timestamp is not None, "claimed on entering"
        recipients = None if compression.preencrypted else self._store.keys.recipients
        encrypted = compression.preencrypted or recipients is not None
        name = table_file_name(table, self.timestamp, compression.codec, set_format, encrypted)
        writer = S3TableWriter(self._store, self._key(name), name, progress, compression, recipients)
        self.writers[table] = writer
        return writer

    def reread_sha256(self, table: str) -> str:
        """The sha256 of a published table file, read back from the server."""
        return self._store.sha256_of(self.writers[table].key)

    def mark_damaged(self, reason: str) -> str:
        """Mark the published set damaged (store.damage), its claim still held."""
        assert self.published and self.timestamp is not None
        return put_damage_marker(self._store, self.task, self.timestamp, reason)

    @property
    def encrypted_to(self) -> tuple[str, ...]:
        """The fingerprints of the recipients the files of this set are encrypted to (none: written in clear)."""
        recipients = self._store.keys.recipients
        return recipients.fingerprints if recipients else ()

    def publish(self, manifest: Manifest) -> str:
        """Put the manifest (only if absent) once every file of the set is checked to be there as written and the
        claim is renewed, fenced: never over files another run removed, never under a claim it took over. An encrypted
        set's manifest is sealed first, and its clear index takes the manifest's place (store.sealing)."""
        document, sealed = published_documents(manifest, self._store.keys)
        return self._publish(manifest, document, sealed)

    def publish_sealed(self, index: SealedIndex, sealed: bytes) -> str:
        """Publish an encrypted set whose files were copied as they are stored, with its clear index and sealed
        manifest as they are stored."""
        return self._publish(index, index.as_bytes(), sealed)

    def _publish(self, manifest: SetDocument, document: bytes, sealed: bytes | None) -> str:
        assert self._lease is not None and self.timestamp is not None
        key = self._key(manifest_name(self.timestamp))
        sealed_key = self._key(sealed_manifest_name(self.timestamp))
        if self._lease.lost:
            raise self._claim_lost()
        with translated("checking the set's files before publishing it", self.location):
            missing = self._missing_file(manifest)
        if missing:
            raise StorageError(
                f"{missing} just before set {self.timestamp} in {self.location} was published: it was removed while "
                f"the set was written (another run removes the files of a run whose claim it saw unrefreshed for "
                f"{self._store.options.stale_after_s:g} s). The set is not published. Start a new backup.",
                can_retry=True,
            )
        if not self._lease.fence("renewing the claim before publishing"):
            raise self._claim_lost()
        try:
            if sealed is not None:
                self._store.put(sealed_key, sealed, if_absent=True)
                self._sealed_put = True
            self._store.put(key, document, if_absent=True)
        except transport_errors() as exc:
            raise s3_error(exc, "publishing the backup set", self._store.url_of(key)) from exc
        self.published = True
        self._check_after_publishing(manifest, key)
        return self._store.url_of(key)

    def _check_after_publishing(self, manifest: SetDocument, key: str) -> None:
        """Withdraw the manifest if the claim was taken over and a file removed while it was put (only a run stalled
        for stale_after_s between the fence and the put can meet this)."""
        assert self._lease is not None
        try:
            if self._lease.renew() or not self._missing_file(manifest):
                return
        except transport_errors():
            return  # cannot tell: the fence before the put stands
        assert self.timestamp is not None
        self._store.delete_quietly([key, self._key(sealed_manifest_name(self.timestamp))])
        self.published = False
        raise self._claim_lost()

    def _missing_file(self, manifest: SetDocument) -> str | None:
        """The first file of the manifest that is not in the store as this run wrote it (see missing_file)."""
        return self._store.missing_file(self.task, manifest, {w.name: w.etag for w in self.writers.values()})

    def _claim_lost(self) -> StorageError:
        return StorageError(
            f"The claim on set {self.timestamp} in {self.location} was taken over while the set was written: this "
            f"run could not refresh it for {self._store.options.stale_after_s:g} s, so another run took it for a "
            f"dead run's and removed its files. The set is not published. Start a new backup.",
            can_retry=True,
        )

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._lease is not None
        try:
            if not self.published:
                for writer in self.writers.values():
                    writer.discard()
                if self._sealed_put and self.timestamp is not None:
                    self._store.delete_quietly([self._key(sealed_manifest_name(self.timestamp))])
        finally:
            self._lease.release()


class _ObjectStream(io.RawIOBase):
    """An object's body read as a raw stream; a dropped connection becomes a StorageError naming the object (and a
    read that got no answer is noted by the store: see S3Objects.answering)."""

    def __init__(self, body: Any, where: str, store: S3Objects):
        super().__init__()
        self._body, self._where, self._store = body, where, store

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: "WriteableBuffer") -> int:
        with memoryview(buffer) as view:
            try:
                data: bytes = self._body.read(len(view))
            except transport_errors() as exc:
                self._store.heard_nothing(exc)
                raise s3_error(exc, "reading", self._where) from exc
            view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        try:
            self._body.close()
        finally:
            super().close()


class S3SetReader:
    """A set's objects held for reading (see store.interface.SetReader): a hold is put first, then the set is
    checked to be neither claimed (written, or being deleted) nor changed since it was listed."""

    def __init__(self, store: S3Objects, backup_set: BackupSetInfo, tables: list[str]):
        missing = [table for table in tables if table not in backup_set.table_files]
        if missing:
            raise DataError(f"Set {backup_set.timestamp} in {backup_set.location} has no file of {missing}.")
        self._store, self.backup_set = store, backup_set
        self._names = {table: backup_set.table_files[table] for table in tables}
        self._sealed = sealed_manifest_name(backup_set.timestamp) if backup_set.has_sealed_manifest else None
        self._heads: dict[str, ObjectInfo] = {}
        self._streams: list[_ObjectStream] = []
        self._hold: Lease | None = None

    def _key(self, name: str) -> str:
        return self._store.location_key(self.backup_set.task, name)

    def __enter__(self) -> "S3SetReader":
        backup_set = self.backup_set
        where = f"Set {backup_set.timestamp} in {backup_set.location}"
        token = uuid.uuid4().hex
        self._hold = Lease.put(self._store, self._key(hold_name(backup_set.timestamp, token)), exclusive=False)
        try:
            with translated("reading the set's claim", backup_set.location):
                claim = read_lease(self._store, self._key(lock_name(backup_set.timestamp)))
            if claim is not None and not abandoned(self._store, claim):  # a dead run's claim: no one acts on it
                raise DataError(f"{where} is being deleted (by retention) or written right now. Restore another set.")
            for name in [*self._names.values(), *([self._sealed] if self._sealed else [])]:
                head = self._store.head(self._key(name))
                if head is None:
                    raise DataError(f"{where} lost a file since it was listed: it was deleted. Restore another set.")
                self._heads[name] = head
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        for stream in self._streams:
            stream.close()
        self._streams.clear()
        if self._hold is not None:
            self._hold.release()
            self._hold = None

    def file(self, table: str) -> io.RawIOBase:
        """The table's object as stored, streamed from its start (the very object listed: If-Match its ETag)."""
        name = self._names[table]
        key = self._key(name)
        with translated(f"opening {name}", self._store.url_of(key)):
            answer = self._store.client.get_object(
                Bucket=self._store.root.bucket, Key=key, IfMatch=self._heads[name]["ETag"]
            )
        stream = _ObjectStream(answer["Body"], self._store.url_of(key), self._store)
        self._streams.append(stream)
        return stream

    def prefix(self, table: str, limit: int) -> bytes:
        name = self._names[table]
        return self._store.get(self._key(name), limit) if limit else b""

    def size(self, table: str) -> int:
        return int(self._heads[self._names[table]]["ContentLength"])

    def sealed_manifest(self, limit: int) -> bytes:
        """An encrypted set's sealed manifest: the very object held (If-Match its ETag), at most `limit` bytes."""
        if self._sealed is None:
            raise DataError(f"Set {self.backup_set.timestamp} in {self.backup_set.location} has no encrypted manifest.")
        key = self._key(self._sealed)
        with translated(f"reading {self._sealed}", self._store.url_of(key)):
            answer = self._store.client.get_object(
                Bucket=self._store.root.bucket, Key=key, IfMatch=self._heads[self._sealed]["ETag"]
            )
            return self._store.read_body(answer["Body"], min(limit, MAX_SEALED_MANIFEST_BYTES))

    @property
    def etags(self) -> dict[str, str]:
        """The ETag of each held file, by name: the objects read (see file)."""
        return {name: head["ETag"] for name, head in self._heads.items()}


def remove_interrupted_sets(store: S3Objects, task: str) -> list[InterruptedSet]:
    """Remove what dead runs left in a task's location: the objects and multipart uploads of every set whose
    claim is a dead run's (stale, or its owner gone; a published manifest keeps its set: only the claim goes),
    under a claim of this run put over the dead one, then that claim."""
    entries = dict(store.location_names(task))
    # Holds of readers that died: they no longer hold anything, only clutter the listing.
    store.delete_quietly(
        [store.location_key(task, n) for n, e in entries.items() if parse_hold_name(n) and store.stale(e)]
    )
    removed = []
    for name in entries:
        parsed = parse_set_file_name(name)
        if parsed and parsed.kind == "lock":
            leftovers = _remove_if_dead(store, task, parsed.timestamp)
            if leftovers is not None:
                removed.append(leftovers)
    return removed


def _remove_if_dead(store: S3Objects, task: str, timestamp: str) -> InterruptedSet | None:
    """Remove set `timestamp`'s leftovers if its claim is a dead run's; what was removed (None: nothing)."""
    lock_key = store.location_key(task, lock_name(timestamp))
    with translated("reading a claim", store.url_of(lock_key)):
        claim = read_lease(store, lock_key)
    if claim is None or not abandoned(store, claim):
        return None
    # Taken over, not deleted: an owner that refreshed it since keeps it, one that wakes up later finds it
    # gone (see store.s3_lease), and nobody else claims the set while its objects go.
    remover = Lease.take_over(store, lock_key, claim)
    if remover is None:
        return None
    try:
        # Listed again under this run's claim: the dead run may have finished an upload since the first listing.
        entries = dict(store.location_names(task))
        names = set_names(entries, timestamp)
        files = [] if manifest_name(timestamp) in names else names
        freed = sum(int(entries[f].get("Size", 0)) for f in files)
        store.delete_quietly([store.location_key(task, f) for f in files])
        aborted = _abort_uploads(store, task, _uploads(store, task), timestamp)
    finally:
        remover.release()
    return InterruptedSet(timestamp, sorted(files + aborted), freed) if files or aborted else None


class MultipartUploadInfo(TypedDict):
    """An unfinished multipart upload as list_multipart_uploads lists it (the fields read here)."""

    Key: str
    UploadId: str


def _uploads(store: S3Objects, task: str) -> list[MultipartUploadInfo]:
    """The unfinished multipart uploads in a task's location."""
    prefix = store.location_key(task)
    with translated("listing unfinished uploads", store.url_of(prefix)):
        paginator = store.client.get_paginator("list_multipart_uploads")
        return [
            u for page in paginator.paginate(Bucket=store.root.bucket, Prefix=prefix) for u in page.get("Uploads", [])
        ]


def _abort_uploads(store: S3Objects, task: str, uploads: list[MultipartUploadInfo], timestamp: str) -> list[str]:
    """Abort the uploads (of a task's location) that belong to set `timestamp`; the names they were for."""
    prefix = store.location_key(task)
    aborted = []
    for upload in uploads:
        name = upload["Key"][len(prefix) :]
        parsed = parse_set_file_name(name)
        if parsed and parsed.timestamp == timestamp:
            try:
                store.client.abort_multipart_upload(
                    Bucket=store.root.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                )
                aborted.append(f"{name} (unfinished upload)")
            except transport_errors():
                pass
    return aborted


def put_damage_marker(store: S3Objects, task: str, timestamp: str, reason: str) -> str:
    """Mark set `timestamp` of `task` damaged (store.damage; a set marked already keeps its first marker); the
    marker's URL."""
    key = store.location_key(task, damaged_name(timestamp))
    try:
        store.put(key, (json.dumps(marker_document(reason), indent=2) + "\n").encode(), if_absent=True)
    except transport_errors() as exc:
        if error_code(exc) not in CREATE_REFUSED_CODES:
            raise s3_error(exc, "marking the set damaged", store.url_of(key)) from exc
    return store.url_of(key)
