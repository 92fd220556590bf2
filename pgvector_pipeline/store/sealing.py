"""An encrypted set's manifest, sealed and opened (see store.keys and the format 5 of store.manifest).

The manifest of an encrypted set names its collections, columns, DDL and row filters: it is stored age-encrypted to
the set's recipients (`vector_backup_{ts}.json.age`), beside a clear index (`vector_backup_{ts}.json`) that records
what can be known without a key: sizes and sha256 of the stored files, rows, codec, format, and the recipients'
fingerprints. Opening a set checks the manifest against the index it was listed with (the sealed manifest's own size
and sha256 first), so what is read is what was listed.
"""

import hashlib

from pgvector_pipeline.errors import DataError, FilesDamaged
from pgvector_pipeline.store.backup_set_info import BackupSetInfo
from pgvector_pipeline.store.keys import Identities, Recipients, SetKeys, fingerprints_text
from pgvector_pipeline.store.manifest import (
    MAX_MANIFEST_BYTES,
    Manifest,
    SealedIndex,
    index_of,
    parse_full_manifest,
)

# The sealed manifest: the manifest's bytes and age's header and tags.
MAX_SEALED_MANIFEST_BYTES = MAX_MANIFEST_BYTES + (64 << 10)


def sealed_documents(manifest: Manifest, recipients: Recipients) -> tuple[SealedIndex, bytes]:
    """The clear index and the sealed manifest of an encrypted set, for `recipients` (which must be those the
    manifest records)."""
    import pyrage

    assert manifest.encryption is not None, "only an encrypted set's manifest is sealed"
    assert list(recipients.fingerprints) == manifest.encryption.recipients, "sealed to the recipients it records"
    sealed = pyrage.encrypt(manifest.as_bytes(), recipients.objects())
    return index_of(manifest, sealed), sealed


def identities_for(backup_set: BackupSetInfo, needed_for: str = "") -> Identities | None:
    """The identities that read `backup_set`'s content (None for a set in clear), from its store's keys; InvalidParams
    when the store holds none of the recipients it is encrypted to."""
    index = backup_set.sealed
    if index is None:
        return None
    assert backup_set.store is not None, "listed sets know their store"
    what = needed_for or f"Set {backup_set.timestamp} in {backup_set.location}"
    return backup_set.store.keys.identities(what, index.encryption.recipients)


def open_sealed(backup_set: BackupSetInfo, needed_for: str = "") -> Manifest:
    """The manifest of `backup_set` (an encrypted set is opened: its sealed manifest read, checked against the clear
    index and decrypted, and kept in `backup_set.manifest`). InvalidParams when this host holds no identity of the
    set's recipients; FilesDamaged when the sealed manifest is not what the index records or fails authentication;
    DataError when a set in clear has no manifest."""
    if backup_set.manifest is not None:
        return backup_set.manifest
    index = backup_set.sealed
    if index is None:
        raise DataError(f"Set {backup_set.timestamp} in {backup_set.location} has no manifest.")
    identities = identities_for(backup_set, needed_for)
    assert identities is not None and backup_set.store is not None
    with backup_set.store.read_set(backup_set, []) as held:
        sealed = held.sealed_manifest(MAX_SEALED_MANIFEST_BYTES)
    backup_set.manifest = unsealed_manifest(backup_set, index, sealed, identities)
    return backup_set.manifest


def unsealed_manifest(backup_set: BackupSetInfo, index: SealedIndex, sealed: bytes, identities: Identities) -> Manifest:
    """The manifest sealed in `sealed`, checked against `index` (FilesDamaged when it is not what the index records)."""
    import pyrage

    name = index.manifest.file
    where = f"{backup_set.location}/{name}"
    found = (len(sealed), hashlib.sha256(sealed).hexdigest())
    if found != (index.manifest.stored_bytes, index.manifest.stored_sha256):
        raise FilesDamaged(
            f"{name} does not match the set's index (its sha256 is {found[1][:12]}…, {found[0]} bytes; the index "
            f"records {index.manifest.stored_sha256[:12]}…, {index.manifest.stored_bytes} bytes). The set was changed "
            f"or damaged after the backup: restore another set."
        )
    try:
        data = pyrage.decrypt(sealed, identities.objects())
    except pyrage.DecryptError as exc:
        if "No matching keys" in str(exc):
            raise DataError(
                f"{where} is encrypted to none of the identities this host holds (recipients "
                f"{fingerprints_text(identities.fingerprints)}), though its index names "
                f"{fingerprints_text(index.encryption.recipients)}: the index does not say whom the set is encrypted "
                f"to. Restore another set."
            ) from None
        raise _fails_authentication(name) from None
    except (OSError, ValueError):
        raise _fails_authentication(name) from None
    manifest = parse_full_manifest(data, where, backup_set.timestamp)
    if index_of(manifest, sealed) != index:
        raise FilesDamaged(
            f"{where} does not describe the set its index describes (task, times, format, recipients, or the files' "
            f"sizes, sha256, rows or codecs differ). The set was changed after the backup: restore another set."
        )
    return manifest


def _fails_authentication(name: str) -> FilesDamaged:
    return FilesDamaged(
        f"{name} fails age authentication: the set's manifest was changed or replaced after the backup. Restore "
        f"another set."
    )


def published_documents(manifest: Manifest, keys: SetKeys) -> tuple[bytes, bytes | None]:
    """What a set writer with `keys` stores for `manifest`: the manifest's document (and None), or, for an encrypted
    set, its clear index and its sealed manifest. A manifest that is not encrypted to the writer's recipients is the
    caller's fault (the writer encrypted the files to them)."""
    if manifest.encryption is None:
        assert keys.recipients is None, "a store that encrypts publishes only encrypted sets"
        return manifest.as_bytes(), None
    assert keys.recipients is not None, "an encrypted set is sealed to the recipients of the store that wrote it"
    index, sealed = sealed_documents(manifest, keys.recipients)
    return index.as_bytes(), sealed
