"""Text from outside (run config, resource config, the command line, the client's arguments, manifests), checked for
NUL characters where it becomes a typed record: one check for every kind of input.

A NUL never belongs in this tool's text, and what it does downstream is silent or a Python error: PostgreSQL refuses
it in any text value (psycopg2 raises ValueError), pglast and libpq read C strings (a row filter ends at the NUL, so
the backup keeps rows the whole filter drops), and the OS refuses it in paths and environment names.
"""

import re
from collections.abc import Mapping

from pgvector_pipeline.errors import InvalidParams

NUL = "\x00"
# Keys that are named in messages; others (file content, a user's odd key) are shown as <key>.
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def nul_at(value: object) -> tuple[str | int, ...] | None:
    """Where in `value` (text, or lists, tuples and mappings of them; keys count) the first NUL is: the keys and
    indexes that lead to it (() for `value` itself), or None. Anything else (numbers, functions) holds none."""
    pending: list[tuple[tuple[str | int, ...], object]] = [((), value)]
    while pending:  # a stack, not recursion: a manifest may nest as deep as its JSON does
        path, item = pending.pop()
        if isinstance(item, str):
            if NUL in item:
                return path
        elif isinstance(item, Mapping):
            for key, inner in reversed(list(item.items())):
                if isinstance(key, str) and NUL in key:
                    return path + (key,)
                pending.append((path + (key,), inner))
        elif isinstance(item, (list, tuple)):
            pending.extend((path + (index,), inner) for index, inner in reversed(list(enumerate(item))))
    return None


def shown_path(path: tuple[str | int, ...]) -> str:
    """A path of nul_at for a message, quoting no text: plain keys by name, indexes in brackets, other keys <key>."""
    shown = ""
    for part in path:
        if isinstance(part, int):
            shown += f"[{part}]"
        else:
            shown += ("." if shown else "") + (part if _PLAIN_KEY.fullmatch(part) else "<key>")
    return shown or "its text"


def nul_problem(value: object, what: str) -> str | None:
    """'{what} holds a NUL character (\\x00) in {where}: …' when `value` holds one, else None."""
    path = nul_at(value)
    if path is None:
        return None
    return (
        f"{what} holds a NUL character (\\x00) in {shown_path(path)}: no name, filter, path or setting of this tool "
        f"has one (PostgreSQL refuses it, and C code would read the text as ending there). Remove it."
    )


def refuse_nul(value: object, what: str) -> None:
    """InvalidParams naming where in `value` (`what`: 'The command line', 'The run config', …) a NUL is."""
    problem = nul_problem(value, what)
    if problem:
        raise InvalidParams(problem)
