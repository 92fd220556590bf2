"""age encryption of a set's files, streamed (age-encryption.org/v1: X25519 recipients, ChaCha20-Poly1305 in 64 KiB
chunks, each authenticated): what a table writer pushes is encrypted as it comes, what a reader pulls is decrypted as
it goes, and memory stays flat whatever the file's size.

pyrage's encrypt_io and decrypt_io pull from a reader and push to a writer until the end of the stream. Our writers are
pushed (COPY calls write() per row) and our readers are pulled (COPY calls read()), so each runs pyrage on a thread of
its own joined to the caller by a bounded queue: at most QUEUE_DEPTH chunks of CHUNK bytes wait. Whatever fails on
either side reaches the other: the thread's error is raised by the caller's next write or read (the very exception,
so a full disk is still an OSError), a caller that stops (its own error, or a reader left before its end) stops the
thread, and no side waits forever on the other.

A changed byte, a cut file or a file of another set fails authentication: FilesDamaged naming the file. The bytes a
reader handed on before that were authenticated chunk by chunk, but the file as a whole is not: restore loads in a
transaction that commits only once every file was read to its end.
"""

import io
import queue
import threading
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from pgvector_pipeline.errors import FilesDamaged
from pgvector_pipeline.store.keys import Identities, Recipients

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

AGE_MAGIC = b"age-encryption.org/v1\n"
# What is handed between the threads at once, and how many such chunks may wait.
CHUNK = 256 << 10
QUEUE_DEPTH = 4
# How long a side waits before looking again whether the other stopped (a stop is noticed within this time).
_POLL_S = 0.2
# age's payload chunk (plaintext) and what each adds; the header of a few recipients is well under 1 KiB each.
PAYLOAD_CHUNK = 64 << 10
CHUNK_OVERHEAD = 16
HEADER_ALLOWANCE = 16 << 10


class CheckedSource(Protocol):
    """What a DecryptingReader reads: a stored file read through the check of its bytes (store.files' VerifiedReader),
    left as a context manager once read."""

    def read(self, size: int = -1, /) -> bytes | None: ...
    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> object: ...


class _Stopped(Exception):
    """The other side stopped: raised into pyrage to end its work."""


def _damaged(name: str, detail: str) -> FilesDamaged:
    return FilesDamaged(
        f"{name} fails age authentication ({detail}): the file was changed, cut short or replaced after the backup, "
        f"and nothing it held was kept: restore another set."
    )


class _Bridge:
    """A bounded queue between the caller's thread and pyrage's, and the first error of either side."""

    def __init__(self) -> None:
        self.queue: queue.Queue[bytes | None] = queue.Queue(QUEUE_DEPTH)
        self.stopped = threading.Event()  # the caller is gone: pyrage's side ends at its next step
        self.done = threading.Event()  # pyrage's side ended
        self.error: BaseException | None = None

    def put(self, item: bytes | None, *, caller: bool) -> None:
        """Queue `item`, waiting while the queue is full, until the other side stops."""
        while True:
            if caller and self.done.is_set():
                self.raise_error()
                raise _Stopped("the encryption ended early")
            if not caller and self.stopped.is_set():
                raise _Stopped("the reader stopped")
            try:
                self.queue.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                continue

    def get(self, *, caller: bool) -> bytes | None:
        """The next item, waiting while the queue is empty, until the other side stops."""
        while True:
            try:
                return self.queue.get(timeout=_POLL_S)
            except queue.Empty:
                pass
            if caller and self.done.is_set():
                try:  # what it queued before it ended
                    return self.queue.get_nowait()
                except queue.Empty:
                    self.raise_error()
                    return None
            if not caller and self.stopped.is_set():
                raise _Stopped("the writer stopped")

    def note(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error

    def raise_error(self) -> None:
        if self.error is not None:
            raise self.error

    def stop(self, thread: threading.Thread) -> None:
        """Stop pyrage's side and wait for it (it notices within _POLL_S)."""
        self.stopped.set()
        thread.join()


class AgeEncryptor:
    """Bytes written here come out of `out` as the age file of them, encrypted to `recipients` (`out` is called on
    the encryption's thread, one call per age chunk). `finish` ends the file; `abort` drops it. An exception raised
    by `out` (a full disk, an upload that failed) is raised, as itself, by the next `write` or by `finish`."""

    def __init__(self, recipients: Recipients, out: Callable[[bytes], None], name: str):
        self._bridge = _Bridge()
        self._out = out
        self._pending = bytearray()
        self._pyrage_recipients = recipients.objects()
        self._thread = threading.Thread(target=self._run, name=f"age encrypt {name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import pyrage

        try:
            pyrage.encrypt_io(_QueueReader(self._bridge), _Out(self._bridge, self._out), self._pyrage_recipients)
        except BaseException as exc:  # the bridge keeps the cause: the exception of `out` or of the reader
            self._bridge.note(exc)
        finally:
            self._bridge.done.set()

    def write(self, data: bytes) -> None:
        self._pending += data
        if len(self._pending) >= CHUNK:
            self._bridge.put(bytes(self._pending), caller=True)
            self._pending.clear()

    def finish(self) -> None:
        """Encrypt what is left and the end of the file; raises what failed on the encryption's side."""
        if self._pending:
            self._bridge.put(bytes(self._pending), caller=True)
            self._pending.clear()
        self._bridge.put(None, caller=True)
        self._thread.join()
        self._bridge.raise_error()

    def abort(self) -> None:
        """Stop encrypting (nothing more is written to `out`) and wait for the thread to end."""
        self._bridge.stop(self._thread)


class _QueueReader(io.RawIOBase):
    """What pyrage's encryption reads: the chunks the caller queued, until the end it queued."""

    def __init__(self, bridge: _Bridge):
        super().__init__()
        self._bridge = bridge
        self._chunk = b""
        self._position = 0
        self._ended = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: "WriteableBuffer") -> int:
        while self._position >= len(self._chunk):
            if self._ended:
                return 0
            item = self._bridge.get(caller=False)
            if item is None:
                self._ended = True
                return 0
            self._chunk, self._position = item, 0
        with memoryview(buffer) as view:
            count = min(len(view), len(self._chunk) - self._position)
            view[:count] = self._chunk[self._position : self._position + count]
        self._position += count
        return count


class _Out:
    """What pyrage's encryption writes to: `out`, its exception kept as the bridge's error."""

    def __init__(self, bridge: _Bridge, out: Callable[[bytes], None]):
        self._bridge, self._out = bridge, out

    def write(self, data: Any) -> int:
        if self._bridge.stopped.is_set():
            raise _Stopped("aborted")
        try:
            self._out(bytes(data))
        except BaseException as exc:
            self._bridge.note(exc)
            raise
        return len(data)

    def flush(self) -> None:
        pass


class DecryptingReader(io.RawIOBase):
    """The plaintext of an age file read from `source` (a stored file, checked as it is read: store.files'
    VerifiedReader), decrypted with `identities` on a thread of its own as this is read. FilesDamaged naming the file
    when it fails authentication; an error of reading `source` (a dropped connection) as itself.

    A context manager, stacked like the readers of store.files: leaving it reads what the consumer left unread (or, when
    the consumer failed, stops the decryption), then leaves `source` the same way, whose check of the stored bytes
    comes first when it fails: a changed file is the cause of whatever failed after it."""

    def __init__(self, source: CheckedSource, identities: Identities, name: str):
        super().__init__()
        self.name = name
        self._source = source
        self._bridge = _Bridge()
        self._reader = _SourceReader(source, self._bridge)
        self._pyrage_identities = identities.objects()
        self._chunk = b""
        self._position = 0
        self._ended = False
        self._thread = threading.Thread(target=self._run, name=f"age decrypt {name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import pyrage

        writer = _QueueWriter(self._bridge)
        try:
            pyrage.decrypt_io(self._reader, writer, self._pyrage_identities)
            writer.flush()
            self._bridge.put(None, caller=False)
        except BaseException as exc:
            self._bridge.note(exc)
        finally:
            self._bridge.done.set()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: "WriteableBuffer") -> int:
        while self._position >= len(self._chunk):
            if self._ended:
                return 0
            try:
                item = self._bridge.get(caller=True)
            except BaseException as exc:
                self._ended = True
                self._thread.join()
                raise self._translated(exc) from None
            if item is None:
                self._ended = True
                self._thread.join()
                return 0
            self._chunk, self._position = item, 0
        with memoryview(buffer) as view:
            count = min(len(view), len(self._chunk) - self._position)
            view[:count] = self._chunk[self._position : self._position + count]
        self._position += count
        return count

    def _translated(self, exc: BaseException) -> BaseException:
        """The decryption's failure as the caller sees it: the source's own read error as itself (pyrage wraps it),
        FilesDamaged for bytes that fail authentication or are no age file."""
        if self._reader.error is not None:
            return self._reader.error
        if not isinstance(exc, Exception) or isinstance(exc, FilesDamaged):
            return exc
        if "No matching keys" in str(exc):
            return _damaged(self.name, "none of the identities that open the set's manifest opens it")
        return _damaged(self.name, str(exc) or type(exc).__name__)

    def __enter__(self) -> "DecryptingReader":
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        error = exc
        try:
            if exc is None:
                try:
                    while self.read(1 << 20):
                        pass
                except Exception as own:
                    error = own
            if not self._ended:  # the consumer failed or was interrupted: stop the decryption
                self._bridge.stop(self._thread)
                self._ended = True
        finally:
            self.close()
        # The stored bytes are checked in any case (an interrupt, a BaseException, skips it as VerifiedReader does).
        self._source.__exit__(type(error) if error else None, error, None)
        if error is not None and error is not exc:
            raise error


class _SourceReader(io.RawIOBase):
    """What pyrage's decryption reads (8 KiB at a time): the stored file, read in larger pieces; the file's own read
    error is kept, and a caller that is gone stops it."""

    _PIECE = 1 << 20

    def __init__(self, source: CheckedSource, bridge: _Bridge):
        super().__init__()
        self._source, self._bridge = source, bridge
        self._piece = memoryview(b"")
        self.error: BaseException | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: "WriteableBuffer") -> int:
        if self._bridge.stopped.is_set():
            raise _Stopped("the reader stopped")
        if not self._piece:
            try:
                self._piece = memoryview(self._source.read(self._PIECE) or b"")
            except BaseException as exc:
                self.error = exc
                raise
        with memoryview(buffer) as view:
            count = min(len(view), len(self._piece))
            view[:count] = self._piece[:count]
        self._piece = self._piece[count:]
        return count


class _QueueWriter:
    """What pyrage's decryption writes to (8 KiB at a time): the queue, in chunks of at least CHUNK bytes."""

    def __init__(self, bridge: _Bridge):
        self._bridge = bridge
        self._pending = bytearray()

    def write(self, data: Any) -> int:
        self._pending += data
        if len(self._pending) >= CHUNK:
            self._bridge.put(bytes(self._pending), caller=False)
            self._pending.clear()
        return len(data)

    def flush(self) -> None:
        if self._pending:
            self._bridge.put(bytes(self._pending), caller=False)
            self._pending.clear()


def encrypted_prefix_bytes(limit: int) -> int:
    """How many bytes of an age file hold (at least) its first `limit` bytes of plaintext: the header and the chunks
    that cover them."""
    chunks = -(-limit // PAYLOAD_CHUNK) + 1
    return HEADER_ALLOWANCE + chunks * (PAYLOAD_CHUNK + CHUNK_OVERHEAD)


def decrypt_prefix(data: bytes, identities: Identities, name: str, needed: int) -> bytes:
    """The plaintext of the chunks `data` (the start of an age file, or all of it) holds whole, each authenticated;
    FilesDamaged when it yields fewer than `needed` bytes (or than PAYLOAD_CHUNK, which any start of
    encrypted_prefix_bytes holds) before failing."""
    import pyrage

    class Collect:
        def __init__(self) -> None:
            self.parts: list[bytes] = []

        def write(self, part: Any) -> int:
            self.parts.append(bytes(part))
            return len(part)

        def flush(self) -> None:
            pass

    out = Collect()
    try:
        pyrage.decrypt_io(io.BytesIO(data), out, identities.objects())
    except Exception as exc:  # the end of a start that is not the whole file, or bytes that fail authentication
        plaintext = b"".join(out.parts)
        if len(plaintext) < min(needed, PAYLOAD_CHUNK):
            detail = "no identity opens it" if "No matching keys" in str(exc) else str(exc) or type(exc).__name__
            raise _damaged(name, detail) from None
        return plaintext
    return b"".join(out.parts)
