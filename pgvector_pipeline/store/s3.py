"""The backup store on S3-compatible object storage (AWS S3, MinIO, SeaweedFS, GCS's S3 interface), with the
local store's layout under a prefix:

    s3://bucket/prefix/vector_bak/              global sets
    s3://bucket/prefix/{task_id}/vector_bak/    the sets of one task

How claims, holds, publishing and the log work without flock, rename and append: see store.s3_set and
store.layout; the keys and object operations the store is built on: store.s3_objects. A task "exists" on object storage when any object's key starts with `prefix/{task_id}/` (a
zero-byte `{task_id}/` folder marker, as S3 consoles create, will do): that is what the task sensor sees as a
new task. Listing reads only names (a paginated prefix listing per location) and manifests.
"""

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from pgvector_pipeline.errors import DataError, InvalidParams, ResourceNotFound
from pgvector_pipeline.sizes import human_size
from pgvector_pipeline.store.adopt import adopted_manifest
from pgvector_pipeline.store.backup_set_info import BackupSetInfo, Warn, newest_first
from pgvector_pipeline.store.damage import damage_log_entry
from pgvector_pipeline.store.interface import InterruptedSet
from pgvector_pipeline.store.layout import (
    BACKUP_DIR_NAME,
    GLOBAL_TASK_KEY,
    LOG_FILE_NAME,
    TASK_ID_PATTERN,
    lock_name,
    log_entry_name,
    manifest_name,
    parse_hold_name,
    parse_log_entry_name,
    task_key,
    validate_task_id,
)
from pgvector_pipeline.store.listing import ListedName, LocationListing, assemble_sets, backup_path_task
from pgvector_pipeline.store.log import format_entry, published_set
from pgvector_pipeline.store.manifest import (
    MAX_MANIFEST_BYTES,
    Manifest,
    SetDocument,
    adopted_read_back,
    parse_manifest,
)
from pgvector_pipeline.store.naming import LATEST, named_timestamp, newest_complete, validate_set_timestamp
from pgvector_pipeline.store.s3_client import (
    CREATE_REFUSED_CODES,
    MISSING_CODES,
    error_code,
    s3_error,
    translated,
    transport_errors,
)
from pgvector_pipeline.store.s3_lease import Lease
from pgvector_pipeline.store.s3_objects import S3Objects
from pgvector_pipeline.store.s3_set import S3SetReader, S3SetWriter, put_damage_marker, remove_interrupted_sets


class S3BackupStore(S3Objects):
    """Backup sets under `root` (s3://bucket/prefix) on the server `client` talks to: the store interface on the
    bucket's objects (S3Objects)."""

    def __repr__(self) -> str:
        return f"S3BackupStore({self.root.url()!r})"

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
        for name, item in self.location_names(task):
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

    def _read_manifest(self, task: str, timestamp: str) -> SetDocument:
        """A set's validated manifest (or an encrypted set's clear index); DataError when it is gone or invalid (the set is damaged), StorageError when
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
        validate_set_timestamp(named_timestamp(timestamp))
        if backup_path:
            if backup_path.startswith(self.root.url() + "/"):
                backup_path = backup_path[len(self.root.url()) + 1 :]
            elif backup_path.startswith("s3://"):
                raise InvalidParams(f"backup_path {backup_path!r:.80} is outside the backup root {self.root.url()}.")
            task = backup_path_task(backup_path)
        else:
            task = task_key(task_id)
        sets = self._scan(task)
        if timestamp == LATEST:
            return newest_complete(sets, self.location(task))
        for info in sets:
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
        return remove_interrupted_sets(self, task)

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
                for name, entry in self.location_names(task)
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

    def mark_damaged(self, backup_set: BackupSetInfo, reason: str, warn: Warn) -> str:
        marker = put_damage_marker(self, backup_set.task, backup_set.timestamp, reason)
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
        return adopted_read_back(self._read_manifest(backup_set.task, backup_set.timestamp))
