"""Worker processes that parse vectors' text for the set checks (pgvector_pipeline.operations.set_checks). Each is a plain
subprocess, `python -P -m pgvector_pipeline.operations.parse_workers`, so it starts from this module and nothing else.

Not multiprocessing: its spawn and forkserver start methods import the parent's `__main__` again in every worker (by
path or by module name), so a script that checks sets at top level without an `if __name__ == "__main__":` guard
(Dagster's own `execute_in_process` testing pattern) ran again in each worker: nested workers, extra servers, a run
of 105 s instead of 17. Fork is no way out either: the caller may run threads (Dagster does).

The worker imports what this process imports (its sys.path is this process's), reads requests on stdin and answers
on stdout, each message an 8-byte big-endian length and a pickle: (texts, vector type) in, read_vectors' result out.
Pickle is safe here: both ends are this package and the pipes are theirs alone. End of stdin ends a worker.
"""

import os
import pickle
import queue
import signal
import struct
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO, Any

from pgvector_pipeline.operations.vector_text import Parsed, VectorType, read_vectors

_LENGTH = struct.Struct(">Q")
# A worker asked to stop finishes its request and exits at once; one that does not within this is killed.
_STOP_TIMEOUT_S = 10.0


class WorkerDied(Exception):
    """A worker process ended (killed, out of memory) before answering: the set is not at fault."""


class ParseWorkers:
    """`count` worker processes parsing batches of vectors' text. `submit` returns the Future of one batch's
    read_vectors result; a thread of this process carries each batch to an idle worker and waits for its answer
    (one request at a time per worker: no pipe ever fills up). A context manager: leaving it stops the workers."""

    def __init__(self, count: int):
        self._workers: list[_Worker] = []
        self._idle: queue.SimpleQueue[_Worker] = queue.SimpleQueue()
        self._threads = ThreadPoolExecutor(count, thread_name_prefix="parse-worker")
        try:
            for _ in range(count):
                worker = _Worker()
                self._workers.append(worker)
                self._idle.put(worker)
        except BaseException:
            self.close()
            raise

    def submit(self, texts: list[str], vector_type: VectorType) -> "Future[list[Parsed]]":
        return self._threads.submit(self._parse, texts, vector_type)

    def _parse(self, texts: list[str], vector_type: VectorType) -> list[Parsed]:
        worker = self._idle.get()
        try:
            return worker.parse(texts, vector_type)
        finally:
            self._idle.put(worker)

    def close(self) -> None:
        """Let the batches in work finish (those not started are dropped), then stop every worker."""
        self._threads.shutdown(wait=True, cancel_futures=True)
        for worker in self._workers:
            worker.stop()

    def __enter__(self) -> "ParseWorkers":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _Worker:
    """One worker process, with this process's interpreter and import path (-P: not the current directory's)."""

    def __init__(self) -> None:
        path = os.pathsep.join(os.path.abspath(entry or os.curdir) for entry in sys.path)
        self._process = subprocess.Popen(
            [sys.executable, "-P", "-m", __name__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": path},
        )

    def parse(self, texts: list[str], vector_type: VectorType) -> list[Parsed]:
        assert self._process.stdin is not None and self._process.stdout is not None
        try:
            _send(self._process.stdin, (texts, vector_type))
            answer: list[Parsed] | None = _receive(self._process.stdout)
        except (OSError, ValueError) as exc:  # a broken pipe, or one closed as the workers stop
            raise WorkerDied(f"A parse worker could not be reached ({exc}).") from exc
        if answer is None:
            raise WorkerDied(f"A parse worker ended ({self._exit_status()}) before it answered.")
        return answer

    def _exit_status(self) -> str:
        try:
            return f"exit status {self._process.wait(1)}"
        except subprocess.TimeoutExpired:
            return "its output closed, still running"

    def stop(self) -> None:
        """End of input: the worker exits; killed if it does not within _STOP_TIMEOUT_S."""
        try:
            if self._process.stdin is not None:
                self._process.stdin.close()
        except OSError:
            pass  # it is gone already
        try:
            self._process.wait(_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()


def _send(stream: IO[bytes], message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_LENGTH.pack(len(data)) + data)
    stream.flush()


def _receive(stream: IO[bytes]) -> Any:
    """The next message, or None when the stream ends (cut short included)."""
    header = stream.read(_LENGTH.size)
    if len(header) < _LENGTH.size:
        return None
    (length,) = _LENGTH.unpack(header)
    data = stream.read(length)
    return pickle.loads(data) if len(data) == length else None


def _serve() -> None:
    """A worker's life: answer each request until stdin ends."""
    # Ctrl-C reaches the whole process group: the parent decides, and stops the workers by closing their input.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    requests = sys.stdin.buffer
    # The protocol keeps stdout's descriptor to itself; anything printed goes to stderr instead.
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    while (request := _receive(requests)) is not None:
        texts, vector_type = request
        _send(answers, read_vectors(texts, vector_type))


if __name__ == "__main__":
    _serve()
