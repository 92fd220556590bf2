"""Deployment settings: what the deployment decides for every run, never a run's config. Anyone who can launch a run
could otherwise move them: a run config with s3_claim_stale_after_s 0.001 let retention delete a set under a live
restore's hold, and one with timestamp_window_s 2000000000 let a backup write today's data as a set of 2020.

Each is an environment variable of the code server and the run workers (and of a --direct shell), read once when a
resource is set up for a run or a sensor tick, and refused naming the variable when it is not what the variable
takes. Where backups live is deployment configuration too: PGVECTOR_BACKUP_ROOT and PGVECTOR_OTHER_BACKUP_ROOT
(store.roots, resources.backup_store), and the S3 endpoint and region from the standard AWS variables.
"""

import os
import re
from dataclasses import dataclass, field

from pgvector_pipeline.env_numbers import number_from_env, whole_number
from pgvector_pipeline.errors import InvalidParams
from pgvector_pipeline.postgres.connection import DEFAULT_LOCK_TIMEOUT_S
from pgvector_pipeline.postgres.parallel_load import DEFAULT_LOAD_SESSIONS
from pgvector_pipeline.postgres.ranges import DEFAULT_EXPORT_SESSIONS
from pgvector_pipeline.store.files import ALLOWED_FILE_MODES, DEFAULT_FILE_MODE
from pgvector_pipeline.store.interface import BackupStore
from pgvector_pipeline.store.keys import (
    IDENTITY_FILE_ENV,
    NO_KEYS,
    RECIPIENTS_ENV,
    RECIPIENTS_FILE_ENV,
    SetKeys,
    parse_identity_files,
    parse_recipients,
    read_recipients_file,
)
from pgvector_pipeline.store.layout import TIMESTAMP_WINDOW_ENV
from pgvector_pipeline.store.roots import store_at
from pgvector_pipeline.store.s3_client import S3Options, is_s3_root
from pgvector_pipeline.store.s3_upload import DEFAULT_PART_SIZE, MIN_PART_SIZE

FILE_MODE_ENV = "PGVECTOR_BACKUP_FILE_MODE"
S3_PART_SIZE_ENV = "PGVECTOR_S3_PART_SIZE_MB"
S3_SSE_ENV = "PGVECTOR_S3_SSE"
S3_SSE_KMS_KEY_ENV = "PGVECTOR_S3_SSE_KMS_KEY_ID"
S3_CLAIM_STALE_ENV = "PGVECTOR_S3_CLAIM_STALE_AFTER_S"
LOCK_TIMEOUT_ENV = "PGVECTOR_LOCK_TIMEOUT_S"
LOAD_SESSIONS_ENV = "PGVECTOR_LOAD_SESSIONS"
EXPORT_SESSIONS_ENV = "PGVECTOR_EXPORT_SESSIONS"
MAINTENANCE_WORK_MEM_ENV = "PGVECTOR_MAINTENANCE_WORK_MEM"

# A backup run of a chosen partition writes the set only when its timestamp is within this many seconds of the time
# the run starts (store.layout.check_stamped_now). More than a day would not be a window.
DEFAULT_TIMESTAMP_WINDOW_S = 900
MAX_TIMESTAMP_WINDOW_S = 86400
# A claim or hold is refreshed every 1/20 of its staleness, at most every 30 s. Under a second, a refresh that takes
# a slow request's time lets a live run's hold go stale; over a day, a dead run's claim blocks its location for days.
MIN_CLAIM_STALE_S, MAX_CLAIM_STALE_S = 1.0, 86400.0
MAX_REFRESH_S = 30.0
MAX_PART_SIZE_MB = 5 << 10
# The sessions one run opens for a parallel load or export (each is a server process and a connection slot).
MAX_SESSIONS = 16
MAX_LOCK_TIMEOUT_S = 3600.0
# PostgreSQL's memory units (case-sensitive); a bare number is kB.
_MEMORY = re.compile(r"[1-9][0-9]{0,9}(kB|MB|GB|TB)?")
_SSE_VALUES = ("AES256", "aws:kms")


def _refused(name: str, described: str, raw: str) -> InvalidParams:
    # The same words as env_numbers' refusals.
    return InvalidParams(f"{name} {described}, not {raw!r:.40}.")


def _sessions(name: str, default: int) -> int:
    return number_from_env(
        name, default, whole_number, lambda n: 1 <= n <= MAX_SESSIONS, f"is a whole number from 1 to {MAX_SESSIONS}"
    )


def file_mode_from_env() -> int:
    """$PGVECTOR_BACKUP_FILE_MODE as a mode: 0600 (the default) or 0640."""
    raw = os.environ.get(FILE_MODE_ENV) or ""
    if not raw:
        return DEFAULT_FILE_MODE
    allowed = {f"{mode:04o}": mode for mode in ALLOWED_FILE_MODES} | {f"{mode:o}": mode for mode in ALLOWED_FILE_MODES}
    if raw not in allowed:
        raise _refused(FILE_MODE_ENV, "is 0600 (owner only, the default) or 0640 (owner and group)", raw)
    return allowed[raw]


def s3_options_from_env() -> S3Options:
    """How the store uses S3, from the PGVECTOR_S3_* variables."""
    part_mb = number_from_env(
        S3_PART_SIZE_ENV,
        DEFAULT_PART_SIZE >> 20,
        whole_number,
        lambda mb: MIN_PART_SIZE >> 20 <= mb <= MAX_PART_SIZE_MB,
        f"is a whole number of MiB from {MIN_PART_SIZE >> 20} to {MAX_PART_SIZE_MB}",
    )
    stale_s = number_from_env(
        S3_CLAIM_STALE_ENV,
        S3Options.stale_after_s,
        float,
        lambda s: MIN_CLAIM_STALE_S <= s <= MAX_CLAIM_STALE_S,
        f"is a number of seconds from {MIN_CLAIM_STALE_S:g} to {MAX_CLAIM_STALE_S:g}",
    )
    sse = os.environ.get(S3_SSE_ENV) or ""
    if sse and sse not in _SSE_VALUES:
        raise _refused(S3_SSE_ENV, "is AES256 or aws:kms (unset: the bucket's default)", sse)
    kms_key = os.environ.get(S3_SSE_KMS_KEY_ENV) or ""
    if kms_key and sse != "aws:kms":
        raise InvalidParams(f"{S3_SSE_KMS_KEY_ENV} is set but {S3_SSE_ENV} is not aws:kms: set both, or neither.")
    return S3Options(
        part_size=part_mb << 20,
        refresh_s=min(MAX_REFRESH_S, stale_s / 20),
        stale_after_s=stale_s,
        sse=sse or None,
        sse_kms_key_id=kms_key or None,
    )


def keys_from_env() -> SetKeys:
    """The store's age keys (store.keys): recipients from $PGVECTOR_BACKUP_RECIPIENTS or
    $PGVECTOR_BACKUP_RECIPIENTS_FILE (not both), identity files from $PGVECTOR_BACKUP_IDENTITY_FILE (read when a set's
    content is read, not here)."""
    listed = os.environ.get(RECIPIENTS_ENV) or ""
    in_file = os.environ.get(RECIPIENTS_FILE_ENV) or ""
    if listed.strip() and in_file:
        raise InvalidParams(f"{RECIPIENTS_ENV} and {RECIPIENTS_FILE_ENV} are both set: set one of them.")
    recipients = None
    if listed.strip():
        recipients = parse_recipients(listed, RECIPIENTS_ENV)
    elif in_file:
        recipients = read_recipients_file(in_file)
    identity_files = parse_identity_files(os.environ.get(IDENTITY_FILE_ENV) or "")
    if recipients is None and not identity_files:
        return NO_KEYS
    return SetKeys(recipients, identity_files)


@dataclass(frozen=True)
class StoreSettings:
    """How backup sets are written and guarded, whatever the root."""

    file_mode: int = DEFAULT_FILE_MODE
    timestamp_window_s: int = DEFAULT_TIMESTAMP_WINDOW_S
    s3: S3Options = field(default_factory=S3Options)
    keys: SetKeys = NO_KEYS

    @classmethod
    def from_env(cls) -> "StoreSettings":
        """The settings in this process's environment; InvalidParams naming the first variable that is wrong."""
        return cls(
            file_mode=file_mode_from_env(),
            timestamp_window_s=number_from_env(
                TIMESTAMP_WINDOW_ENV,
                DEFAULT_TIMESTAMP_WINDOW_S,
                whole_number,
                lambda s: s <= MAX_TIMESTAMP_WINDOW_S,
                f"is a whole number of seconds from 0 to {MAX_TIMESTAMP_WINDOW_S}",
            ),
            s3=s3_options_from_env(),
            keys=keys_from_env(),
        )

    def store(self, root: str) -> BackupStore:
        """The store of `root` written with these settings (S3's client from the standard AWS chain)."""
        return store_at(
            root, file_mode=self.file_mode, s3_options=self.s3 if is_s3_root(root) else None, keys=self.keys
        )


@dataclass(frozen=True)
class DatabaseSettings:
    """How a run uses the database: how long its locks may wait, how many sessions it opens, how much memory its
    index builds take."""

    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S
    load_sessions: int = DEFAULT_LOAD_SESSIONS
    export_sessions: int = DEFAULT_EXPORT_SESSIONS
    # Empty: postgres.indexes.default_maintenance_work_mem.
    maintenance_work_mem: str = ""

    @classmethod
    def from_env(cls) -> "DatabaseSettings":
        """The settings in this process's environment; InvalidParams naming the first variable that is wrong."""
        memory = os.environ.get(MAINTENANCE_WORK_MEM_ENV) or ""
        if memory and not _MEMORY.fullmatch(memory):
            raise _refused(MAINTENANCE_WORK_MEM_ENV, "is an amount of memory such as '512MB' or '2GB'", memory)
        return cls(
            lock_timeout_s=number_from_env(
                LOCK_TIMEOUT_ENV,
                DEFAULT_LOCK_TIMEOUT_S,
                float,
                lambda s: 0 < s <= MAX_LOCK_TIMEOUT_S,
                f"is a number of seconds above 0, at most {MAX_LOCK_TIMEOUT_S:g}",
            ),
            load_sessions=_sessions(LOAD_SESSIONS_ENV, DEFAULT_LOAD_SESSIONS),
            export_sessions=_sessions(EXPORT_SESSIONS_ENV, DEFAULT_EXPORT_SESSIONS),
            maintenance_work_mem=memory,
        )
