"""pgvector's text form of a vector, read as its input functions (vector_in, halfvec_in) read it, so that a check of
a set's files passes exactly what a restore will load (tests/test_vector_text.py asks the server, text by text).
Plain numpy, nothing else of this package: parse workers (pgvector_pipeline.operations.parse_workers) import this module alone."""

import warnings
from dataclasses import dataclass

import numpy as np

from pgvector_pipeline.names import VECTOR_TYPE_PATTERN

# What pgvector's input functions take: at most 16,000 dimensions (VECTOR_MAX_DIM, HALFVEC_MAX_DIM), each number as
# strtof reads it then stored in the type's width, around it only C's whitespace.
_MAX_DIMENSIONS = 16_000
_STORED_AS = {"vector": np.float32, "halfvec": np.float16}
_SPACE = " \t\n\r\v\f"


@dataclass(frozen=True)
class VectorType:
    """A column type whose text the checks parse: vector or halfvec, with its declared dimension if any (sparsevec
    text is another format: its files are checked, not parsed)."""

    kind: str
    dimensions: int | None

    @classmethod
    def of(cls, column_type: str) -> "VectorType | None":
        match = VECTOR_TYPE_PATTERN.fullmatch(column_type)
        if match is None or match["kind"] not in _STORED_AS:
            return None
        return cls(match["kind"], int(match["dimensions"]) if match["dimensions"] else None)


def vector_values(text: str, vector_type: VectorType) -> "np.ndarray | str":
    """The numbers of a vector's text ('[1,2.5,3]') as pgvector's input function reads them into `vector_type`, or
    what it would refuse them for."""
    values = parsed_vector(text)
    if isinstance(values, str):
        return values
    return vector_problem(values, vector_type) or values


def parsed_vector(text: str) -> "np.ndarray | str":
    """The numbers of a vector's text, or why it is not a vector's text at all."""
    body = text.strip(_SPACE)
    if len(body) < 2 or body[0] != "[" or body[-1] != "]":
        return f"not a vector ({text[:40]!r})"
    inner = body[1:-1]
    if not inner.strip(_SPACE):
        return "no dimensions"
    values = _numbers(inner)
    return f"not a vector ({text[:40]!r})" if values is None else values


def vector_problem(values: "np.ndarray", vector_type: VectorType) -> str | None:
    """What pgvector would refuse a vector of these numbers for, in its own order of checks; None: nothing."""
    if len(values) > _MAX_DIMENSIONS:
        return f"{len(values):,} dimensions, more than pgvector's {_MAX_DIMENSIONS:,}"
    if not np.isfinite(values).all():
        return "NaN or infinity"
    with np.errstate(over="ignore"):
        stored = values.astype(np.float32).astype(_STORED_AS[vector_type.kind])
    if not np.isfinite(stored).all():
        return f"a number out of range for type {vector_type.kind}"
    if vector_type.dimensions is not None and len(values) != vector_type.dimensions:
        return f"{len(values)} dimensions where the column holds {vector_type.dimensions}"
    return None


def _numbers(inner: str) -> "np.ndarray | None":
    """The comma-separated numbers of `inner`, parsed in C; the slow, exact reading where numpy stops early (hex
    numbers, which strtof takes) or the text is wrong (None)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # numpy's "could not be read to its end": handled below
        try:
            values = np.fromstring(inner, dtype=np.float64, sep=",")
        except ValueError:
            values = None
    if values is not None and len(values) == inner.count(",") + 1:
        return values
    try:
        return np.array([_strtof_number(token) for token in inner.split(",")], dtype=np.float64)
    except ValueError:
        return None


def _strtof_number(token: str) -> float:
    """One number as C's strtof reads a whole token: ASCII only, no digit separators, hex allowed; else ValueError."""
    number = token.strip(_SPACE)
    if not number.isascii() or "_" in number or not number:
        raise ValueError(token)
    if number.lstrip("+-")[:2].lower() == "0x":
        return float.fromhex(number)
    return float(number)


# One text's dimensions (0 when it is no vector at all) and what pgvector would refuse it for (None: nothing).
Parsed = tuple[int, str | None]


def read_vectors(texts: list[str], vector_type: VectorType) -> list[Parsed]:
    """What each text is (see Parsed), in order: one batch of a parse worker."""
    found: list[Parsed] = []
    for text in texts:
        values = parsed_vector(text)
        if isinstance(values, str):
            found.append((0, values))
        else:
            found.append((len(values), vector_problem(values, vector_type)))
    return found
