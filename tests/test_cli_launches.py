"""What each command sends: the job, run config and tags of its launch, read by a stand-in webserver that records
every GraphQL request and answers as a webserver with no inventory yet (so nothing named is refused) whose runs
succeed at once. The run configs are those other programs and the docs send (docs/how-to/other-tools.md)."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pgvector_pipeline.entry_points.cli import EXIT_OK, main

RUN = {"__typename": "Run", "runId": "r1", "jobName": "a_job", "status": "SUCCESS", "tags": []}
ANSWER = {
    "assetOrError": {"__typename": "AssetNotFoundError"},  # no inventory: named sets are only validated
    "launchRun": {"__typename": "LaunchRunSuccess", "run": {"runId": "r1"}},
    "runOrError": {**RUN, "startTime": 1.0, "endTime": 2.0},
    "logsForRun": {"__typename": "EventConnection", "cursor": "0", "events": [], "hasMore": False},
    "addDynamicPartition": {"__typename": "AddDynamicPartitionSuccess"},
    # The code server has another store (vector_copy_job's metadata).
    "pipelineOrError": {"__typename": "Pipeline", "metadataEntries": [{"label": "other_store", "text": "/other"}]},
}


class RecordingWebserver:
    """An HTTP server on 127.0.0.1 answering every GraphQL request with ANSWER, keeping each request's variables."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        body = json.dumps({"data": ANSWER}).encode()
        requests = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                requests.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
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

    def launches(self) -> list[dict]:
        """The executionParams of each launchRun: job, run config, tags."""
        return [
            {
                "job": r["variables"]["executionParams"]["selector"]["jobName"],
                "run_config": r["variables"]["executionParams"]["runConfigData"],
                "tags": {t["key"]: t["value"] for t in r["variables"]["executionParams"]["executionMetadata"]["tags"]},
            }
            for r in self.requests
            if "executionParams" in (r.get("variables") or {})
        ]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def webserver():
    server = RecordingWebserver()
    yield server
    server.close()


def launched(webserver: RecordingWebserver, capsys, *argv: str) -> dict:
    assert main(["--port", str(webserver.port), *argv]) == EXIT_OK, capsys.readouterr().err
    [launch] = webserver.launches()
    return launch


DATABASE = {"pgvector_pipeline/database": "PGVECTOR_DSN"}
RAG = {"resources": {"pgvector": {"config": {"dsn": {"env": "OTHER_DSN"}, "db_schema": "rag"}}}}


def ops(op: str, config: dict) -> dict:
    return {"ops": {op: {"config": config}}}


def test_verify_sends_the_drill_with_the_database_named(webserver, capsys):
    launch = launched(webserver, capsys, "verify", "--dsn-env", "OTHER_DSN", "--schema", "rag")
    assert launch["job"] == "vector_restore_drill_job"
    assert launch["run_config"] == {**ops("vector_restore_drill", {"compare_live": True, "task_id": "global"}), **RAG}
    assert launch["tags"] == {"pgvector_pipeline/database": "OTHER_DSN"}


def test_backup_sends_every_option_as_the_run_config_has_it(webserver, capsys):
    argv = ["backup", "--task-id", "task_7", "--truncate", "--compression", "gzip", "--compression-level", "3"]
    argv += ["--format", "binary", "--collections", "a", "b", "--table", "s.docs", "--table", "other"]
    argv += ["--where", "s.docs=lang = 'de'", "--dsn-env", "OTHER_DSN", "--schema", "rag"]
    launch = launched(webserver, capsys, *argv)
    config = {
        "task_id": "task_7",
        "truncate_after_backup": True,
        "create_task_dir": False,
        "compression": "gzip",
        "compression_level": 3,
        "format": "binary",
        "collections": ["a", "b"],
        "tables": [{"name": "docs", "where": "lang = 'de'", "db_schema": "s"}, {"name": "other", "where": ""}],
    }
    assert launch["job"] == "request_vector_backup_job"
    assert launch["run_config"] == {**ops("request_vector_backup", config), **RAG}
    assert launch["tags"] == {"pgvector_pipeline/database": "OTHER_DSN"}


def test_a_plain_backup_sends_the_switches_and_the_global_task(webserver, capsys):
    launch = launched(webserver, capsys, "backup", "--create-task-dir")
    config = {"task_id": "global", "truncate_after_backup": False, "create_task_dir": True}
    assert (launch["run_config"], launch["tags"]) == (ops("request_vector_backup", config), DATABASE)


def test_a_where_without_its_table_is_refused_before_anything_is_sent(webserver, capsys):
    argv = ["backup", "--table", "docs", "--where", "other=id > 1"]
    assert main(["--port", str(webserver.port), *argv]) == 2
    assert capsys.readouterr().err == (
        "error: INVALID_PARAMS: --where names 'other', which no --table names: add --table other.\n"
    )
    assert webserver.requests == []


def test_restore_sends_its_request(webserver, capsys):
    argv = ["restore", "--timestamp", "20261124_101500", "--task-id", "task_7", "--truncate", "--collections", "a"]
    launch = launched(webserver, capsys, *argv, "--rename", "b=c", "--note", "why")
    switches = (
        "verify_only",
        "create_missing",
        "allow_legacy",
        "fill_extra_columns",
        "replace_collections",
        "in_place",
    )
    config = {
        "task_id": "task_7",
        "timestamp": "20261124_101500",
        "truncate_before_restore": True,
        **dict.fromkeys(switches, False),
        "collections": ["a"],
        "rename": {"b": "c"},
        "note": "why",
    }
    assert launch["job"] == "vector_restore_job"
    assert (launch["run_config"], launch["tags"]) == (ops("restore_vector_backup", config), DATABASE)


def test_truncate_sends_the_tables_named(webserver, capsys):
    launch = launched(webserver, capsys, "truncate", "--tables", "langchain_pg_collection", "langchain_pg_embedding")
    config = {"tables": ["langchain_pg_collection", "langchain_pg_embedding"]}
    assert launch["job"] == "vector_truncate_job"
    assert (launch["run_config"], launch["tags"]) == (ops("truncate_vector_tables", config), DATABASE)


def test_truncate_without_tables_names_the_default_ones(webserver, capsys):
    launch = launched(webserver, capsys, "truncate")
    config = {"tables": ["langchain_pg_embedding"]}
    assert (launch["run_config"], launch["tags"]) == (ops("truncate_vector_tables", config), DATABASE)


@pytest.mark.parametrize(
    ("argv", "config"),
    [
        (["--keep-newest", "3"], {"keep_newest": 3, "dry_run": True}),
        (["--max-age-days", "30", "--delete"], {"max_age_days": 30.0, "dry_run": False}),
    ],
)
def test_retention_sends_its_policy(webserver, capsys, argv, config):
    launch = launched(webserver, capsys, "retention", *argv)
    assert launch["job"] == "vector_retention_job"
    assert (launch["run_config"], launch["tags"]) == (ops("delete_old_backup_sets", config), {})


@pytest.mark.parametrize(("back", "direction"), [((), "to_other"), (("--back",), "from_other")])
def test_copy_sends_the_set_and_the_direction(webserver, capsys, back, direction):
    launch = launched(webserver, capsys, "copy", "--timestamp", "20261124_101500", "--task-id", "task_7", *back)
    config = {"task_id": "task_7", "timestamp": "20261124_101500", "direction": direction}
    assert launch["job"] == "vector_copy_job"
    assert (launch["run_config"], launch["tags"]) == (ops("copy_backup_set", config), {})


def test_copy_with_another_root_is_refused_without_direct(webserver, capsys):
    argv = ["copy", "--timestamp", "20261124_101500", "--other-root", "/elsewhere"]
    assert main(["--port", str(webserver.port), *argv]) == 2
    assert capsys.readouterr().err.startswith("error: INVALID_PARAMS: --other-root is for --direct (a copy in this ")
    assert webserver.launches() == []


def test_the_clients_keyword_launches_send_what_they_always_sent(webserver):
    from pgvector_pipeline.contract import COPY_FROM_OTHER, Migration, RestoreFlags
    from pgvector_pipeline.entry_points.client import VectorBackupClient

    client = VectorBackupClient("127.0.0.1", webserver.port)
    client.launch_backup("task_7", truncate_after_backup=True, tables={"docs": "id > 1"}, dsn_env="OTHER_DSN")
    client.launch_backup(timestamp="20261124_101500", compression="none", format="csv")
    flags = RestoreFlags(truncate_before_restore=True, in_place=True)
    migration = Migration(migrate_to="pgvector_store", store_table="store")
    client.launch_restore(None, "20261124_101500", tables=["langchain_pg_embedding"], flags=flags, migration=migration)
    client.launch_truncate(["langchain_pg_embedding"], db_schema="rag")
    client.launch_copy(None, "latest", COPY_FROM_OTHER)
    client.launch_drill("task_7", compare_live=True)
    client.launch_drill(None, "20261124_101500", dsn_env="OTHER_DSN")
    client.launch_retention(keep_newest=7)
    off = dict.fromkeys(("verify_only", "create_missing", "allow_legacy", "fill_extra_columns", "replace_collections"))
    restore = {
        "task_id": "global",
        "timestamp": "20261124_101500",
        "tables": ["langchain_pg_embedding"],
        "truncate_before_restore": True,
        **{name: False for name in off},
        "in_place": True,
        "migrate_to": "pgvector_store",
        "store_table": "store",
    }
    other = {"resources": {"pgvector": {"config": {"dsn": {"env": "OTHER_DSN"}}}}}
    tables = [{"name": "docs", "where": "id > 1"}]
    backup = {"task_id": "task_7", "truncate_after_backup": True, "create_task_dir": False, "tables": tables}
    partition = {"dagster/partition": "global/20261124_101500"}
    assert webserver.launches() == [
        {
            "job": "request_vector_backup_job",
            "run_config": {**ops("request_vector_backup", backup), **other},
            "tags": {"pgvector_pipeline/database": "OTHER_DSN"},
        },
        {
            "job": "vector_backup_job",
            "run_config": ops(
                "vector_store_backup",
                {"truncate_after_backup": False, "create_task_dir": False, "compression": "none", "format": "csv"},
            ),
            "tags": {**DATABASE, **partition},
        },
        {"job": "vector_restore_job", "run_config": ops("restore_vector_backup", restore), "tags": DATABASE},
        {
            "job": "vector_truncate_job",
            "run_config": {
                **ops("truncate_vector_tables", {"tables": ["langchain_pg_embedding"]}),
                "resources": {"pgvector": {"config": {"db_schema": "rag"}}},
            },
            "tags": DATABASE,
        },
        {
            "job": "vector_copy_job",
            "run_config": ops(
                "copy_backup_set", {"task_id": "global", "timestamp": "latest", "direction": "from_other"}
            ),
            "tags": {},
        },
        {
            "job": "vector_restore_drill_job",
            "run_config": ops("vector_restore_drill", {"compare_live": True, "task_id": "task_7"}),
            "tags": DATABASE,
        },
        {
            "job": "vector_restore_drill_job",
            "run_config": {
                **ops(
                    "vector_restore_drill", {"compare_live": False, "task_id": "global", "timestamp": "20261124_101500"}
                ),
                **other,
            },
            "tags": {"pgvector_pipeline/database": "OTHER_DSN"},
        },
        {
            "job": "vector_retention_job",
            "run_config": ops("delete_old_backup_sets", {"keep_newest": 7, "dry_run": True}),
            "tags": {},
        },
    ]
