"""age keys for tests of encrypted sets: a key pair written as age-keygen writes it, and stores that use them."""

import os
from dataclasses import dataclass
from pathlib import Path

from pyrage import x25519

from pgvector_pipeline.store.keys import SetKeys, fingerprint, parse_recipients


@dataclass(frozen=True)
class KeyPair:
    """An age X25519 key pair: its identity file (mode 0600) and its public key."""

    identity_file: Path
    secret: str  # AGE-SECRET-KEY-1…: what must never appear anywhere but the identity file
    recipient: str  # age1…

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.recipient)


def new_key_pair(directory: Path, name: str) -> KeyPair:
    identity = x25519.Identity.generate()
    recipient = str(identity.to_public())
    path = Path(directory) / f"{name}.txt"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(f"# created: by the tests\n# public key: {recipient}\n{identity}\n")
    return KeyPair(path, str(identity), recipient)


def keys_of(*, to: tuple[KeyPair, ...] = (), read_with: tuple[KeyPair, ...] = ()) -> SetKeys:
    """Store keys that encrypt new sets to `to` and read sets with the identity files of `read_with`."""
    recipients = parse_recipients(" ".join(pair.recipient for pair in to), "the test") if to else None
    return SetKeys(recipients, tuple(pair.identity_file for pair in read_with))
