"""A backup's note (why it is taken: a ticket, a migration), declared once in BackupRequest: the command line's
--note, the jobs' config and the run config the client sends come from that declaration; the run records it in its
log, in the backup assets' metadata and in the location's backup log (as a quoted literal: one line whatever it
holds), as --direct does in its own log and the location's."""

import json

from pgvector_pipeline.contract import REQUEST_BACKUP_JOB, request_run_config
from pgvector_pipeline.definitions import defs
from pgvector_pipeline.entry_points.cli import build_parser
from pgvector_pipeline.jobs.request_backup import BackupRequestConfig
from pgvector_pipeline.run_requests import BackupRequest, as_config, from_args
from tests.helpers import DSN_ENV, backup_materializations, direct, resources_config

NOTE = "ticket 4712: before the re-embedding\nforged: entry"


def test_the_note_is_spelled_everywhere_from_its_one_declaration():
    args = build_parser().parse_args(["backup", "--note", NOTE])
    request = from_args(BackupRequest, args)
    assert request.note == NOTE
    assert as_config(request)["note"] == NOTE
    assert "note" not in as_config(BackupRequest())  # not sent when not given
    assert BackupRequestConfig.model_fields["note"].default == ""
    assert BackupRequestConfig(note=NOTE).request() == request


def test_the_backup_job_records_its_note(instance, store_db, backup_root, monkeypatch):
    monkeypatch.setenv(DSN_ENV, store_db)
    run_config = request_run_config()
    run_config["ops"]["request_vector_backup"]["config"]["note"] = NOTE
    result = defs.resolve_job_def(REQUEST_BACKUP_JOB).execute_in_process(
        instance=instance, run_config={**run_config, **resources_config()}
    )
    assert result.success
    materialized = backup_materializations(result)
    assert {key: m.metadata["note"].value for key, m in materialized.items()} == dict.fromkeys(materialized, NOTE)
    assert f"Backup note: {NOTE}" in [record.user_message for record in instance.all_logs(result.run_id)]
    log = (backup_root / "vector_bak" / "vector_backup_log.txt").read_text()
    assert f"note: {NOTE!r}" in log and "\nforged: entry" not in log


def test_a_direct_backup_logs_its_note(store_db, backup_root):
    done = direct("--root", str(backup_root), "backup", "--note", NOTE, env={DSN_ENV: store_db})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "SUCCESS"
    assert f"Backup note: {NOTE}" in done.stderr
    assert f"note: {NOTE!r}" in (backup_root / "vector_bak" / "vector_backup_log.txt").read_text()
