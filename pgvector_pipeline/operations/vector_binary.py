"""pgvector's binary form of a vector (its send/receive functions), read as vector_recv and halfvec_recv read it, so
that a check of a binary set passes exactly what a restore will load, without parsing any text:

    vector    int16 dimensions, int16 unused (0), then each number as a big-endian float4
    halfvec   int16 dimensions, int16 unused (0), then each number as a big-endian float2
"""

import struct

import numpy as np

from pgvector_pipeline.operations.vector_text import VectorType, vector_problem

_ELEMENT: dict[str, np.dtype] = {"vector": np.dtype(">f4"), "halfvec": np.dtype(">f2")}
_HEAD = struct.Struct(">hh")


def binary_vector_values(field: bytes | memoryview, vector_type: VectorType) -> "np.ndarray | str":
    """The numbers of one binary COPY field of a vector column, or what pgvector's receive function (or its checks of
    the values) would refuse it for."""
    if len(field) < _HEAD.size:
        return "not a vector (a field too short for its dimensions)"
    dimensions, unused = _HEAD.unpack_from(field)
    element = _ELEMENT[vector_type.kind]
    if unused != 0:
        return "not a vector (its unused header field is set)"
    if dimensions < 1:
        return "no dimensions"
    if len(field) != _HEAD.size + dimensions * element.itemsize:
        return f"not a vector ({dimensions} dimensions in a field of {len(field)} bytes)"
    values = np.frombuffer(field, element, dimensions, _HEAD.size).astype(np.float32)
    return vector_problem(values, vector_type) or values
