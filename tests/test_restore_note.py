"""A restore's note (why it runs: a ticket, an incident), declared once in RestoreRequest: the command line's --note,
the job's config and the run config the client sends all come from that declaration, and the run records it in its
log and metadata, as --direct does in its log."""

import json

from pgvector_pipeline.contract import RESTORE_JOB, RESTORE_OP, request_config
from pgvector_pipeline.definitions import defs
from pgvector_pipeline.entry_points.cli import build_parser
from pgvector_pipeline.jobs.restore import RestoreConfig
from pgvector_pipeline.operations.backup import back_up_database
from pgvector_pipeline.run_requests import RestoreRequest, as_config, from_args
from pgvector_pipeline.store.local import LocalBackupStore
from tests.helpers import DSN_ENV, direct, resources_config

NOTE = "ticket 4711: the bad import of Monday"


def test_the_note_is_spelled_everywhere_from_its_one_declaration():
    args = build_parser().parse_args(["restore", "--timestamp", "20261124_101500", "--note", NOTE])
    request = from_args(RestoreRequest, args)
    assert request.note == NOTE
    assert as_config(request)["note"] == NOTE
    assert "note" not in as_config(RestoreRequest(timestamp="20261124_101500"))  # not sent when not given
    assert RestoreConfig.model_fields["note"].default == ""
    assert RestoreConfig(timestamp="20261124_101500", note=NOTE).request() == request


def test_the_restore_job_records_its_note(instance, store_db, backup_root, monkeypatch):
    monkeypatch.setenv(DSN_ENV, store_db)
    made = back_up_database(store_db, "public", LocalBackupStore(backup_root), "global", None)
    request = RestoreRequest(task_id="global", timestamp=made.timestamp, note=NOTE)
    result = defs.resolve_job_def(RESTORE_JOB).execute_in_process(
        instance=instance, run_config={**request_config(RESTORE_OP, request), **resources_config()}
    )
    assert result.success
    [output] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    assert output.event_specific_data.metadata["note"].value == NOTE
    logged = [record.user_message for record in instance.all_logs(result.run_id)]
    assert f"Restore note: {NOTE}" in logged


def test_a_direct_restore_logs_its_note(store_db, backup_root):
    made = back_up_database(store_db, "public", LocalBackupStore(backup_root), "global", None)
    restored = direct(
        "--root", str(backup_root), "restore", "--timestamp", made.timestamp, "--note", NOTE, env={DSN_ENV: store_db}
    )
    assert restored.returncode == 0, restored.stderr
    assert json.loads(restored.stdout)["status"] == "SUCCESS"
    assert f"Restore note: {NOTE}" in restored.stderr
