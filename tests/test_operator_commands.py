"""`check`, `schedules`, `start` and `stop` as an operator runs them: the command line (a subprocess) against a real
dagster-webserver, one for the module (starting one costs ~20 s).

The test instance sets `run_coordinator: DefaultRunCoordinator` (testing.webserver), so the check's runs launch at
once without a dagster-daemon; schedules and sensors are switched and listed by the webserver alone (no daemon ticks
them here: tests/test_deployment.py does that).
"""

import json
import subprocess
import sys
import uuid
from datetime import datetime

import pytest
from psycopg2 import sql

from pgvector_pipeline.contract import (
    ALERT_SENSOR,
    BACKUP_SCHEDULE,
    CHECK_JOB,
    DRILL_SCHEDULE,
    FRESHNESS_SCHEDULE,
)
from pgvector_pipeline.definitions import defs
from pgvector_pipeline.entry_points.client import VectorBackupClient
from pgvector_pipeline.names import COLLECTION_TABLE, EMBEDDING_TABLE
from pgvector_pipeline.testing.admin import create_role, dsn_as
from pgvector_pipeline.testing.db import execute
from pgvector_pipeline.testing.embedded import database_dsn, ensure_database
from pgvector_pipeline.testing.langchain_tables import create_langchain_tables, insert_sample_store
from pgvector_pipeline.testing.webserver import REPO_ROOT, free_port, running_webserver

DEAD_DSN_ENV = "PGVECTOR_DEAD_DSN"  # a server that does not answer
READER_DSN_ENV = "PGVECTOR_READER_DSN"  # a role that may only SELECT


@pytest.fixture(scope="module")
def served(pg_server, tmp_path_factory):
    work = tmp_path_factory.mktemp("operator")
    root = work / "backups"
    root.mkdir()
    store = ensure_database(pg_server, "operator_commands")
    execute(store, lambda cur: create_langchain_tables(cur, "public"))
    execute(store, lambda cur: insert_sample_store(cur, "public", collections=1, embeddings_per_collection=20))
    reader = f"reader_{uuid.uuid4().hex[:8]}"
    create_role(database_dsn(pg_server, "postgres"), reader)
    execute(
        store,
        lambda cur: cur.execute(
            sql.SQL("GRANT SELECT ON {}, {} TO {}").format(
                sql.Identifier(COLLECTION_TABLE), sql.Identifier(EMBEDDING_TABLE), sql.Identifier(reader)
            )
        ),
    )
    env = {
        "PGVECTOR_DSN": store,
        "PGVECTOR_BACKUP_ROOT": str(root),
        DEAD_DSN_ENV: f"postgresql://postgres@127.0.0.1:{free_port()}/postgres?connect_timeout=5",
        READER_DSN_ENV: dsn_as(store, reader),
    }
    with running_webserver(work, env) as port:
        yield {"port": port, "root": root, "store": store}


def cli(port: int, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pgvector_pipeline.entry_points.cli", "--port", str(port), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO_ROOT,
    )


def listed(port: int) -> dict[str, dict]:
    done = cli(port, "schedules", "--json")
    assert done.returncode == 0, done.stderr
    return {item["name"]: item for item in map(json.loads, done.stdout.splitlines())}


def has_offset(iso: str) -> bool:
    return datetime.fromisoformat(iso).utcoffset() is not None


def test_schedules_lists_every_automation_and_start_and_stop_take_each(served):
    port = served["port"]
    automations = listed(port)

    # The webserver's names, not a list kept in the command: every schedule and sensor of the code location.
    assert set(automations) == {s.name for s in defs.schedules} | {s.name for s in defs.sensors}
    assert {name: a["kind"] for name, a in automations.items() if a["kind"] == "schedule"} == dict.fromkeys(
        (s.name for s in defs.schedules), "schedule"
    )
    # Their default states until someone switches them; a running schedule says when it ticks next.
    assert automations[FRESHNESS_SCHEDULE]["status"] == "RUNNING" and automations[ALERT_SENSOR]["status"] == "RUNNING"
    assert automations[BACKUP_SCHEDULE]["status"] == automations[DRILL_SCHEDULE]["status"] == "STOPPED"
    assert has_offset(automations[FRESHNESS_SCHEDULE]["next_tick"])
    assert automations[DRILL_SCHEDULE]["next_tick"] is None and automations[DRILL_SCHEDULE]["cron"] == "0 5 * * 0"
    assert automations[DRILL_SCHEDULE]["last_tick_status"] is None  # no daemon has ticked it

    started = cli(port, "start", DRILL_SCHEDULE)
    assert started.returncode == 0, started.stderr
    assert json.loads(started.stdout) == {"name": DRILL_SCHEDULE, "status": "RUNNING"}
    drill = listed(port)[DRILL_SCHEDULE]
    assert drill["status"] == "RUNNING" and has_offset(drill["next_tick"])
    assert datetime.fromisoformat(drill["next_tick"]).strftime("%a %H:%M") == "Sun 05:00"  # the cron, in its zone
    again = cli(port, "start", DRILL_SCHEDULE)  # started twice: still running, not an error
    assert (again.returncode, json.loads(again.stdout)["status"]) == (0, "RUNNING")

    # For people: an aligned table, one line per schedule and sensor.
    table = cli(port, "schedules")
    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    assert header.split() == ["NAME", "KIND", "STATE", "NEXT", "TICK", "LAST", "TICK", "WHEN"]
    assert [row.split()[0] for row in rows] == list(automations)
    assert {row.index(row.split()[2]) for row in rows} == {header.index("STATE")}
    drill_row = next(row for row in rows if row.startswith(DRILL_SCHEDULE))
    assert drill_row.split()[1:4] == ["schedule", "RUNNING", drill["next_tick"]] and drill_row.endswith(
        "0 5 * * 0 (UTC)"
    )

    stopped = cli(port, "stop", DRILL_SCHEDULE)
    assert (stopped.returncode, json.loads(stopped.stdout)) == (0, {"name": DRILL_SCHEDULE, "status": "STOPPED"})
    assert listed(port)[DRILL_SCHEDULE]["status"] == "STOPPED"

    # A sensor that is on by default goes off and on again.
    assert json.loads(cli(port, "stop", ALERT_SENSOR).stdout)["status"] == "STOPPED"
    assert listed(port)[ALERT_SENSOR]["status"] == "STOPPED"
    assert json.loads(cli(port, "start", ALERT_SENSOR).stdout)["status"] == "RUNNING"
    assert listed(port)[ALERT_SENSOR]["status"] == "RUNNING"

    # A name the code location does not have: refused, naming the nearest.
    typo = cli(port, "start", "vector_restore_drill")
    assert typo.returncode == 2 and typo.stdout == ""
    assert typo.stderr.splitlines() == [
        "error: INVALID_PARAMS: 'vector_restore_drill' is not a schedule or sensor of code location pgvector_pipeline; "
        f"nearest: {DRILL_SCHEDULE}. `pgvector-pipeline schedules` lists them."
    ]
    assert cli(port, "stop", "no_such_thing").returncode == 2
    assert cli(port, "--direct", "schedules").returncode == 2


def test_check_through_the_webserver_runs_the_checks_where_the_code_server_is(served):
    port, root = served["port"], served["root"]
    client = VectorBackupClient("127.0.0.1", port)

    # No global backup yet and the backup schedule off: nothing backs up.
    stale = cli(port, "check")
    assert stale.returncode == 1, stale.stderr
    report = json.loads(stale.stdout)
    assert (report["status"], report["ok"], report["problems"]) == ("FAILURE", False, ["recent_backup", "automations"])
    assert report["job_name"] == CHECK_JOB
    lines = stale.stderr.splitlines()
    assert [line.split(":")[0] for line in lines[:-1]] == [f"{c['line_mark']} {c['name']}" for c in marks(report)]
    assert lines[-1] == "error: 2 problem(s): recent_backup, automations."
    automations = next(c for c in report["checks"] if c["name"] == "automations")
    assert automations["detail"].startswith(f"Nothing backs up: {BACKUP_SCHEDULE} is stopped")
    # The run failed in Dagster too (an alert goes out), naming each problem its checks found.
    run = client.run_status(report["run_id"])
    assert (run.status, run.error_type) == ("FAILURE", "DATA_ERROR")
    assert run.error_message.startswith("1 problem(s): recent_backup: There is no complete global backup in ")

    # The code server's store was claimed in (its PGVECTOR_BACKUP_ROOT, not this process's) and left as it was.
    store_check = next(c for c in report["checks"] if c["name"] == "store")
    assert store_check["ok"] and store_check["data"]["where"] == str(root)
    assert list(root.rglob("*.lock")) == []

    backed_up = client.wait_for_run(client.launch_backup().run_id, timeout_s=180)
    assert backed_up.status == "SUCCESS"
    fine = cli(port, "check")
    assert fine.returncode == 0, fine.stderr
    report = json.loads(fine.stdout)
    assert (report["status"], report["ok"], report["problems"]) == ("SUCCESS", True, [])
    # The shape --direct check prints (tests/test_check.py), with the run's id.
    assert {"status", "ok", "problems", "checks"} <= set(report)
    assert all(list(check) == ["name", "ok", "detail", "data"] for check in report["checks"])
    assert [c["name"] for c in report["checks"]] == [
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
        "automations",
    ]
    assert client.run_status(report["run_id"]).status == "SUCCESS"
    # A stopped backup schedule beside a recent backup is a warning (someone else's cron may back up), not a problem.
    automations = report["checks"][-1]
    assert automations["ok"] and automations["data"]["known"]
    assert BACKUP_SCHEDULE in automations["data"]["stopped"] and FRESHNESS_SCHEDULE in automations["data"]["running"]
    assert automations["data"]["warnings"] == [
        f"{BACKUP_SCHEDULE} is stopped: no global backup is taken on a schedule (fine when another scheduler runs "
        f"`pgvector-pipeline backup`; else `pgvector-pipeline start {BACKUP_SCHEDULE}`)."
    ]
    assert "warn automations: Running: " in fine.stderr and "ok   database: " in fine.stderr

    assert cli(port, "start", BACKUP_SCHEDULE).returncode == 0
    try:
        on = json.loads(cli(port, "check").stdout)["checks"][-1]
        assert on["ok"] and on["data"]["warnings"] == [] and BACKUP_SCHEDULE in on["data"]["running"]
    finally:
        assert cli(port, "stop", BACKUP_SCHEDULE).returncode == 0


def test_check_through_the_webserver_names_each_problem(served):
    port = served["port"]

    # The DSN variable of the code server names a server that does not answer.
    dead = cli(port, "check", "--dsn-env", DEAD_DSN_ENV)
    assert dead.returncode == 1, dead.stderr
    report = json.loads(dead.stdout)
    assert report["problems"][0] == "database" and "pgvector" not in [c["name"] for c in report["checks"]]
    # One line per check, also where the driver's message spans several.
    [said] = [line for line in dead.stderr.splitlines() if line.startswith("FAIL database: ")]
    assert said == "FAIL database: " + " ".join(report["checks"][0]["detail"].split())
    assert len(dead.stderr.splitlines()) == len(report["checks"]) + 1
    assert " does not answer: " in report["checks"][0]["detail"]
    assert dead.stderr.splitlines()[-1].startswith("error: ") and "database" in dead.stderr.splitlines()[-1]
    run = VectorBackupClient("127.0.0.1", port).run_status(report["run_id"])
    assert (run.status, run.error_type) == ("FAILURE", "DATABASE_ERROR")
    found_by_the_run = [name for name in report["problems"] if name != "automations"]  # that one is the client's
    assert run.error_message.startswith(f"{len(found_by_the_run)} problem(s): database: ")

    # A variable the code server does not have: said, and nothing checked.
    unset = cli(port, "check", "--dsn-env", "PGVECTOR_NO_SUCH_DSN")
    assert unset.returncode == 2 and unset.stdout == ""
    assert 'environment variable "PGVECTOR_NO_SUCH_DSN" which is not set' in unset.stderr

    # A role that may only read: a backup works, a truncate and a restore would be refused.
    reader = cli(port, "check", "--dsn-env", READER_DSN_ENV)
    assert reader.returncode == 1, reader.stderr
    report = json.loads(reader.stdout)
    assert {"truncate", "restore"} <= set(report["problems"]) and "backup" not in report["problems"]
    truncate = next(c for c in report["checks"] if c["name"] == "truncate")
    assert truncate["detail"] == (
        f"A truncate (and truncate_after_backup) would be refused: the role lacks TRUNCATE on public.{EMBEDDING_TABLE}. "
        "Grant TRUNCATE (GRANT TRUNCATE ON ... TO role)."
    )
    assert f"FAIL truncate: {truncate['detail']}" in reader.stderr.splitlines()


def marks(report: dict) -> list[dict]:
    """Each check with the mark its stderr line begins with."""
    return [
        {"name": c["name"], "line_mark": ("warn" if c["data"].get("warnings") else "ok  ") if c["ok"] else "FAIL"}
        for c in report["checks"]
    ]
