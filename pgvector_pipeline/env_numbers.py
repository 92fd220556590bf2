"""Numbers a deployment sets in environment variables, read when they are used: one reading and one refusal for all
of them. A value that is not what the variable takes is refused naming the variable, never taken as something else
(nor left to fail later as Python's own ValueError)."""

import os
from collections.abc import Callable
from typing import TypeVar

from pgvector_pipeline.errors import InvalidParams

Number = TypeVar("Number", int, float)


def whole_number(raw: str) -> int:
    """ASCII digits only: int() would also take '+5', ' 5', '1_0' and other scripts' digits."""
    if not (raw.isascii() and raw.isdigit()):
        raise ValueError(raw)
    return int(raw)


def number_from_env(
    name: str, default: Number, convert: Callable[[str], Number], accept: Callable[[Number], bool], described: str
) -> Number:
    """$`name` read by `convert` (`default` when unset or empty); InvalidParams '{name} {described}, not …' when it
    does not convert or `accept` refuses it."""
    raw = os.environ.get(name) or ""
    if not raw:
        return default
    try:
        value = convert(raw)
    except ValueError:
        raise InvalidParams(f"{name} {described}, not {raw!r:.40}.") from None
    if not accept(value):
        raise InvalidParams(f"{name} {described}, not {raw!r:.40}.")
    return value
