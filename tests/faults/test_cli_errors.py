"""The command line never shows a traceback: whatever goes wrong is one line on stderr with its type (and, where the
output is JSON, one JSON error on stdout), and the exit code says what kind of failure it was."""

import json
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pgvector_pipeline.entry_points.cli import EXIT_INVALID, EXIT_RUN_FAILED, main
from tests.helpers import DSN_ENV


def one_error_line(stderr: str) -> str:
    """The one error line, last on stderr (after any progress lines); no traceback anywhere."""
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and stderr.splitlines()[-1] == errors[0] and "Traceback" not in stderr, stderr
    return errors[0]


@pytest.mark.parametrize(
    "argv",
    [
        ["--port", "1", "backup", "--collections", "a\x00b"],
        ["--port", "1", "restore", "--timestamp", "20261124_170000", "--rename", "a=b\x00"],
        ["--direct", "--root", "/tmp/x\x00y", "list"],
    ],
)
def test_a_nul_in_an_argument_is_refused_in_one_line(argv, capsys):
    assert main(argv) == EXIT_INVALID
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith("error: INVALID_PARAMS: The command line holds a NUL character (\\x00) in "), line


def test_a_deeply_nested_filter_is_refused_in_one_line(store_db, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(DSN_ENV, store_db)
    where = "langchain_pg_embedding=" + "NOT " * 500 + "document = 'x'"
    argv = ["--direct", "--root", str(tmp_path), "backup", "--table", "langchain_pg_embedding", "--where", where]

    assert main(argv) == EXIT_INVALID

    out, err = capsys.readouterr()
    assert json.loads(out)["error_type"] == "INVALID_PARAMS"
    assert "it nests more than 100 levels deep" in one_error_line(err)
    assert list(tmp_path.rglob("*.csv*")) == []


class OddWebserver:
    """An HTTP server on 127.0.0.1 that answers every GraphQL request with `answer` (the `data` of a response): a
    webserver of another Dagster version, or something else on the port, as the client meets it."""

    def __init__(self, answer: dict):
        body = json.dumps({"data": answer}).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def odd_webserver():
    servers: list[OddWebserver] = []

    def start(answer: dict) -> int:
        servers.append(OddWebserver(answer))
        return servers[-1].port

    yield start
    for server in servers:
        server.close()


def default_ctrl_c() -> None:
    """In the child: Ctrl-C as a shell's foreground command gets it (a parallel test worker ignores SIGINT, and an
    ignored signal stays ignored across exec)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def cli(port: int, *args: str, **options) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "pgvector_pipeline.entry_points.cli", "--port", str(port), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_ctrl_c,
        **options,
    )


# A listing whose inventory has no `sets` table: the client cannot read it.
UNREADABLE_INVENTORY = {"assetOrError": {"__typename": "Asset", "assetMaterializations": [{"metadataEntries": []}]}}


def test_an_answer_the_client_cannot_read_is_one_json_error_with_its_type(odd_webserver):
    port = odd_webserver(UNREADABLE_INVENTORY)

    as_json = cli(port, "list", "--json")
    out, err = as_json.communicate(timeout=120)

    assert as_json.returncode == EXIT_RUN_FAILED
    error = json.loads(out)
    assert (error["status"], error["error_type"]) == ("FAILURE", "INTERNAL_ERROR")
    line = one_error_line(err)
    assert line == f"error: INTERNAL_ERROR: {error['error_message']}"
    assert "KeyError: 'sets'" in line and "please report it" in line

    as_table = cli(port, "list")
    out, err = as_table.communicate(timeout=120)
    assert (as_table.returncode, out) == (EXIT_RUN_FAILED, "")
    assert one_error_line(err).startswith("error: INTERNAL_ERROR: ")


def test_ctrl_c_while_waiting_is_one_line_and_the_run_goes_on(odd_webserver):
    running = {"runOrError": {"__typename": "Run", "runId": "r1", "jobName": "vector_backup_job", "status": "STARTED"}}
    running["runOrError"].update(tags=[], startTime=None, endTime=None)
    port = odd_webserver({**running, "logsForRun": {"__typename": "EventConnection", "cursor": "0", "events": []}})

    waiting = cli(port, "status", "r1", "--wait")
    time.sleep(3)  # imports, then at least one poll
    waiting.send_signal(signal.SIGINT)
    out, err = waiting.communicate(timeout=60)

    assert waiting.returncode == 130  # 128 + SIGINT, as a shell reports a command Ctrl-C stopped
    assert one_error_line(err) == (
        f"error: interrupted; run r1 goes on. Follow it with `pgvector-pipeline status r1 --wait`; cancel it in the UI "
        f"(http://127.0.0.1:{port}/runs/r1, Terminate)."
    )


def test_ctrl_c_during_a_direct_restore_rolls_back_and_says_so_in_one_line(store_db, backup_root):
    import os

    from pgvector_pipeline.operations.backup import back_up_database
    from pgvector_pipeline.store.local import LocalBackupStore
    from pgvector_pipeline.testing.db import app_connection, query
    from pgvector_pipeline.testing.langchain_tables import fill_sample_store

    fill_sample_store(store_db)
    result = back_up_database(store_db, "public", LocalBackupStore(backup_root), "global", None)
    rows = query(store_db, "SELECT count(*), md5(string_agg(id, ',' ORDER BY id)) FROM langchain_pg_embedding")
    app = app_connection(store_db)  # an app's open transaction: the restore waits for its lock
    app.cursor().execute("LOCK TABLE langchain_pg_embedding IN ROW EXCLUSIVE MODE")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PGVECTOR_", "DAGSTER_"))}
    restoring = subprocess.Popen(
        [sys.executable, "-m", "pgvector_pipeline.entry_points.cli", "--direct", "--root", str(backup_root), "restore"]
        + ["--timestamp", result.timestamp, "--truncate"],
        env={**env, "PGVECTOR_DSN": store_db},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_ctrl_c,
    )
    try:
        time.sleep(4)  # imports, the checks, then the wait for the app's lock (lock_timeout 10 s)
        restoring.send_signal(signal.SIGINT)
        _, err = restoring.communicate(timeout=60)
    finally:
        app.close()

    assert restoring.returncode == 130
    assert one_error_line(err) == "error: interrupted; its transaction was rolled back: the tables are as they were."
    assert query(store_db, "SELECT count(*), md5(string_agg(id, ',' ORDER BY id)) FROM langchain_pg_embedding") == rows


def test_version_names_this_package_and_dagster(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as done:
        main(["--version"])

    assert done.value.code == 0
    assert (
        capsys.readouterr().out == f"pgvector-pipeline {version('pgvector-pipeline')} (dagster {version('dagster')})\n"
    )
