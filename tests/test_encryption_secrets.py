"""No key material anywhere (issue 35): the identity (AGE-SECRET-KEY-1…) and the recipients as configured (age1…) never
appear in a file or object of the store, a log line, a Dagster event or an error message, through backups, restores,
drills and copies by Dagster jobs and the CLI, and through every refusal; keys are shown only as fingerprints."""

import json
import logging

import dagster as dg
import pytest

from pgvector_pipeline.contract import (
    COPY_JOB,
    DRILL_JOB,
    REQUEST_BACKUP_JOB,
    RESTORE_JOB,
    RestoreFlags,
    copy_run_config,
    drill_run_config,
    request_run_config,
    restore_run_config,
)
from pgvector_pipeline.errors import PipelineError
from pgvector_pipeline.operations.restore import restore_backup_set
from pgvector_pipeline.resources.backup_store import OTHER_ROOT_ENV
from pgvector_pipeline.settings import StoreSettings
from pgvector_pipeline.store.keys import IDENTITY_FILE_ENV, RECIPIENTS_ENV, SetKeys, fingerprint
from pgvector_pipeline.store.local import LocalBackupStore
from pgvector_pipeline.store.roots import BACKUP_ROOT_ENV
from pgvector_pipeline.testing.langchain_tables import fill_sample_store
from tests.encryption_keys import new_key_pair
from tests.faulty_stores import flip_a_byte
from tests.helpers import DSN_ENV, direct, resources_config


def test_no_key_material_in_any_file_log_event_or_error(
    store_db, tmp_path, s3_env, s3_bucket, instance, monkeypatch, caplog
):
    from pgvector_pipeline.definitions import defs

    keys_dir = tmp_path / "keys"
    keys_dir.mkdir()
    key, other = new_key_pair(keys_dir, "current"), new_key_pair(keys_dir, "second")
    stranger = new_key_pair(keys_dir, "stranger")  # an identity of neither recipient
    secrets = [key.secret, other.secret, stranger.secret, key.recipient, other.recipient, stranger.recipient]
    configured = f"{key.recipient}, {other.recipient}"
    root = tmp_path / "backups"
    root.mkdir()
    env = {
        DSN_ENV: store_db,
        BACKUP_ROOT_ENV: str(root),
        OTHER_ROOT_ENV: f"s3://{s3_bucket}/offsite",
        RECIPIENTS_ENV: configured,
        IDENTITY_FILE_ENV: str(key.identity_file),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    caplog.set_level(logging.DEBUG)
    fill_sample_store(store_db, collections=2, embeddings_per_collection=20, dimension=8)
    said: list[str] = []

    # Dagster: a backup, a restore, a drill, a copy to S3 (the same recipients: copied as stored).
    backup = defs.get_job_def(REQUEST_BACKUP_JOB).execute_in_process(
        run_config={**request_run_config(), **resources_config()}, instance=instance
    )
    assert backup.success
    [backup_set] = LocalBackupStore(root).list_sets()
    assert set(backup_set.recipients) == {key.fingerprint, other.fingerprint}
    timestamp = backup_set.timestamp
    flags = RestoreFlags(truncate_before_restore=True)
    runs = [
        backup,
        defs.get_job_def(RESTORE_JOB).execute_in_process(
            run_config={**restore_run_config(None, timestamp, flags=flags), **resources_config()}, instance=instance
        ),
        defs.get_job_def(DRILL_JOB).execute_in_process(
            run_config={**drill_run_config(None, timestamp, True), **resources_config()}, instance=instance
        ),
        defs.get_job_def(COPY_JOB).execute_in_process(run_config=copy_run_config(None, timestamp), instance=instance),
    ]
    assert all(run.success for run in runs)

    # The CLI, in its own processes: list, restore, verify; and a restore a wrong identity refuses.
    for args in [("list", "--json"), ("restore", "--timestamp", timestamp, "--truncate"), ("verify",)]:
        done = direct(*args, env=env)
        assert done.returncode == 0, done.stderr
        said += [done.stdout, done.stderr]
    wrong = {**env, IDENTITY_FILE_ENV: str(stranger.identity_file)}
    refused = direct("restore", "--timestamp", timestamp, "--truncate", env=wrong)
    assert refused.returncode != 0
    said += [refused.stdout, refused.stderr]

    # Refusals in this process: no identity, an identity of neither recipient, a readable identity file, a bad
    # recipient, a changed file.
    for keys in [SetKeys(), SetKeys(None, (stranger.identity_file,))]:
        said.append(_refusal(lambda keys=keys: restore_backup_set(store_db, "public", _listed(root, keys), flags)))
    key.identity_file.chmod(0o644)
    said.append(
        _refusal(
            lambda: restore_backup_set(store_db, "public", _listed(root, SetKeys(None, (key.identity_file,))), flags)
        )
    )
    key.identity_file.chmod(0o600)
    monkeypatch.setenv(RECIPIENTS_ENV, configured + " " + key.secret.lower())
    said.append(_refusal(StoreSettings.from_env))
    monkeypatch.setenv(RECIPIENTS_ENV, configured)
    name = backup_set.table_files["langchain_pg_embedding"]
    (root / "vector_bak" / name).write_bytes(flip_a_byte((root / "vector_bak" / name).read_bytes()))
    said.append(
        _refusal(
            lambda: restore_backup_set(store_db, "public", _listed(root, SetKeys(None, (key.identity_file,))), flags)
        )
    )

    # Everything that was written or said.
    stored = {str(p): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    offsite = StoreSettings.from_env().store(env[OTHER_ROOT_ENV])
    for name, _ in offsite.location_names("global"):
        key_name = offsite.location_key("global", name)
        stored[key_name] = offsite.client.get_object(Bucket=offsite.root.bucket, Key=key_name)["Body"].read()
    assert any(n.endswith(".json.age") for n in stored) and len(stored) > 8
    # Every event of every run as Dagster stores it (messages, metadata, check results, step outputs).
    events = [dg.serialize_value(record) for run in runs for record in instance.all_logs(run.run_id)]
    runs_config = [json.dumps(instance.get_run_by_id(run.run_id).run_config) for run in runs]
    tags = [json.dumps(instance.get_run_by_id(run.run_id).tags) for run in runs]
    logs = [record.getMessage() for record in caplog.records]
    texts = said + events + runs_config + tags + logs
    assert any(key.fingerprint in text for text in texts), "the fingerprints are what is shown"
    for secret in secrets:
        for variant in {secret, secret.lower(), secret.upper()}:
            assert not [where for where, data in stored.items() if variant.encode() in data], "in the store"
            assert not [text for text in texts if variant in text]
    assert configured not in "".join(texts)


def _listed(root, keys: SetKeys):
    [backup_set] = [s for s in LocalBackupStore(root, keys=keys).list_sets() if s.encrypted]
    return backup_set


def _refusal(call) -> str:
    with pytest.raises(PipelineError) as caught:
        call()
    return caught.value.message + repr(caught.value) + repr(caught.value.__cause__) + repr(caught.value.__context__)


def test_keys_are_shown_as_fingerprints_only(tmp_path):
    keys_dir = tmp_path / "keys"
    keys_dir.mkdir()
    key = new_key_pair(keys_dir, "current")
    keys = SetKeys(None, (key.identity_file,))
    identities = keys.identities("The set", [key.fingerprint])
    for shown in (repr(keys), repr(identities), str(identities.__dict__.get("fingerprints"))):
        assert key.secret not in shown and key.recipient not in shown
    assert repr(identities) == f"Identities({fingerprint(key.recipient)})"
