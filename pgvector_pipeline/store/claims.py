"""Claiming a set's timestamp, as every store does it: a given one, or the current second or the next free one."""

import time
from collections.abc import Callable

from pgvector_pipeline.errors import InvalidParams
from pgvector_pipeline.store.layout import new_timestamp

# Claiming a new set tries this many seconds before giving up.
CLAIM_ATTEMPTS = 30


class SetTaken(InvalidParams):
    """The timestamp is taken in that location: another run is writing the set, or it exists."""


def claim_new_timestamp(claim: Callable[[str], None], where: str) -> None:
    """Call `claim` with the current second, then each next one, until it does not raise SetTaken."""
    for _ in range(CLAIM_ATTEMPTS):
        try:
            claim(new_timestamp())
            return
        except SetTaken:
            time.sleep(1.001 - time.time() % 1)  # into the next second
    raise InvalidParams(
        f"No free timestamp in {where} for {CLAIM_ATTEMPTS} s: every second was taken by another backup. Check "
        f"what keeps starting backups there."
    )
