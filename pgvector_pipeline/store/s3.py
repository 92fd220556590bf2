"""The backup store on S3-compatible object storage (AWS S3, MinIO, SeaweedFS, GCS's S3 interface), with the
local store's layout under a prefix:

    s3://bucket/prefix/vector_bak/              global sets
    s3://bucket/prefix/{task_id}/vector_bak/    the sets of one task

How claims, holds, publishing and the log work without flock, rename and append: see store.s3_set and
store.layout. A task "exists" on object storage when any object's key starts with `prefix/{task_id}/` (a
zero-byte `{task_id}/` folder marker, as S3 consoles create, will do): that is what the task sensor sees as a
new task. Listing reads only names (a paginated prefix listing per location) and manifests.
"""

import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from pgvector_pipeline.errors import DataError, InvalidParams, ResourceNotFound, StorageError
from pgvector_pipeline.sizes import human_size
from pgvector_pipeline.store.adopt import adopted_manifest
from pgvector_pipeline.store.backup_set_info import BackupSetInfo, Warn, newest_first
from pgvector_pipeline.store.damage import damage_log_entry, marker_document
from pgvector_pipeline.store.interface import InterruptedSet
from pgvector_pipeline.store.layout import (
    BACKUP_DIR_NAME,
    GLOBAL_TASK_KEY,
    LOG_FILE_NAME,
    TASK_ID_PATTERN,
    damaged_name,
    lock_name,
    log_entry_name,
    manifest_name,
    parse_hold_name,
    parse_log_entry_name,
    parse_set_file_name,
    task_key,
    validate_task_id,
    validate_timestamp,
)
from pgvector_pipeline.store.listing import ListedName, LocationListing, assemble_sets, backup_path_task
from pgvector_pipeline.store.log import format_entry, published_set
from pgvector_pipeline.store.manifest import MAX_MANIFEST_BYTES, Manifest, parse_manifest
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
from pgvector_pipeline.store.s3_lease import Lease, LeaseState, owner_gone, read_lease
from pgvector_pipeline.store.s3_set import S3SetReader, S3SetWriter, stream_sha256


class S3BackupStore:
    """Backup sets under `root` (s3://bucket/prefix) on the server `client` talks to."""

    def __init__(self, client: Any, root: S3Root, options: S3Options | None = None):
        self.client, self.root = client, root
        self.options = options or S3Options()
        self._conditional_writes: tuple[bool, bool] | None = None  # (If-None-Match, If-Match) honoured, once probed
        self._silent = False  # see answering
        client.meta.events.register("after-call.s3", self._answered)
        client.meta.events.register("after-call-error.s3", self._call_failed)

    def __repr__(self) -> str:
        return f"S3BackupStore({self.root.url()!r})"

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

    def read_small(self, key: str, limit: int) -> tuple[bytes, dict] | None:
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
                return body.read(limit)
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

    def head(self, key: str) -> dict | None:
        """An object's metadata, or None when it does not exist."""
        try:
            return self.client.head_object(Bucket=self.root.bucket, Key=key)
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

    def objects(self, prefix: str, delimiter: str | None = None) -> Iterator[dict]:
        """Every object under `prefix` (and, with a delimiter, each common prefix as {"Prefix": ...}), page by page."""
        paginator = self.client.get_paginator("list_objects_v2")
        extra = {"Delimiter": delimiter} if delimiter else {}
        with translated("listing", self.url_of(prefix)):
            for page in paginator.paginate(Bucket=self.root.bucket, Prefix=prefix, **extra):
                yield from page.get("Contents", [])
                yield from page.get("CommonPrefixes", [])

    def _names(self, task: str) -> list[tuple[str, dict]]:
        """(name relative to the location, listing entry) of every object in a task's location."""
        prefix = self.location_key(task)
        return [(item["Key"][len(prefix) :], item) for item in self.objects(prefix)]

    def set_object_names(self, task: str, timestamp: str) -> list[str]:
        """The names of the objects of set `timestamp` (files, manifest; not its claim or holds)."""
        return _set_names((name for name, _ in self._names(task)), timestamp)

    def stale(self, entry: dict) -> bool:
        """Whether a claim or hold (a listing or head entry) was not refreshed for stale_after_s: a dead run's."""
        return self._older_than_stale(entry.get("LastModified"))

    def abandoned(self, lease: LeaseState) -> bool:
        """Whether a claim or hold is a dead run's: not refreshed for stale_after_s, or its owner known gone."""
        return self._older_than_stale(lease.last_modified) or owner_gone(lease)

    def _older_than_stale(self, moment: datetime | None) -> bool:
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

    # --- listing --------------------------------------------------------------------------------------------

    def task_ids(self) -> list[str]:
        base = self.root.key() + "/" if self.root.prefix else ""
        names = (item["Prefix"][len(base) :].rstrip("/") for item in self.objects(base, "/") if "Prefix" in item)
        return sorted(
            name for name in names if TASK_ID_PATTERN.fullmatch(name) and name not in (GLOBAL_TASK_KEY, BACKUP_DIR_NAME)
        )

    def _task_exists(self, task: str) -> bool:
        prefix = self.root.key(task) + "/"
        with translated("looking for the task", self.url_of(prefix)):
            answer = self.client.list_objects_v2(Bucket=self.root.bucket, Prefix=prefix, MaxKeys=1)
        return bool(answer.get("KeyCount") or answer.get("Contents"))

    def _scan(self, task: str) -> list[BackupSetInfo]:
        names, logged, has_log = [], set(), False
        for name, item in self._names(task):
            is_entry, published = parse_log_entry_name(name)
            if is_entry or name == LOG_FILE_NAME:
                has_log = True
                if published:
                    logged.add(published)
            elif "/" not in name and parse_hold_name(name) is None:
                names.append(ListedName(name, int(item.get("Size", 0))))
        if has_log:  # the location's log is its entries: listed under the log's name, as on disk
            names.append(ListedName(LOG_FILE_NAME, 0))
        return assemble_sets(
            LocationListing(
                self, task, self.location(task), names, lambda ts: self._read_manifest(task, ts), lambda: logged
            )
        )

    def _read_manifest(self, task: str, timestamp: str) -> Manifest:
        """A set's validated manifest; DataError when it is gone or invalid (the set is damaged), StorageError when
        the server cannot be read now (nothing is said about the set: the listing fails instead)."""
        key = self.location_key(task, manifest_name(timestamp))
        try:
            data = self.get(key, MAX_MANIFEST_BYTES + 1)
        except transport_errors() as exc:
            if error_code(exc) in MISSING_CODES:
                raise DataError(f"Manifest {self.url_of(key)} was deleted while the sets were listed.") from None
            raise s3_error(exc, "reading a manifest", self.url_of(key)) from exc
        return parse_manifest(data, self.url_of(key), timestamp)

    def list_sets(self, *, global_only: bool = False, task_id: str | None = None) -> list[BackupSetInfo]:
        if task_id and task_key(task_id) != GLOBAL_TASK_KEY:
            tasks = [task_key(task_id)]
        else:
            tasks = [GLOBAL_TASK_KEY] + ([] if global_only or task_id else self.task_ids())
        return newest_first([info for task in tasks for info in self._scan(task)])

    def locate(
        self, *, task_id: str | None = None, timestamp: str | None = None, backup_path: str | None = None
    ) -> BackupSetInfo:
        if not timestamp:
            raise InvalidParams("Name the set's timestamp (YYYYMMDD_HHMMSS), or pick a partition of the backup assets.")
        validate_timestamp(timestamp)
        if backup_path:
            if backup_path.startswith(self.root.url() + "/"):
                backup_path = backup_path[len(self.root.url()) + 1 :]
            elif backup_path.startswith("s3://"):
                raise InvalidParams(f"backup_path {backup_path!r:.80} is outside the backup root {self.root.url()}.")
            task = backup_path_task(backup_path)
        else:
            task = task_key(task_id)
        for info in self._scan(task):
            if info.timestamp == timestamp:
                return info
        raise ResourceNotFound(
            f"No backup set with timestamp {timestamp} in {self.location(task)}. List the sets "
            f"(vector_backup_inventory) and pick an existing task id and timestamp."
        )

    # --- writing, reading, deleting -------------------------------------------------------------------------

    def new_set(
        self,
        task: str,
        timestamp: str | None,
        *,
        create_task_dir: bool = False,
        on_interrupted: Callable[[InterruptedSet], None] | None = None,
    ) -> S3SetWriter:
        if task != GLOBAL_TASK_KEY and not create_task_dir and not self._task_exists(validate_task_id(task)):
            raise ResourceNotFound(
                f"Task {task!r} has no objects under {self.root.url(task)}/. Check the task id, or set "
                f"create_task_dir: true to create it."
            )
        return S3SetWriter(self, task, timestamp, on_interrupted)

    def read_set(self, backup_set: BackupSetInfo, tables: list[str]) -> S3SetReader:
        return S3SetReader(self, backup_set, tables)

    def remove_interrupted(self, task: str) -> list[InterruptedSet]:
        """Remove what dead runs left in a task's location: the objects and multipart uploads of every set whose
        claim is a dead run's (stale, or its owner gone; a published manifest keeps its set: only the claim goes),
        under a claim of this run put over the dead one, then that claim."""
        entries = dict(self._names(task))
        # Holds of readers that died: they no longer hold anything, only clutter the listing.
        self.delete_quietly(
            [self.location_key(task, n) for n, e in entries.items() if parse_hold_name(n) and self.stale(e)]
        )
        removed = []
        for name in entries:
            parsed = parse_set_file_name(name)
            if parsed and parsed.kind == "lock":
                leftovers = self._remove_if_dead(task, parsed.timestamp)
                if leftovers is not None:
                    removed.append(leftovers)
        return removed

    def _remove_if_dead(self, task: str, timestamp: str) -> InterruptedSet | None:
        """Remove set `timestamp`'s leftovers if its claim is a dead run's; what was removed (None: nothing)."""
        lock_key = self.location_key(task, lock_name(timestamp))
        with translated("reading a claim", self.url_of(lock_key)):
            claim = read_lease(self, lock_key)
        if claim is None or not self.abandoned(claim):
            return None
        # Taken over, not deleted: an owner that refreshed it since keeps it, one that wakes up later finds it
        # gone (see store.s3_lease), and nobody else claims the set while its objects go.
        remover = Lease.take_over(self, lock_key, claim)
        if remover is None:
            return None
        try:
            # Listed again under this run's claim: the dead run may have finished an upload since the first listing.
            entries = dict(self._names(task))
            names = _set_names(entries, timestamp)
            files = [] if manifest_name(timestamp) in names else names
            freed = sum(int(entries[f].get("Size", 0)) for f in files)
            self.delete_quietly([self.location_key(task, f) for f in files])
            aborted = self._abort_uploads(task, self._uploads(task), timestamp)
        finally:
            remover.release()
        return InterruptedSet(timestamp, sorted(files + aborted), freed) if files or aborted else None

    def _uploads(self, task: str) -> list[dict]:
        """The unfinished multipart uploads in a task's location."""
        prefix = self.location_key(task)
        with translated("listing unfinished uploads", self.url_of(prefix)):
            paginator = self.client.get_paginator("list_multipart_uploads")
            return [
                u
                for page in paginator.paginate(Bucket=self.root.bucket, Prefix=prefix)
                for u in page.get("Uploads", [])
            ]

    def _abort_uploads(self, task: str, uploads: list[dict], timestamp: str) -> list[str]:
        """Abort the uploads (of a task's location) that belong to set `timestamp`; the names they were for."""
        prefix = self.location_key(task)
        aborted = []
        for upload in uploads:
            name = upload["Key"][len(prefix) :]
            parsed = parse_set_file_name(name)
            if parsed and parsed.timestamp == timestamp:
                try:
                    self.client.abort_multipart_upload(
                        Bucket=self.root.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
                    aborted.append(f"{name} (unfinished upload)")
                except transport_errors():
                    pass
        return aborted

    def delete_set(self, backup_set: BackupSetInfo, warn: Warn) -> int | None:
        """Delete a set under its own claim, unless a run writes it (claimed) or reads it (a fresh hold)."""
        self.check_conditional_create()
        task, timestamp = backup_set.task, backup_set.timestamp
        lease = Lease.put(self, self.location_key(task, lock_name(timestamp)), exclusive=True)
        if lease is None:
            return None
        try:
            holds = [
                entry
                for name, entry in self._names(task)
                if parse_hold_name(name) == timestamp and not self.stale(entry)
            ]
            if holds:
                return None
            doomed = backup_set.file_names()  # CSVs first, the manifest last (see BackupSetInfo.file_names)
            with translated("deleting a set", backup_set.location):
                for name in doomed:
                    self.client.delete_object(Bucket=self.root.bucket, Key=self.location_key(task, name))
        finally:
            lease.release()
        freed = backup_set.total_bytes
        self.append_log(
            task, f"retention deleted set {timestamp} ({backup_set.status}, {human_size(freed)})", doomed, warn
        )
        return freed

    def put_damage_marker(self, task: str, timestamp: str, reason: str) -> str:
        """Mark set `timestamp` of `task` damaged (store.damage; a set marked already keeps its first marker); the
        marker's URL."""
        key = self.location_key(task, damaged_name(timestamp))
        try:
            self.put(key, (json.dumps(marker_document(reason), indent=2) + "\n").encode(), if_absent=True)
        except transport_errors() as exc:
            if error_code(exc) not in CREATE_REFUSED_CODES:
                raise s3_error(exc, "marking the set damaged", self.url_of(key)) from exc
        return self.url_of(key)

    def mark_damaged(self, backup_set: BackupSetInfo, reason: str, warn: Warn) -> str:
        marker = self.put_damage_marker(backup_set.task, backup_set.timestamp, reason)
        self.append_log(backup_set.task, *damage_log_entry(backup_set.timestamp, reason), warn)
        return marker

    def append_log(self, task: str, headline: str, details: list[str], warn: Warn) -> bool:
        """One object per entry (objects cannot be appended to), named by its time so the entries sort. Not tried
        while the server is not answering (see answering): the entry is in the warning then."""
        now = datetime.now(UTC)
        key = self.location_key(task, log_entry_name(now, uuid.uuid4().hex, published_set(details)))
        why = f"S3 at {self.where} stopped answering"
        if self.answering:
            try:
                self.put(key, format_entry(headline, details).encode())
                return True
            except transport_errors() as exc:
                why = s3_error(exc, "logging", self.url_of(key)).message
        warn(
            f"Could not write a log entry in {self.location(task)} ({why}); the entry was: {headline}"
            + "".join(f"; {line}" for line in details)
        )
        return False

    def adopt(self, backup_set: BackupSetInfo) -> Manifest:
        """Read an old-system set's files (held) and put its adopted manifest, still held (retention skips a held
        set), once every file is checked to be the object that was read."""
        key = self.location_key(backup_set.task, manifest_name(backup_set.timestamp))
        with self.read_set(backup_set, sorted(backup_set.table_files)) as held:
            manifest = adopted_manifest(held, backup_set)
            with translated("checking the set's files before adopting it", backup_set.location):
                missing = self.missing_file(backup_set.task, manifest, held.etags)
            if missing:
                raise DataError(
                    f"{missing} before set {backup_set.timestamp} in {backup_set.location} got its adopted manifest: "
                    f"it was deleted or replaced while it was read. Nothing was written; list the sets again."
                )
            try:
                self.put(key, manifest.as_bytes(), if_absent=True)
            except transport_errors() as exc:
                if error_code(exc) in CREATE_REFUSED_CODES:
                    raise DataError(
                        f"Set {backup_set.timestamp} in {backup_set.location} got a manifest while it was adopted."
                    ) from None
                raise s3_error(exc, "adopting an old-system set", self.url_of(key)) from exc
        return self._read_manifest(backup_set.task, backup_set.timestamp)

    def missing_file(self, task: str, manifest: Manifest, etags: Mapping[str, str | None]) -> str | None:
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


def _set_names(names: Iterable[str], timestamp: str) -> list[str]:
    """Of the names in a location, those of set `timestamp`'s objects (files, manifest; not its claim or holds)."""
    return sorted(
        name
        for name in names
        if (parsed := parse_set_file_name(name)) and parsed.timestamp == timestamp and parsed.kind != "lock"
    )
