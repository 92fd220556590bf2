"""A real dagster-webserver (and, when asked, dagster-daemon) on 127.0.0.1 for tests, on a fresh instance.

Without an instance file the instance's dagster.yaml sets `run_coordinator: DefaultRunCoordinator`, so
submitted runs launch at once (in a subprocess, as in production) without a dagster-daemon. With one of
the shipped files (deploy/*/dagster.yaml) runs are queued, and the daemon started beside the webserver
launches them, ticks schedules and evaluates sensors.
"""

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import requests

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]  # (host, port) of an AF_INET socket
        return port


@contextmanager
def running_webserver(
    work: Path, env: dict[str, str], instance_config: Path | None = None, daemon: bool = False
) -> Iterator[int]:
    """Start the webserver with DAGSTER_HOME `work/dagster_home` and its log in `work/webserver.log`
    (the daemon's in `work/daemon.log`); yields the port."""
    home = work / "dagster_home"
    home.mkdir()
    if instance_config is None:
        (home / "dagster.yaml").write_text(
            "run_coordinator:\n  module: dagster._core.run_coordinator\n  class: DefaultRunCoordinator\n"
            "telemetry:\n  enabled: false\n"
        )
    else:
        shutil.copyfile(instance_config, home / "dagster.yaml")
    port = free_port()
    process_env = {**os.environ, "DAGSTER_HOME": str(home), **env}
    commands = {"webserver": ["dagster_webserver", "-h", "127.0.0.1", "-p", str(port)]}
    if daemon:
        commands["daemon"] = ["dagster._daemon", "run"]
    with ExitStack() as stack:
        processes = {}
        for name, command in commands.items():
            log = stack.enter_context(open(work / f"{name}.log", "wb"))
            processes[name] = subprocess.Popen(
                [sys.executable, "-m", *command, "-w", "workspace.yaml"],
                cwd=REPO_ROOT,
                env=process_env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            stack.callback(_stop, processes[name])
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/server_info", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            if any(p.poll() is not None for p in processes.values()) or time.monotonic() > deadline:
                logs = "\n".join((work / f"{name}.log").read_text() for name in processes)
                raise RuntimeError("dagster-webserver or dagster-daemon did not start:\n" + logs)
            time.sleep(0.5)
        yield port


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
