"""Failures reach a person: a failed run and a stale global backup are posted to PGVECTOR_ALERT_WEBHOOK_URL, a real HTTP
server on loopback here, as JSON in Slack's incoming-webhook format with the facts beside it."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest

from pgvector_pipeline.alerts import WEBHOOK_ENV, Alert, post_alert
from pgvector_pipeline.contract import INVENTORY_JOB, RESTORE_JOB, restore_run_config
from pgvector_pipeline.definitions import defs
from pgvector_pipeline.sensors.alerts import ALERT_SENSOR, vector_run_failure_alert_sensor
from tests.helpers import RecordingLog, resources_config


@pytest.fixture
def webhook(monkeypatch):
    """A webhook receiver on 127.0.0.1: the JSON bodies it was sent, in order."""
    received: list[dict] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            length = int(self.headers["Content-Length"])
            received.append({"content_type": self.headers["Content-Type"], **json.loads(self.rfile.read(length))})
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv(WEBHOOK_ENV, f"http://127.0.0.1:{server.server_address[1]}/hooks/T000/secret-token")
    yield received
    server.shutdown()


def test_a_failed_restore_run_is_posted_with_its_error_type(webhook, store_db, backup_root, instance, monkeypatch):
    monkeypatch.setenv("PGVECTOR_DSN", store_db)
    result = defs.resolve_job_def(RESTORE_JOB).execute_in_process(
        instance=instance,
        run_config={**restore_run_config(None, "20200101_000000"), **resources_config()},
        raise_on_error=False,
    )
    assert not result.success
    [failure] = [event for event in result.all_events if event.event_type == dg.DagsterEventType.RUN_FAILURE]
    context = dg.build_run_status_sensor_context(
        sensor_name=ALERT_SENSOR, dagster_event=failure, dagster_instance=instance, dagster_run=result.dagster_run
    ).for_run_failure()

    vector_run_failure_alert_sensor(context)

    [alert] = webhook
    assert alert["content_type"] == "application/json"
    assert alert["title"] == f"{RESTORE_JOB} failed (RESOURCE_NOT_FOUND)"
    assert alert["details"] == {
        "job": RESTORE_JOB,
        "run_id": result.run_id,
        "partition": "",
        "error_type": "RESOURCE_NOT_FOUND",
    }
    assert alert["text"].startswith(f"*{RESTORE_JOB} failed (RESOURCE_NOT_FOUND)*\n")
    assert alert["source"] == "pgvector-pipeline"


def test_no_recent_global_backup_is_posted_by_the_freshness_check(webhook, backup_root, instance):
    result = defs.resolve_job_def(INVENTORY_JOB).execute_in_process(instance=instance, raise_on_error=False)

    [evaluation] = result.get_asset_check_evaluations()
    assert not evaluation.passed
    [alert] = webhook
    assert alert["title"] == "No recent global backup"
    assert (
        alert["text"]
        == f"*No recent global backup*\nThere is no complete global backup in {backup_root}/vector_bak.\ncheck: recent_global_backup"
    )


def test_an_undeliverable_alert_only_warns_without_the_token(monkeypatch):
    monkeypatch.setenv(WEBHOOK_ENV, "http://127.0.0.1:9/hooks/T000/secret-token")  # nothing listens on port 9
    log = RecordingLog()

    assert post_alert(Alert("vector_backup_job failed", "x"), log.warning) is False

    [warning] = log.warnings
    assert warning.startswith("The alert could not be delivered to the webhook at 127.0.0.1 (")
    assert "secret-token" not in warning


def test_no_webhook_configured_sends_nothing(monkeypatch):
    monkeypatch.delenv(WEBHOOK_ENV, raising=False)
    assert post_alert(Alert("t", "x"), RecordingLog().warning) is False
