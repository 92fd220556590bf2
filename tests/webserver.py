"""A real dagster-webserver on 127.0.0.1 for tests, on a fresh instance.

The instance's dagster.yaml sets `run_coordinator: DefaultRunCoordinator`, so submitted runs launch at
once (in a subprocess, as in production) without a dagster-daemon.
"""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

REPO_ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_webserver(work: Path, env: dict[str, str]) -> Iterator[int]:
    """Start the webserver with DAGSTER_HOME `work/dagster_home` and its log in `work/webserver.log`; yields the port."""
    home = work / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(
        "run_coordinator:\n  module: dagster._core.run_coordinator\n  class: DefaultRunCoordinator\n"
        "telemetry:\n  enabled: false\n"
    )
    port = free_port()
    log_path = work / "webserver.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "dagster_webserver", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
            cwd=REPO_ROOT,
            env={**os.environ, "DAGSTER_HOME": str(home), **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while True:
                try:
                    if requests.get(f"http://127.0.0.1:{port}/server_info", timeout=2).ok:
                        break
                except requests.ConnectionError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("dagster-webserver did not start:\n" + log_path.read_text())
                time.sleep(0.5)
            yield port
        finally:
            process.terminate()
            process.wait(timeout=30)
