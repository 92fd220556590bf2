"""Sets written by the replaced system: every awkward value survives the JSON-repairing stream, and
empty fields load by the documented rule ('' for documents and NOT NULL text columns, NULL elsewhere)."""

import csv
import io
import json

import pytest

from pgvector_pipeline.contract import RestoreFlags
from pgvector_pipeline.errors import DataError
from pgvector_pipeline.names import (
    COLLECTION_TABLE,
    EMBEDDING_TABLE,
    LANGCHAIN_COMMUNITY,
    LANGCHAIN_POSTGRES,
)
from pgvector_pipeline.operations.restore import restore_backup_set
from pgvector_pipeline.store.legacy import JsonRepairingCsvStream
from pgvector_pipeline.store.local import locate_backup_set
from pgvector_pipeline.testing.db import execute, query
from pgvector_pipeline.testing.langchain_tables import create_langchain_tables
from tests.legacy_format import write_legacy_set

TS = "20250301_120000"
AWKWARD = ["\r", "\n", "\r\n", "x\r\ny\rz\n", 'say "hi"', "a,b", "\\.", "\\N", "\\.\r\n", "", " lead", "東京 🧭", "\t"]


def read_all(stream: JsonRepairingCsvStream, size: int) -> bytes:
    chunks = []
    while chunk := stream.read(size):
        chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize("read_size", [1, 7, 1 << 20, -1])
def test_repairing_stream_keeps_every_field_and_quotes_cr_and_lf(read_size):
    source = io.StringIO()
    writer = csv.writer(source)  # the old system's writer: default dialect, CRLF line ends
    writer.writerow(["id", "document", "cmetadata"])
    for i, value in enumerate(AWKWARD):
        writer.writerow([f"id{i}", value, repr({"v": value, "ok": True, "n": None})])
    stream = JsonRepairingCsvStream(io.BytesIO(source.getvalue().encode("utf-8")))

    out = read_all(stream, read_size) if read_size > 0 else stream.read(-1)

    rows = list(csv.reader(io.StringIO(out.decode("utf-8"), newline="")))
    assert rows[0] == ["id", "document", "cmetadata"]
    assert [row[1] for row in rows[1:]] == AWKWARD
    assert [json.loads(row[2]) for row in rows[1:]] == [{"v": v, "ok": True, "n": None} for v in AWKWARD]
    assert b'id0,"\r",' in out  # a lone CR is quoted, or PostgreSQL refuses the line
    assert b",\\.," in out or b'"\\."' in out


def test_repairing_stream_refuses_what_is_neither_json_nor_a_literal():
    data = b"id,cmetadata\r\na,\"{'k': __import__('os')}\"\r\n"
    stream = JsonRepairingCsvStream(io.BytesIO(data))
    with pytest.raises(Exception, match="neither JSON nor a Python literal"):
        stream.read(-1)


def fill_awkward(cur, layout: str) -> None:
    create_langchain_tables(cur, "public", layout)
    for name in ["plain", *AWKWARD[:4]]:
        cur.execute(
            "INSERT INTO langchain_pg_collection (uuid, name, cmetadata) VALUES (gen_random_uuid(), %s, %s)",
            (name, json.dumps({"name": name})),
        )
    for i, value in enumerate(AWKWARD):
        metadata = json.dumps({"v": value, "list": [1, 2.5, value], "none": None})
        if layout == LANGCHAIN_POSTGRES:
            cur.execute(
                "INSERT INTO langchain_pg_embedding (id, collection_id, embedding, document, cmetadata) "
                "SELECT %s, uuid, '[1,2,3]', %s, %s FROM langchain_pg_collection WHERE name = 'plain'",
                (f"id-{i}-{value}", value, metadata),
            )
        else:
            cur.execute(
                "INSERT INTO langchain_pg_embedding (collection_id, embedding, document, cmetadata, custom_id, uuid) "
                "SELECT uuid, '[1,2,3]', %s, %s, %s, gen_random_uuid() FROM langchain_pg_collection WHERE name = 'plain'",
                (value, metadata, value),
            )


def rows_as_json(dsn: str, table: str) -> list[dict]:
    return sorted((row[0] for row in query(dsn, f"SELECT to_jsonb(t) FROM {table} t")), key=json.dumps)


@pytest.mark.parametrize("layout", [LANGCHAIN_POSTGRES, LANGCHAIN_COMMUNITY])
def test_awkward_values_in_every_text_column_of_a_legacy_set_restore(empty_db, backup_root, layout):
    execute(empty_db, lambda cur: fill_awkward(cur, layout))
    original = {table: rows_as_json(empty_db, table) for table in (COLLECTION_TABLE, EMBEDDING_TABLE)}
    write_legacy_set(empty_db, backup_root / "task_old" / "vector_bak", TS)
    legacy = locate_backup_set(backup_root, task_id="task_old", timestamp=TS)

    restore_backup_set(empty_db, "public", legacy, RestoreFlags(truncate_before_restore=True, allow_legacy=True))

    # The documented rule for empty fields: nullable text columns other than document read them as NULL.
    nullable_text = {"custom_id"} | ({"name"} if layout == LANGCHAIN_COMMUNITY else set())
    expected = {
        table: sorted(
            ({k: (None if k in nullable_text and v == "" else v) for k, v in row.items()} for row in rows),
            key=json.dumps,
        )
        for table, rows in original.items()
    }
    assert {table: rows_as_json(empty_db, table) for table in expected} == expected


def test_a_legacy_set_with_empty_documents_restores_no_null_document(store_db, backup_root):
    def fill(cur):
        cur.execute("INSERT INTO langchain_pg_collection VALUES (gen_random_uuid(), 'c', '{}')")
        cur.execute(
            "INSERT INTO langchain_pg_embedding (id, collection_id, document) "
            "SELECT 'e' || i, uuid, CASE WHEN i % 3 = 0 THEN '' ELSE 'text ' || i END "
            "FROM langchain_pg_collection, generate_series(1, 9) i"
        )

    execute(store_db, fill)
    write_legacy_set(store_db, backup_root / "vector_bak", TS)
    restore_backup_set(
        store_db,
        "public",
        locate_backup_set(backup_root, timestamp=TS),
        RestoreFlags(truncate_before_restore=True, allow_legacy=True),
    )
    assert query(
        store_db,
        "SELECT count(*) FILTER (WHERE document IS NULL), count(*) FILTER (WHERE document = '') FROM langchain_pg_embedding",
    ) == [(0, 3)]


def legacy_set_with(store_db, backup_root, document: str, metadata_repr: str):
    """A legacy set of one embedding whose cmetadata field holds `metadata_repr` as the old writer wrote it."""
    execute(
        store_db,
        lambda cur: cur.execute(
            "INSERT INTO langchain_pg_collection VALUES (gen_random_uuid(), 'c', '{}');"
            "INSERT INTO langchain_pg_embedding (id, collection_id, document) "
            "SELECT 'e1', uuid, %s FROM langchain_pg_collection",
            (document,),
        ),
    )
    [_, embedding_csv] = write_legacy_set(store_db, backup_root / "vector_bak", TS)
    header, row = embedding_csv.read_text(encoding="utf-8").splitlines(keepends=True)[:2]
    fields = next(csv.reader([row]))
    fields[header.strip().split(",").index("cmetadata")] = metadata_repr
    out = io.StringIO()
    csv.writer(out).writerow(fields)
    embedding_csv.write_text(header + out.getvalue(), encoding="utf-8")
    return locate_backup_set(backup_root, timestamp=TS)


@pytest.mark.parametrize(
    "metadata_repr, cause",
    [("{[1]: 2}", "TypeError"), ("{1, 2}", "TypeError"), ("[" * 5000 + "]" * 5000, "")],
)
def test_bad_legacy_metadata_is_a_data_error_naming_file_and_line(metadata_repr, cause, store_db, backup_root):
    legacy = legacy_set_with(store_db, backup_root, "doc", metadata_repr)

    with pytest.raises(DataError) as failure:
        restore_backup_set(store_db, "public", legacy, RestoreFlags(truncate_before_restore=True, allow_legacy=True))

    assert f"langchain_pg_embedding_{TS}.csv, CSV line 2: column cmetadata" in failure.value.message
    assert f"({cause};" in failure.value.message if cause else "Error;" in failure.value.message
    assert metadata_repr[:6] not in failure.value.message  # file content is not quoted
    assert query(store_db, "SELECT count(*) FROM langchain_pg_embedding") == [(1,)]


def test_legacy_fields_over_128_kib_restore_and_adopt(store_db, backup_root):

    document = "long document " * 20_000  # 280 KB, above csv's default field limit of 128 KiB
    legacy = legacy_set_with(store_db, backup_root, document, repr({"size": len(document), "text": document}))

    restore_backup_set(store_db, "public", legacy, RestoreFlags(truncate_before_restore=True, allow_legacy=True))
    assert query(store_db, "SELECT document, cmetadata->>'size' FROM langchain_pg_embedding") == [
        (document, str(len(document)))
    ]
    assert legacy.store.adopt(legacy).tables[EMBEDDING_TABLE].rows == 1
