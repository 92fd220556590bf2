"""Crash-safe file writing: stream into NAME.tmp, fsync, rename, fsync the directory.

Files are created with an explicit mode (0600 by default): backups hold the whole vector store.
"""

import errno
import hashlib
import io
import json
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from pgvector_pipeline.errors import DataError, FilesDamaged, InvalidParams, StorageError
from pgvector_pipeline.sizes import human_size
from pgvector_pipeline.store.age_streams import AgeEncryptor, DecryptingReader, decrypt_prefix
from pgvector_pipeline.store.codecs import NONE, UNCOMPRESSED, Compression, codec_of, decode_errors
from pgvector_pipeline.store.directory import Directory, UnsafeEntry
from pgvector_pipeline.store.keys import Identities, Recipients
from pgvector_pipeline.store.layout import tmp_name
from pgvector_pipeline.store.manifest import ManifestTable

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

DEFAULT_FILE_MODE = 0o600
ALLOWED_FILE_MODES = (0o600, 0o640)
_PROGRESS_INTERVAL_S = 5.0
_READ_CHUNK = 1 << 20
# Compressed bytes decoded at a time while loading: small bursts of client work, so the server, which
# parses slower than the client decodes, always finds data in the socket buffer (1 MiB bursts made a zstd
# restore wait on the client; see bench/).
_DECODE_CHUNK = 64 << 10
# A StreamingFileWriter starts the write-back of its file every this many bytes.
_WRITEBACK_BYTES = 32 << 20


def encoder_threads() -> int:
    """Threads zstd compresses on besides the caller's: one per core, at most 4 (0: in the writing thread)."""
    return min(os.cpu_count() or 1, 4) if (os.cpu_count() or 1) > 1 else 0


def check_file_mode(mode: int) -> int:
    """`mode` if it is an allowed mode for backup files; InvalidParams otherwise."""
    if mode not in ALLOWED_FILE_MODES:
        raise InvalidParams(
            f"File mode {mode:#o} is not allowed for backup files: use 0600 (owner only, the default) or "
            f"0640 (owner and group)."
        )
    return mode


def mount_point(path: Path) -> Path:
    """The mount point of the file system holding `path` (for messages)."""
    path = Path(path).resolve()
    while not os.path.ismount(path):
        path = path.parent
    return path


def storage_error(
    exc: OSError, directory: Directory, name: str, doing: str, set_bytes_estimate: int | None = None
) -> StorageError:
    """A clear error for a failed write of `name` in `directory`; for a full disk, says how much is missing."""
    path = directory.path / name
    if isinstance(exc, UnsafeEntry):
        return StorageError(
            f"Cannot write {path} while {doing}: {exc.strerror}. Nothing under the backup root is followed or "
            f"written through a link; remove that entry."
        )
    directory_path = directory.path
    try:
        disk = mount_point(directory_path)
        free, total = directory.free_bytes()
    except OSError:
        return StorageError(f"Cannot write {path} while {doing}: {exc.strerror or exc}. Check the backup root.")
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        needs = ""
        if set_bytes_estimate is not None:
            needs = (
                f"; the set needs about {human_size(set_bytes_estimate)} in all (estimated from what was "
                f"written), about {human_size(max(set_bytes_estimate - free, 0))} more than is free"
            )
        return StorageError(
            f"The disk holding {directory_path} (file system at {disk}) is full: writing {path.name} failed while "
            f"{doing}. {human_size(free)} of {human_size(total)} are free now that the partial files are "
            f"removed{needs}. Free space there or point the backup root at a larger disk, then start a new "
            f"backup."
        )
    return StorageError(
        f"Cannot write {path} while {doing}: {exc.strerror or exc}. Check the permissions and the disk "
        f"holding the backup root (file system at {disk}, {human_size(free)} free)."
    )


class EncodingSink:
    """CSV bytes in (as COPY TO STDOUT writes them: one write per line), stored bytes out through `_put`:
    compressed as `compression` says, then age-encrypted to `recipients` when given (store.keys), each side hashed
    and counted. Any store's table writer is one of these with its own `_put` (a file here, a multipart upload on
    object storage).

    psycopg2 calls `write` once per CSV line for COPY TO, so `writes` counts the header plus the rows
    independently of what the server reports. `bytes` and `sha256` are the CSV's, `stored_bytes` and
    `stored_sha256` what the store keeps; `finish_encoding` puts the codec's tail and ends the encryption. Bytes
    that come already compressed (`compression.precompressed`) are not compressed again, and bytes that come already
    encrypted (`compression.preencrypted`) are kept as they are: then both sides are the stored bytes, and whoever
    writes them checks the CSV inside. Encrypting, `_put` is called on the encryption's thread (store.age_streams),
    and what it raises is raised by the next `write` or by `finish_encoding`.
    """

    def __init__(
        self,
        compression: Compression = UNCOMPRESSED,
        progress: Callable[[int, int], None] | None = None,
        recipients: Recipients | None = None,
        name: str = "",
    ):
        self.codec = compression.codec
        self._hash = hashlib.sha256()
        encodes = compression.codec != NONE and not compression.precompressed
        self._encoder = compression.encoder(encoder_threads()) if encodes else None
        encrypts = recipients is not None and not compression.preencrypted
        # Neither compressed nor encrypted, the stored bytes are the CSV: one hash serves both.
        plain = self._encoder is None and not encrypts
        self._stored_hash = self._hash if plain else hashlib.sha256()
        self.bytes = 0
        self.stored_bytes = 0
        self.writes = 0
        self._progress = progress
        self._last_progress = time.monotonic()
        # Last: the encryption's thread may store age's header at once.
        self._encryptor = AgeEncryptor(recipients, self._store, name) if recipients and encrypts else None

    @property
    def encrypted(self) -> bool:
        """Whether the stored bytes are age-encrypted here."""
        return self._encryptor is not None

    def write(self, data: bytes) -> int:
        self.writes += 1
        self.bytes += len(data)
        if self._stored_hash is not self._hash:
            self._hash.update(data)
        self._stage(data if self._encoder is None else self._encoder.compress(data))
        if self._progress and time.monotonic() - self._last_progress >= _PROGRESS_INTERVAL_S:
            self._last_progress = time.monotonic()
            self._progress(self.writes, self.bytes)
        return len(data)

    def _stage(self, data: bytes) -> None:
        """Compressed (or plain) bytes: encrypted, or stored as they are."""
        if not data:
            return
        if self._encryptor is not None:
            self._encryptor.write(data)
        else:
            self._store(data)

    def finish_encoding(self) -> None:
        if self._encoder is not None:
            self._stage(self._encoder.flush())
        if self._encryptor is not None:
            self._encryptor.finish()

    def abort_encoding(self) -> None:
        """Stop encrypting (a writer discarded before it finished): the encryption's thread ends."""
        if self._encryptor is not None:
            self._encryptor.abort()

    def _store(self, data: bytes) -> None:
        if data:
            self._stored_hash.update(data)
            self.stored_bytes += len(data)
            self._put(data)

    def _put(self, data: bytes) -> None:
        """Keep stored bytes (a store's table writer says where)."""
        raise NotImplementedError

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    @property
    def stored_sha256(self) -> str:
        return self._stored_hash.hexdigest()


class StreamingFileWriter(EncodingSink):
    """A COPY sink that writes NAME.tmp in `directory` (see EncodingSink); `publish` renames it to NAME."""

    def __init__(
        self,
        directory: Directory,
        name: str,
        mode: int,
        progress: Callable[[int, int], None] | None = None,
        compression: Compression = UNCOMPRESSED,
        recipients: Recipients | None = None,
    ):
        self.directory = directory
        self.name = name
        self.tmp_name = tmp_name(name)
        self._file = os.fdopen(directory.create(self.tmp_name, mode), "wb", buffering=_READ_CHUNK)
        self._written_back = 0
        # Last: an encryption's thread may store bytes (age's header) from here on.
        super().__init__(compression, progress, recipients, name)

    def _put(self, data: bytes) -> None:
        self._file.write(data)
        if self.stored_bytes - self._written_back >= _WRITEBACK_BYTES:
            self._start_writeback()

    def _start_writeback(self) -> None:
        """Have the kernel start writing what is written so far, without waiting for it.

        POSIX_FADV_DONTNEED starts the write-back of dirty pages of the range and drops the clean ones: the
        final fsync then waits only for the tail instead of the whole file, and a backup does not push the
        database's pages out of the page cache.
        """
        self._file.flush()
        if hasattr(os, "posix_fadvise"):  # Linux and most Unixes; elsewhere fsync does all the work at the end
            os.posix_fadvise(self._file.fileno(), 0, self.stored_bytes, os.POSIX_FADV_DONTNEED)
        self._written_back = self.stored_bytes

    def finish(self) -> None:
        self.finish_encoding()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()

    @property
    def path(self) -> Path:
        """Where the file is published (for messages and metadata)."""
        return self.directory.path / self.name

    def publish(self) -> None:
        self.directory.rename(self.tmp_name, self.name)

    def failed(self, exc: OSError, doing: str, set_bytes_estimate: int | None = None) -> StorageError:
        """Discard the partial file (first, so the free space reported is real) and say what failed."""
        self.discard()
        return storage_error(exc, self.directory, self.tmp_name, doing, set_bytes_estimate)

    def discard(self) -> int:
        """Close (a full disk makes the final flush fail: ignored) and delete the .tmp; returns bytes freed."""
        self.abort_encoding()
        try:
            self._file.close()
        except OSError:
            pass  # the buffer could not be flushed; the file descriptor is closed all the same
        return self.directory.unlink_quietly(self.tmp_name)


def write_json_durably(directory: Directory, name: str, document: Mapping[str, object], mode: int) -> None:
    """Create `name` in `directory` (it must not exist) holding `document`, fsynced; nothing stays on error."""
    write_bytes_durably(directory, name, (json.dumps(document, indent=2) + "\n").encode(), mode)


def write_bytes_durably(directory: Directory, name: str, data: bytes, mode: int) -> None:
    """Create `name` in `directory` (it must not exist) holding `data`, fsynced; nothing stays on error."""
    try:
        with os.fdopen(directory.create(name, mode), "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
    except FileExistsError:
        raise
    except BaseException:
        directory.unlink_quietly(name)
        raise


class VerifiedReader(io.RawIOBase):
    """A published file read once, for loading, and checked against its recorded size and sha256 as it is read.

    The bytes hashed are the bytes handed on, so a file that changes between any earlier check and the
    load cannot load unnoticed, and the file is read once. A context manager: leaving it reads whatever
    the consumer left unread and raises FilesDamaged when size or sha256 differ, also when the consumer
    failed (a damaged file is reported as damaged, not as the bad row the damage made). The consumer's
    work must stay undone until leaving succeeds: restore loads inside a transaction it commits later.
    """

    def __init__(self, file: io.RawIOBase, name: str, expected_bytes: int, expected_sha256: str):
        super().__init__()
        self.name = name
        self._expected = (expected_bytes, expected_sha256)
        self._file = file  # owned by the caller (a held set), which closes it
        self._hash = hashlib.sha256()
        self._bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: "WriteableBuffer") -> int:
        count = self._file.readinto(buffer) or 0
        with memoryview(buffer) as view:
            self._hash.update(view[:count])
        self._bytes += count
        return count

    def __enter__(self) -> "VerifiedReader":
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            # An interrupt (BaseException) ends the run: no point reading on.
            if exc is None or isinstance(exc, Exception):
                while self.read(_READ_CHUNK):
                    pass
                self._check(exc)
        finally:
            self.close()

    def _check(self, exc: BaseException | None) -> None:
        _check_digest(self.name, (self._bytes, self._hash.hexdigest()), self._expected, exc)


def _check_digest(name: str, found: tuple[int, str], expected: tuple[int, str], cause: BaseException | None) -> None:
    """FilesDamaged when the bytes read (count, sha256) are not those the manifest records."""
    if found != expected:
        raise FilesDamaged(
            f"{name} does not match its manifest: the sha256 of its bytes is {found[1][:12]}… "
            f"({found[0]} bytes), the manifest records {expected[1][:12]}… ({expected[0]} bytes). "
            f"The file was changed or damaged after the backup, and nothing it held was kept: restore "
            f"another set."
        ) from cause


class StoredLayer(Protocol):
    """What a DecodedReader reads: a VerifiedReader, or a reader stacked on one (a DecryptingReader), which checks what
    it read when it is left."""

    name: str

    def read(self, size: int = -1, /) -> bytes | None: ...
    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None: ...


class DecodedReader(io.RawIOBase):
    """The CSV inside a compressed file, decompressed as it is read and checked like VerifiedReader: its size
    and sha256 against the manifest's record of the CSV, while `stored` checks the file's own bytes (decrypted on the
    way, for an encrypted file: store.age_streams.DecryptingReader).

    A context manager: leaving it decompresses what the consumer left unread and raises FilesDamaged when the
    stored bytes or the CSV differ from the manifest (the stored bytes' error first: it is the cause).
    """

    def __init__(self, stored: "StoredLayer", codec: str, expected_bytes: int, expected_sha256: str):
        super().__init__()
        self.name = stored.name
        self._stored = stored
        self._codec = codec
        self._decoder = codec_of(codec).decoder()
        self._expected = (expected_bytes, expected_sha256)
        self._pending = b""
        self._position = 0
        self._hash = hashlib.sha256()
        self._bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: "WriteableBuffer") -> int:
        while self._position >= len(self._pending):
            chunk = self._stored.read(_DECODE_CHUNK)
            if not chunk:
                return 0
            try:
                self._pending = self._decoder.decompress(chunk)
            except decode_errors() as exc:
                raise FilesDamaged(
                    f"{self.name} cannot be decompressed as {self._codec} ({exc}): the file was changed or damaged "
                    f"after the backup, and nothing it held was kept: restore another set."
                ) from None
            self._position = 0
        with memoryview(buffer) as view:
            count = min(len(view), len(self._pending) - self._position)
            part = self._pending[self._position : self._position + count]
            view[:count] = part
        self._hash.update(part)
        self._position += count
        self._bytes += count
        return count

    def __enter__(self) -> "DecodedReader":
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        error = exc
        try:
            if exc is None:
                while self.read(_READ_CHUNK):
                    pass
                _check_digest(
                    self.name + " (decompressed)", (self._bytes, self._hash.hexdigest()), self._expected, None
                )
        except DataError as own:
            error = own
        finally:
            self.close()
        # The stored bytes are checked in any case: a changed file is the cause of whatever failed after it.
        self._stored.__exit__(type(error) if error else None, error, None)
        if error is not None and error is not exc:
            raise error


def verified_csv(
    file: io.RawIOBase, name: str, entry: ManifestTable, identities: Identities | None = None
) -> VerifiedReader | DecodedReader:
    """The CSV of a stored file as its manifest entry says it is stored, each byte checked against the manifest:
    the stored bytes' size and sha256, and (compressed or encrypted) the CSV's too, when the reader is left. An
    encrypted file is decrypted with `identities` (store.sealing.identities_for)."""
    stored = VerifiedReader(file, name, entry.file_bytes, entry.file_sha256)
    if entry.encrypted:
        if identities is None:
            raise InvalidParams(f"{name} is encrypted, and no identity was given to read it.")
        return DecodedReader(DecryptingReader(stored, identities, name), entry.codec, entry.bytes, entry.sha256)
    return stored if entry.codec == NONE else DecodedReader(stored, entry.codec, entry.bytes, entry.sha256)


def decode_prefix(
    data: bytes, name: str, codec: str, limit: int, identities: Identities | None = None, encrypted: bool = False
) -> bytes:
    """At most `limit` bytes of the CSV whose stored file starts with `data` (decrypted with `identities` when
    `encrypted`, decompressed); FilesDamaged when that start cannot be decrypted or decompressed."""
    if encrypted:
        if identities is None:
            raise InvalidParams(f"{name} is encrypted, and no identity was given to read it.")
        data = decrypt_prefix(data, identities, name, limit if codec == NONE else 1)
    if codec == NONE:
        return data[:limit]
    try:
        return codec_of(codec).decoder().decompress(data)[:limit]
    except decode_errors() as exc:
        raise FilesDamaged(
            f"{name} cannot be decompressed as {codec} ({exc}): the file was changed or damaged after the backup. "
            f"Restore another set."
        ) from None
