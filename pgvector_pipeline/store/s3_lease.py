"""Leases on object storage: a writer's claim on a set (`vector_backup_{ts}.lock`) or a reader's hold, an object
that says "in use" while its owner lives (see store.s3_set for what they guard).

- **Fenced.** The owner re-puts its lease every `refresh_s`, each time with a new generation (so a new ETag) and
  only if the object is still the one it put last: `If-Match: <ETag>` where the server honours it (AWS S3,
  MinIO, SeaweedFS 4.48: 412 when the object changed or is gone), else compared just before the put (a narrow
  race). A lease that was removed or taken over since is lost for good: never re-created, never published under.
- **Taken over, not just deleted.** Whoever removes a dead run's leftovers first puts its own lease over the dead
  one, conditionally on the ETag it judged dead: an owner that refreshed in between keeps its lease, and an owner
  that wakes up afterwards finds its lease gone.
- **Owned by a process.** The body names the owning process (boot, pid namespace, pid, start time), so that a run
  on the same machine knows at once when the owner is gone (killed, or ended without reaching the server to
  delete it) instead of waiting `stale_after_s`: see owner_gone.
"""

import json
import os
import re
import socket
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pgvector_pipeline.store.s3_client import (
    CREATE_REFUSED_CODES,
    SUPERSEDED_CODES,
    error_code,
    s3_error,
    transport_errors,
)
from pgvector_pipeline.store.s3_objects import S3Objects

# A lease object is a small JSON document; anything longer is not one of ours.
MAX_LEASE_BYTES = 1 << 16
_PROCESS = re.compile(r"([0-9a-f-]{36}):([0-9]{1,20}):([0-9]{1,10}):([0-9]{1,20})")
# The tokens of the leases this process holds now: a lease naming this very process with another token was left
# by a run of this process that has ended.
_live_tokens: set[str] = set()
_live_lock = threading.Lock()


@dataclass(frozen=True)
class LeaseState:
    """A lease object as read: its ETag and time, and its owner as it says (untrusted: anyone who can write to the
    bucket can write it)."""

    etag: str
    last_modified: datetime | None
    owner: dict[str, Any] = field(default_factory=dict)

    @property
    def token(self) -> str | None:
        token = self.owner.get("token")
        return token if isinstance(token, str) else None


def read_lease(store: S3Objects, key: str) -> LeaseState | None:
    """The lease object at `key`, or None when there is none (raises what the server or network raised)."""
    found = store.read_small(key, MAX_LEASE_BYTES)
    if found is None:
        return None
    data, meta = found
    try:
        owner = json.loads(data)
    except ValueError:
        owner = None
    return LeaseState(str(meta.get("ETag")), meta.get("LastModified"), owner if isinstance(owner, dict) else {})


class Lease:
    """This process's lease on `key`: put (only if absent, for a claim) or taken over, re-put every `refresh_s` by a
    thread while it is held, deleted on `release`."""

    def __init__(self, store: S3Objects, key: str):
        self._store, self.key = store, key
        self.token = uuid.uuid4().hex
        self._process = this_process()
        self._generation = 0
        self._etag: str | None = None
        self.lost = False
        self._lock = threading.Lock()  # one renewal at a time: the refresh thread's, or a publisher's fence
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def put(cls, store: S3Objects, key: str, *, exclusive: bool) -> "Lease | None":
        """The lease on `key`, or None when `exclusive` and the key exists (someone else holds it)."""
        lease = cls(store, key)
        try:
            lease._etag = store.put(key, lease._body(), if_absent=exclusive)
        except transport_errors() as exc:
            if exclusive and error_code(exc) in CREATE_REFUSED_CODES:
                return None
            raise s3_error(exc, "claiming the set", store.url_of(key)) from exc
        return lease._held()

    @classmethod
    def take_over(cls, store: S3Objects, key: str, dead: LeaseState) -> "Lease | None":
        """This process's lease in place of `dead` (a lease judged stale or its owner gone), or None when the object
        changed since it was read (its owner refreshed it, or another run took it over) or is gone."""
        lease = cls(store, key)
        try:
            lease._etag = put_over(store, key, lease._body(), dead.etag)
        except transport_errors() as exc:
            raise s3_error(exc, "taking over a dead run's claim", store.url_of(key)) from exc
        return None if lease._etag is None else lease._held()

    def _held(self) -> "Lease":
        with _live_lock:
            _live_tokens.add(self.token)
        self._thread = threading.Thread(target=self._refresh, name="s3-lease", daemon=True)
        self._thread.start()
        return self

    def _body(self) -> bytes:
        return json.dumps(
            {
                "token": self.token,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "process": self._process,
                "generation": self._generation,
                "at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
        ).encode()

    def _refresh(self) -> None:
        while not self._stop.wait(self._store.options.refresh_s):
            try:
                if not self.renew():
                    return  # lost for good
            except transport_errors():
                pass  # tried again next time; a lease unrefreshed for stale_after_s is taken for a dead run's

    def renew(self) -> bool:
        """Put the lease again (a new generation, so a new ETag), only over the object this owner put last; False,
        and lost for good, when it was removed or taken over since. Raises when the server cannot say."""
        with self._lock:
            if self.lost:
                return False
            self._generation += 1
            body = self._body()
            etag = put_over(self._store, self.key, body, self._etag)
            if etag is None:
                # Our own last put may have landed without its answer reaching us (a timeout): still ours then.
                current = read_lease(self._store, self.key)
                if current is not None and current.token == self.token:
                    etag = put_over(self._store, self.key, body, current.etag)
            if etag is None:
                self.lost = True
                self._stop.set()
                return False
            self._etag = etag
            return True

    def fence(self, doing: str) -> bool:
        """Renew now, for an owner about to act on the lease (publishing the set): whether it is still held, so that
        nobody can take it for a dead run's for the next stale_after_s. StorageError when the server cannot say."""
        try:
            return self.renew()
        except transport_errors() as exc:
            raise s3_error(exc, doing, self._store.url_of(self.key)) from exc

    def release(self) -> None:
        """Stop refreshing and delete the lease object if it is still this owner's. Not when it was lost (it is
        another run's now), nor while the server is not answering (the delete would only wait out the same bound
        again): such a lease is left for the next run, which sees its owner gone (on this machine) or stale."""
        self._stop.set()
        with _live_lock:
            _live_tokens.discard(self.token)
        if self._thread is not None and self._store.answering:
            self._thread.join()  # a renewal in flight ends first (bounded): it cannot land after the delete
        if self.lost or not self._store.answering:  # (that renewal may have found it lost, or no answer)
            return
        try:
            current = read_lease(self._store, self.key)
            if current is not None and current.token == self.token:
                self._store.delete_quietly([self.key])
        except transport_errors():
            pass  # left to go stale


def put_over(store: S3Objects, key: str, body: bytes, etag: str | None) -> str | None:
    """Put `body` at `key` only if the object there is still the one with `etag`: the new ETag, or None when it
    changed or is gone. Atomic with If-Match where the server honours it; else compared just before the put."""
    if store.if_match_honoured:
        try:
            return store.put(key, body, if_match=etag)
        except transport_errors() as exc:
            if error_code(exc) in SUPERSEDED_CODES:
                return None
            raise
    current = read_lease(store, key)
    if current is None or current.etag != etag:
        return None
    return store.put(key, body)


def abandoned(store: S3Objects, lease: LeaseState) -> bool:
    """Whether a claim or hold is a dead run's: not refreshed for stale_after_s, or its owner known gone."""
    return store.older_than_stale(lease.last_modified) or owner_gone(lease)


def this_process() -> str | None:
    """This process as a lease names it: boot id, pid namespace, pid and start time (None off Linux)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = re.fullmatch(r"pid:\[([0-9]+)\]", os.readlink("/proc/self/ns/pid"))
        start = _start_time(os.getpid())
    except OSError:
        return None
    if namespace is None or start is None:
        return None
    return f"{boot}:{namespace.group(1)}:{os.getpid()}:{start}"


def owner_gone(state: LeaseState) -> bool:
    """Whether the lease's owner is known to be gone: it names a process of this machine (same boot, same pid
    namespace) that no longer runs, or this very process with a lease it no longer holds. False whenever that
    cannot be told (another machine or container, another OS, a body that is not ours): staleness decides then."""
    process = state.owner.get("process")
    mine = this_process()
    if not isinstance(process, str) or mine is None or not (theirs := _PROCESS.fullmatch(process)):
        return False
    boot, namespace, pid, start = theirs.groups()
    if (boot, namespace) != tuple(mine.split(":")[:2]):
        return False
    if process == mine:
        with _live_lock:
            return state.token not in _live_tokens
    try:
        return _start_time(int(pid)) != start  # None: no such process; another start: the pid was reused
    except OSError:
        return False  # e.g. /proc mounted with hidepid: cannot tell


def _start_time(pid: int) -> str | None:
    """The start time of process `pid` in clock ticks since boot (field 22 of /proc/<pid>/stat), None when there is
    no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) is in parentheses and may hold spaces and parentheses: fields go on after the last.
    fields = stat[stat.rindex(b")") + 2 :].split()
    return fields[19].decode()
