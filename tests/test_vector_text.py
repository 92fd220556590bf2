"""The embeddings check reads a vector's text as pgvector's input functions do (issue 24's proof that a set
restores): every text the check passes, PostgreSQL accepts, and every text PostgreSQL refuses, the check names.
Asked of the real server, case by case, for vector and halfvec, with and without a declared dimension."""

import psycopg2
import pytest

from pgvector_pipeline.operations.vector_text import VectorType, vector_values

CASES = [
    "[1,2,3]",
    "[ 1, 2 ]",
    "[1 ,2]",
    " [1]",
    "[1] ",
    "\t[1]\n",
    "[+1]",
    "[1.]",
    "[.5]",
    "[1e5]",
    "[-0]",
    "[0x10]",
    "[1e-50]",
    "[3.4028235e38]",
    "[3.40282356e38]",
    "[1e39]",
    "[-1e39]",
    "[65504]",
    "[65519]",
    "[65520]",
    "[1e-8]",
    "[]",
    "[ ]",
    "[1,2,]",
    "[,1]",
    "[1,,2]",
    "[1_0]",
    "[1;2]",
    "[１]",
    "[1 2]",
    "[1e]",
    "[inf]",
    "[-Infinity]",
    "[nan]",
    "[1,NaN,3]",
    "1,2",
    "[1,2",
    "{1,2}",
    "[[1]]",
    "[" + ",".join(["1"] * 16_000) + "]",
    "[" + ",".join(["1"] * 16_001) + "]",
]


def accepted(cur, text: str, column_type: str) -> bool:
    cur.execute("SAVEPOINT s")
    try:
        cur.execute(f"SELECT %s::{column_type}", (text,))
        return True
    except psycopg2.Error:
        cur.execute("ROLLBACK TO SAVEPOINT s")
        return False


@pytest.mark.parametrize("column_type", ["vector", "halfvec", "vector(3)", "halfvec(1)"])
def test_the_check_passes_exactly_what_pgvector_accepts(empty_db, column_type):
    conn = psycopg2.connect(empty_db)
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE EXTENSION IF NOT EXISTS vector")
            vector_type = VectorType.of(column_type)
            assert vector_type is not None
            disagreements = [
                (text[:40], "pgvector accepts" if pg else "pgvector refuses", found)
                for text in CASES
                if (pg := accepted(cur, text, column_type))
                != (not isinstance(found := vector_values(text, vector_type), str))
            ]
    finally:
        conn.close()

    assert disagreements == []


def test_what_the_check_says_of_a_refused_vector():
    vector = VectorType.of("vector(3)")
    assert vector_values("[1,2]", vector) == "2 dimensions where the column holds 3"
    assert vector_values("[1e39,1,1]", vector) == "a number out of range for type vector"
    assert vector_values("[70000]", VectorType.of("halfvec")) == "a number out of range for type halfvec"
    assert vector_values("[1,NaN,3]", vector) == "NaN or infinity"
    assert vector_values("[]", vector) == "no dimensions"
    assert vector_values("[1,,2]", vector) == "not a vector ('[1,,2]')"
    assert vector_values("[" + ",".join(["1"] * 16_001) + "]", VectorType.of("vector")) == (
        "16,001 dimensions, more than pgvector's 16,000"
    )
    assert list(vector_values("[0x10, 2.5e0]", VectorType.of("vector"))) == [16.0, 2.5]
