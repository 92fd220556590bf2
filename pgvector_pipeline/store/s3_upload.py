"""Streaming one object into S3-compatible storage as a multipart upload: no local copy, memory bounded.

A table writer of the object-storage backup store (store.s3_set) feeds COPY's output, compressed, into a
MultipartUpload. Parts are uploaded on a small pool of threads while the next part fills; at most
`max_in_flight` parts travel at once and one more waits for a slot, so memory stays at about
`part_size * (max_in_flight + 2)` whatever the object's size. S3 allows 10,000 parts per object, so the
part size doubles after every PARTS_PER_SIZE parts (8 MiB parts hold the first 8 GB, 16 MiB the next 16 GB,
and so on): only objects beyond 8 GB use larger parts. Whatever fails, the upload is aborted: no part is
left behind to be billed (a bucket lifecycle rule for incomplete uploads is the second line).
"""

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Any, TypedDict

# S3's minimum part size (except the last part) is 5 MiB; 8 MiB parts keep the memory of a backup to S3 at
# about 32 MB, and a 1 GB table under 130 parts.
DEFAULT_PART_SIZE = 8 << 20
MIN_PART_SIZE = 5 << 20
MAX_PART_SIZE = 5 << 30
DEFAULT_IN_FLIGHT = 2
# S3's limit is 10,000 parts: doubling every 1,000 reaches S3's largest object (5 TB) well before it.
PARTS_PER_SIZE = 1000


class CompletedPart(TypedDict):
    """A part uploaded, as complete_multipart_upload names it."""

    PartNumber: int
    ETag: str


class MultipartUpload:
    """One object written as a multipart upload. A context manager: leaving it without an error completes the
    object; leaving it on an error (or with `abort`) aborts the upload, keeping the first error."""

    def __init__(
        self,
        client: Any,
        bucket: str,
        key: str,
        *,
        part_size: int = DEFAULT_PART_SIZE,
        max_in_flight: int = DEFAULT_IN_FLIGHT,
        extra_args: dict[str, str] | None = None,
        parts_per_size: int = PARTS_PER_SIZE,
        reachable: Callable[[], bool] = lambda: True,
    ):
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size {part_size} is below S3's minimum of {MIN_PART_SIZE} bytes")
        self.client, self.bucket, self.key = client, bucket, key
        self.part_size = part_size
        self._parts_per_size = parts_per_size
        self._extra_args = extra_args or {}  # e.g. server-side encryption
        self.bytes = 0
        self._buffer = bytearray()
        self._slots = threading.BoundedSemaphore(max_in_flight)
        self._pool = ThreadPoolExecutor(max_in_flight, thread_name_prefix="s3-part")
        self._parts: list[Future[CompletedPart]] = []
        self._upload_id: str | None = None
        # False once the server stopped answering: giving up then sends nothing more (see abort).
        self._reachable = reachable
        self._aborted = False
        self.completed = False
        self.etag: str | None = None  # the object's, once completed

    def __enter__(self) -> "MultipartUpload":
        self._upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=self.key, **self._extra_args)[
            "UploadId"
        ]
        return self

    @property
    def current_part_size(self) -> int:
        """The size the part being filled is sent at: part_size, doubled after every `parts_per_size` parts."""
        return min(self.part_size << (len(self._parts) // self._parts_per_size), MAX_PART_SIZE)

    def write(self, data: bytes) -> int:
        self._buffer += data
        self.bytes += len(data)
        if len(self._buffer) >= self.current_part_size:
            # The filled buffer becomes the part as it is (no copy); a part may exceed part_size by one write.
            part, self._buffer = self._buffer, bytearray()
            self._submit(part)
        return len(data)

    def _submit(self, body: bytes | bytearray) -> None:
        self._raise_failed_part()
        self._slots.acquire()  # waits while max_in_flight parts are uploading: memory stays bounded
        try:
            self._raise_failed_part()  # the slot may have been freed by a part that failed: start no other
        except BaseException:
            self._slots.release()
            raise
        number = len(self._parts) + 1
        future = self._pool.submit(self._upload_part, number, body)
        future.add_done_callback(lambda _: self._slots.release())
        self._parts.append(future)

    def _upload_part(self, number: int, body: bytes | bytearray) -> CompletedPart:
        answer = self.client.upload_part(
            Bucket=self.bucket, Key=self.key, UploadId=self._upload_id, PartNumber=number, Body=body
        )
        return {"PartNumber": number, "ETag": answer["ETag"]}

    def _raise_failed_part(self) -> None:
        for future in self._parts:
            if future.done() and (error := future.exception()) is not None:
                raise error

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is not None:
            self.abort()
            return
        try:
            self.complete()
        except BaseException:
            self.abort()
            raise

    def complete(self) -> None:
        """Send the last part, wait for every part, and complete the object (raises what failed; see abort)."""
        if self._buffer or not self._parts:
            self._submit(bytes(self._buffer))  # the last part may be smaller (or the only one, even empty)
            self._buffer.clear()
        parts = [future.result() for future in self._parts]
        answer = self.client.complete_multipart_upload(
            Bucket=self.bucket, Key=self.key, UploadId=self._upload_id, MultipartUpload={"Parts": parts}
        )
        self.etag = answer.get("ETag")
        self.completed = True
        self._pool.shutdown(wait=True)

    def abort(self) -> None:
        """Give the upload up (nothing becomes visible); never raises, and a failure to abort never replaces the error
        that caused it. Parts in flight are waited for, then the upload is aborted on the server; when the server
        stopped answering (`reachable`), nothing more is sent or waited for (a part in flight ends on its own bounded
        attempts): the upload is left to the next run's clean-up and the bucket's lifecycle rule."""
        if self._aborted:
            return
        self._aborted = True
        for future in self._parts:
            future.cancel()
        reachable = self._reachable()
        self._pool.shutdown(wait=reachable, cancel_futures=True)
        if not reachable or self._upload_id is None:
            return
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self._upload_id)
        except Exception:
            pass  # the bucket's lifecycle rule for incomplete uploads removes what is left
