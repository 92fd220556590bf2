"""The age keys of a store (age-encryption.org/v1, X25519): the recipients new sets are encrypted to, and the identity
files that read sets. Deployment settings (settings.StoreSettings reads the variables below), never run config.

    PGVECTOR_BACKUP_RECIPIENTS       age public keys (age1…), separated by commas or whitespace: new sets are encrypted
                                     to every one of them (any one's identity reads the set)
    PGVECTOR_BACKUP_RECIPIENTS_FILE  the same, one per line in a file ('#' comments), as `age -R` reads it
    PGVECTOR_BACKUP_IDENTITY_FILE    age identity files (AGE-SECRET-KEY-1…, as `age-keygen` writes them), separated by
                                     commas: read by whatever reads a set's content (restore, drill, verify, copy that
                                     re-encrypts, the vector check). Several files, or several keys in one, for
                                     rotation: a set is read with whichever key it was encrypted to

A backup host needs only the public keys: it cannot read what it wrote. Keys are never shown: a recipient is named by
its fingerprint (the first 16 hex digits of the sha256 of its age1… text), an identity by its recipient's fingerprint,
and an identity file by its path. An identity file that anyone but its owner may read is refused, as ssh refuses such a
private key. pyrage (bindings to the Rust rage) is imported only when a key is used.
"""

import hashlib
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pgvector_pipeline.errors import InvalidParams

if TYPE_CHECKING:
    from pyrage import x25519

RECIPIENTS_ENV = "PGVECTOR_BACKUP_RECIPIENTS"
RECIPIENTS_FILE_ENV = "PGVECTOR_BACKUP_RECIPIENTS_FILE"
IDENTITY_FILE_ENV = "PGVECTOR_BACKUP_IDENTITY_FILE"

# An X25519 recipient and identity as age encodes them (Bech32: lower case, or upper case for identities).
_RECIPIENT = re.compile(r"age1[02-9ac-hj-np-z]{58}")
_IDENTITY = re.compile(r"AGE-SECRET-KEY-1[02-9AC-HJ-NP-Z]{58}")
# Key files are a few lines; anything larger is not one.
MAX_KEY_FILE_BYTES = 64 << 10
FINGERPRINT_HEX = 16


def fingerprint(recipient: str) -> str:
    """How a recipient (an age1… public key) is named wherever keys are shown: the first 16 hex digits of the sha256
    of its text. It tells keys apart without revealing them."""
    return hashlib.sha256(recipient.encode()).hexdigest()[:FINGERPRINT_HEX]


def fingerprints_text(fingerprints: tuple[str, ...] | list[str]) -> str:
    """Fingerprints for a message: "a1b2…, c3d4…" ("none" for none)."""
    return ", ".join(fingerprints) or "none"


@dataclass(frozen=True)
class Recipients:
    """The public keys new sets are encrypted to (at least one)."""

    keys: tuple[str, ...]
    # Where they were read from, for messages (a variable's name, a file's path).
    source: str = RECIPIENTS_ENV

    def __repr__(self) -> str:  # keys are not secret, but are shown only as fingerprints all the same
        return f"Recipients({', '.join(self.fingerprints)})"

    @property
    def fingerprints(self) -> tuple[str, ...]:
        return tuple(fingerprint(key) for key in self.keys)

    def objects(self) -> "list[x25519.Recipient]":
        """The recipients as pyrage takes them."""
        from pyrage import x25519

        return [x25519.Recipient.from_str(key) for key in self.keys]


def parse_recipients(text: str, source: str) -> Recipients:
    """The recipients in `text` (age1… keys separated by commas or whitespace; lines starting with '#' are comments),
    read from `source` (for messages); InvalidParams naming the position of one that is not an X25519 recipient,
    never its text."""
    words = [
        word
        for line in text.splitlines()
        if not line.strip().startswith("#")
        for word in re.split(r"[\s,]+", line.strip())
        if word
    ]
    if not words:
        raise InvalidParams(f"{source} holds no recipient: give one or more age public keys (age1…).")
    for position, word in enumerate(words, start=1):
        if not _RECIPIENT.fullmatch(word):
            raise InvalidParams(
                f"Recipient {position} of {source} is not an age X25519 public key (age1 followed by 58 Bech32 "
                f"characters, as `age-keygen -y KEYFILE` prints it). Its text is not shown."
            )
    return Recipients(tuple(dict.fromkeys(words)), source)


def read_recipients_file(path: str) -> Recipients:
    """The recipients of a recipients file (as `age -R` reads it); InvalidParams when it cannot be read."""
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:
        raise InvalidParams(
            f"The recipients file {path} ({RECIPIENTS_FILE_ENV}) cannot be read: {exc.strerror or exc}."
        ) from None
    if len(data) > MAX_KEY_FILE_BYTES:
        raise InvalidParams(f"The recipients file {path} is larger than {MAX_KEY_FILE_BYTES} bytes: not a key file.")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidParams(f"The recipients file {path} is not UTF-8 text: not a key file.") from None
    return parse_recipients(text, f"the recipients file {path}")


class Identities:
    """Private keys loaded from identity files, for reading sets. Shown only as their recipients' fingerprints."""

    def __init__(self, keys: "list[x25519.Identity]", fingerprints: tuple[str, ...], files: tuple[Path, ...]):
        self._keys = keys
        self.fingerprints = fingerprints
        self.files = files

    def __repr__(self) -> str:
        return f"Identities({', '.join(self.fingerprints)})"

    def objects(self) -> "list[x25519.Identity]":
        """The identities as pyrage takes them."""
        return list(self._keys)

    def hold_any(self, fingerprints: tuple[str, ...] | list[str]) -> bool:
        """Whether one of these identities is one of the recipients named by `fingerprints`."""
        return bool(set(self.fingerprints) & set(fingerprints))


def check_identity_file_mode(path: Path, mode: int) -> None:
    """InvalidParams when an identity file's mode lets anyone but its owner read (or write) it."""
    if stat.S_IMODE(mode) & 0o077:
        raise InvalidParams(
            f"The identity file {path} ({IDENTITY_FILE_ENV}) is open to others (mode "
            f"{stat.S_IMODE(mode):04o}): a private key must be readable by its owner only. Run `chmod 600 {path}`."
        )


def load_identity_file(path: Path) -> "list[tuple[x25519.Identity, str]]":
    """The identities of one file, each with its recipient's fingerprint; InvalidParams when the file cannot be read,
    is open to others, or holds a line that is not a comment or an X25519 identity (the line's number is said,
    never its text)."""
    from pyrage import IdentityError, x25519

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise InvalidParams(
            f"The identity file {path} ({IDENTITY_FILE_ENV}) cannot be read: {exc.strerror or exc}."
        ) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):  # a directory, a FIFO (whose read would block), a device
            raise InvalidParams(f"The identity file {path} ({IDENTITY_FILE_ENV}) is not a regular file.")
        check_identity_file_mode(path, info.st_mode)
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as file:
        data = file.read(MAX_KEY_FILE_BYTES + 1)
    if len(data) > MAX_KEY_FILE_BYTES:
        raise InvalidParams(f"The identity file {path} is larger than {MAX_KEY_FILE_BYTES} bytes: not a key file.")
    found = []
    for number, raw in enumerate(data.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(b"#"):
            continue
        text = line.decode("ascii", "replace")
        try:
            if not _IDENTITY.fullmatch(text.upper()):
                raise IdentityError("not an X25519 identity")
            identity = x25519.Identity.from_str(text)
        except IdentityError:
            raise InvalidParams(
                f"Line {number} of the identity file {path} is not an age X25519 identity (AGE-SECRET-KEY-1…, as "
                f"age-keygen writes it; plugin and ssh keys are not supported). Its text is not shown."
            ) from None
        found.append((identity, fingerprint(str(identity.to_public()))))
    if not found:
        raise InvalidParams(f"The identity file {path} ({IDENTITY_FILE_ENV}) holds no identity (AGE-SECRET-KEY-1…).")
    return found


def load_identities(paths: tuple[Path, ...]) -> Identities:
    """The identities of every file in `paths` (see load_identity_file)."""
    keys, fingerprints = [], []
    for path in paths:
        for identity, print_ in load_identity_file(path):
            keys.append(identity)
            fingerprints.append(print_)
    return Identities(keys, tuple(dict.fromkeys(fingerprints)), paths)


def parse_identity_files(text: str) -> tuple[Path, ...]:
    """The identity files $PGVECTOR_BACKUP_IDENTITY_FILE names (separated by commas)."""
    return tuple(Path(part.strip()) for part in text.split(",") if part.strip())


@dataclass(frozen=True)
class SetKeys:
    """A store's keys: whom new sets are encrypted to (None: sets are written in clear) and which identity files read
    encrypted sets (loaded when first needed, each time anew: a rotated file is read as it is now)."""

    recipients: Recipients | None = None
    identity_files: tuple[Path, ...] = ()
    _loaded: dict[str, Identities] = field(default_factory=dict, compare=False, repr=False)

    @property
    def encrypts(self) -> bool:
        return self.recipients is not None

    @property
    def holds_identity(self) -> bool:
        """Whether identity files are configured (whether they can be read is known when they are loaded)."""
        return bool(self.identity_files)

    def identities(self, needed_for: str, fingerprints: tuple[str, ...] | list[str]) -> Identities:
        """The identities, loaded from their files (once per keys object); InvalidParams when none are configured
        (naming `needed_for`, what needs them, and the recipients it was encrypted to) or a file cannot be used."""
        if not self.identity_files:
            raise InvalidParams(
                f"{needed_for} is encrypted to the age recipients with fingerprints {fingerprints_text(fingerprints)}, "
                f"and this host holds no identity to read it: set {IDENTITY_FILE_ENV} to an identity file of one of "
                f"those recipients (readable by its owner only). Nothing was changed."
            )
        if "identities" not in self._loaded:
            self._loaded["identities"] = load_identities(self.identity_files)
        identities: Identities = self._loaded["identities"]
        if not identities.hold_any(fingerprints):
            raise wrong_identity(needed_for, fingerprints, identities)
        return identities


def wrong_identity(needed_for: str, fingerprints: tuple[str, ...] | list[str], identities: Identities) -> InvalidParams:
    """The error of a set none of `identities` can read."""
    return InvalidParams(
        f"{needed_for} is encrypted to the age recipients with fingerprints {fingerprints_text(fingerprints)}, and "
        f"none of the identities in {IDENTITY_FILE_ENV} ({', '.join(str(p) for p in identities.files)}: "
        f"recipients {fingerprints_text(identities.fingerprints)}) is one of them. Add the identity file of one of "
        f"those recipients (an old key, after a rotation) to {IDENTITY_FILE_ENV}. Nothing was changed."
    )


NO_KEYS = SetKeys()
