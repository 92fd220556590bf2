"""`check` (pgvector_pipeline.operations.check): each question asked of a real embedded PostgreSQL and a real store (a local
directory, and S3 on a real SeaweedFS server where the store matters), with roles made by the make_role fixture."""

from datetime import datetime, timedelta
from pathlib import Path

from pgvector_pipeline.automations import automations_check
from pgvector_pipeline.contract import ALERT_SENSOR, BACKUP_SCHEDULE, DRILL_SCHEDULE, FRESHNESS_SCHEDULE
from pgvector_pipeline.names import COLLECTION_TABLE, EMBEDDING_TABLE
from pgvector_pipeline.operations.backup import back_up_database
from pgvector_pipeline.operations.check import Check, run_checks
from pgvector_pipeline.store.local import LocalBackupStore
from pgvector_pipeline.testing.db import execute
from pgvector_pipeline.testing.embedded import database_dsn

NAMES = [
    "database",
    "pgvector",
    "tables",
    "backup",
    "truncate",
    "restore",
    "store",
    "store_free_space",
    "encryption",
    "recent_backup",
]


def store_contents(store) -> list[str]:
    """Every file or object of the store, to see that a check leaves nothing behind."""
    if hasattr(store, "client"):
        return sorted(item["Key"] for item in store.objects(store.root.key() + "/"))
    return sorted(str(p.relative_to(store.root)) for p in Path(store.root).rglob("*"))


def test_a_working_configuration_holds_once_a_global_backup_is_recent(store_db, any_store):
    first = run_checks(store_db, "public", any_store)
    assert [c.name for c in first.checks] == NAMES
    assert [c.name for c in first.problems] == ["recent_backup"]
    assert first.check("recent_backup").detail == (
        f"There is no complete global backup in {any_store.location('global')}."
    )
    assert " answers: PostgreSQL " in first.check("database").detail
    assert first.check("pgvector").data["schema"] == "public"
    assert first.check("tables").data == {
        "schema": "public",
        "present": [COLLECTION_TABLE, EMBEDDING_TABLE],
        "absent": [],
    }
    assert first.check("restore").data["truncating_mode"] == "swapped"
    assert first.check("restore").detail == (
        "A restore may append; one with truncate_before_restore would swap new tables in (readers go on until the swap)."
    )
    made = back_up_database(store_db, "public", any_store, "global", None)
    before = store_contents(any_store)
    report = run_checks(store_db, "public", any_store)
    assert report.ok and report.problems == []
    assert store_contents(any_store) == before  # the claim is gone, nothing else was written
    assert report.check("recent_backup").data["newest_set"] == made.timestamp
    claimed = report.check("store").data["claimed"]
    assert claimed != made.timestamp and claimed not in [s.timestamp for s in any_store.list_sets()]
    space = report.check("store_free_space")
    if isinstance(any_store, LocalBackupStore):
        assert space.data["applicable"] and space.data["free_bytes"] > space.data["newest_global_set_bytes"] > 0
    else:
        assert space.detail == f"Not applicable: {any_store.where} is object storage."
    stale = run_checks(store_db, "public", any_store, now=datetime.now() + timedelta(hours=30))
    assert [c.name for c in stale.problems] == ["recent_backup"]
    assert stale.check("recent_backup").detail.endswith("older than 26 h. Is daily_vector_backup_schedule running?")
    assert stale.text().splitlines()[-1] == "1 problem(s): recent_backup."


def test_each_operation_names_the_privileges_it_lacks(store_db, make_role, backup_root):
    store = LocalBackupStore(backup_root)
    reader = run_checks(make_role("SELECT"), "public", store)
    assert reader.check("backup").ok
    assert reader.check("truncate").detail == (
        f"A truncate (and truncate_after_backup) would be refused: the role lacks TRUNCATE on public.{EMBEDDING_TABLE}. "
        f"Grant TRUNCATE (GRANT TRUNCATE ON ... TO role)."
    )
    assert reader.check("restore").data["append_missing"] == [
        f"INSERT on public.{COLLECTION_TABLE}",
        f"INSERT on public.{EMBEDDING_TABLE}",
    ]
    assert not reader.check("restore").ok

    writer = run_checks(make_role("SELECT", "INSERT", "TRUNCATE"), "public", store)
    assert writer.check("truncate").ok and writer.check("restore").ok
    restore = writer.check("restore")
    assert restore.data["truncating_mode"] == "in place"
    assert restore.detail.startswith(
        "A restore may append; one with truncate_before_restore would load in place, not swapped: role role_"
    )
    assert f"does not own {COLLECTION_TABLE} (its owner is postgres)" in restore.detail


def test_a_row_level_security_policy_fails_the_backup_check_unless_the_role_bypasses_it(
    store_db, make_role, backup_root
):
    execute(
        store_db,
        lambda cur: cur.execute(
            f"ALTER TABLE {EMBEDDING_TABLE} ENABLE ROW LEVEL SECURITY; "
            f"CREATE POLICY only_some ON {EMBEDDING_TABLE} USING (document OPERATOR(pg_catalog.<>) 'secret')"
        ),
    )
    store = LocalBackupStore(backup_root)
    filtered = run_checks(make_role("SELECT"), "public", store).check("backup")
    assert not filtered.ok and filtered.data["row_security"] == [EMBEDDING_TABLE]
    assert f"a row-level security policy filters its reads of public.{EMBEDDING_TABLE}" in filtered.detail
    assert run_checks(make_role("SELECT", attributes=("BYPASSRLS",)), "public", store).check("backup").ok
    assert run_checks(store_db, "public", store).check("backup").ok  # the owner, security not forced


def test_what_is_missing_is_said_and_the_rest_still_checked(empty_db, pg_server, tmp_path):
    not_a_directory = tmp_path / "root"
    not_a_directory.write_text("a file where the backup root should be")
    bare = run_checks(empty_db, "public", LocalBackupStore(not_a_directory))
    assert not bare.check("pgvector").ok
    assert bare.check("tables").ok and bare.check("tables").data["present"] == []
    assert bare.check("backup").detail == "not applicable: no LangChain tables in schema public."
    assert not bare.check("store").ok and bare.check("store").data["error_type"]
    assert not_a_directory.read_text() == "a file where the backup root should be"
    gone = run_checks(database_dsn(pg_server, "no_such_database"), "public", LocalBackupStore(tmp_path / "r"))
    assert [c.name for c in gone.checks][:1] == ["database"] and not gone.check("database").ok
    assert "does not answer" in gone.check("database").detail
    assert "pgvector" not in [c.name for c in gone.checks]


def test_the_check_command_exits_0_when_all_hold_and_1_naming_each_problem(store_db, tmp_path):
    import json

    from pgvector_pipeline.store.roots import BACKUP_ROOT_ENV
    from tests.helpers import DSN_ENV, direct

    env = {DSN_ENV: store_db, BACKUP_ROOT_ENV: str(tmp_path)}
    stale = direct("check", env=env)  # no global backup yet

    assert stale.returncode == 1, stale.stderr
    report = json.loads(stale.stdout)
    assert (report["ok"], report["problems"]) == (False, ["recent_backup"])
    assert stale.stderr.splitlines()[-1] == "error: 1 problem(s): recent_backup."
    # Which schedules and sensors run only Dagster knows: not a failure, said so.
    assert report["checks"][-1] == {
        "name": "automations",
        "ok": True,
        "detail": "Not known without the webserver: `pgvector-pipeline schedules` (or the Dagster UI's Automation page) "
        "shows which schedules and sensors run.",
        "data": {"known": False},
    }
    assert stale.stderr.splitlines()[-2].startswith("ok   automations: Not known without the webserver")

    assert direct("backup", env=env).returncode == 0
    fine = direct("check", env=env)
    assert fine.returncode == 0, fine.stderr
    assert json.loads(fine.stdout)["ok"] is True
    assert list(tmp_path.rglob("*.lock")) == []


def test_a_stopped_backup_schedule_is_a_warning_unless_nothing_backs_up():
    states = {BACKUP_SCHEDULE: "STOPPED", FRESHNESS_SCHEDULE: "RUNNING", DRILL_SCHEDULE: "STOPPED"}
    # Someone else's cron backs up: the schedule being off is worth a word, not a failure.
    elsewhere = automations_check(states, recent_backup_holds=True)
    assert elsewhere["ok"] and [w.split(":")[0] for w in elsewhere["data"]["warnings"]] == [
        f"{BACKUP_SCHEDULE} is stopped"
    ]
    # Off by design (the drill): listed, no warning.
    assert elsewhere["data"]["stopped"] == [BACKUP_SCHEDULE, DRILL_SCHEDULE]
    # Nothing backs up: the schedule is off and no recent global backup shows another way works.
    nothing = automations_check(states, recent_backup_holds=False)
    assert not nothing["ok"] and nothing["detail"].startswith(f"Nothing backs up: {BACKUP_SCHEDULE} is stopped")
    # The schedule on and a stale backup: recent_backup says so; this check has nothing to add.
    on = automations_check({**states, BACKUP_SCHEDULE: "RUNNING"}, recent_backup_holds=False)
    assert on["ok"] and on["data"]["warnings"] == []
    # The alert sensor off: failures reach no one.
    quiet = automations_check({**states, BACKUP_SCHEDULE: "RUNNING", ALERT_SENSOR: "STOPPED"}, True)
    assert quiet["data"]["warnings"] == [f"{ALERT_SENSOR} is stopped: failed runs are posted to no one."]
    assert Check(**quiet).line.startswith("warn automations: Running: ")
