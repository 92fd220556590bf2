#!/bin/sh
# The last resort: restore a backup set with psql alone, when neither Dagster nor this package can run.
# Needs psql, jq, sha256sum, and zstd or gzip for compressed sets, and read_verified.sh beside it. Reads the DSN from
# $PGVECTOR_DSN.
#
#   deploy/psql_restore.sh SET_DIRECTORY TIMESTAMP            # empty the set's tables and load them, one transaction
#   deploy/psql_restore.sh SET_DIRECTORY TIMESTAMP --create   # into an empty database: extension, tables, indexes
#
# 1. Every file of the set must be a regular file (not a symlink or a FIFO) and is checked against the manifest's
#    sha256 (of the file as stored) before psql starts.
# 2. One transaction, stopped at the first error (nothing changes then): TRUNCATE of the set's tables (or, with
#    --create, CREATE EXTENSION vector and the manifest's CREATE TABLE statements), a \copy per table in the
#    manifest's order (tables before those that reference them), read once and decompressed on the fly by
#    read_verified.sh, which fails the \copy when the bytes it read are not the manifest's (a file changed after
#    step 1), with HEADER MATCH so a file whose columns differ is refused, then (with --create) the manifest's
#    indexes, then COMMIT.
# What it does not do, unlike the tool: check the CSV's row counts while loading, rebuild indexes faster, swap
# tables in without blocking the app, or move serial sequences past the restored ids (SELECT setval(...) yourself
# for tables with serial ids).
set -eu

if [ $# -lt 2 ]; then
    echo "usage: $0 SET_DIRECTORY TIMESTAMP [--create]" >&2
    exit 2
fi
directory=$1
timestamp=$2
create=${3:-}
: "${PGVECTOR_DSN:?set PGVECTOR_DSN to the target database}"
# The reader psql runs for each file (read once, hashed as it loads); its path goes into a shell command.
reader="$(cd "$(dirname "$0")" && pwd)/read_verified.sh"
case $reader in
    *[!A-Za-z0-9_./-]*) echo "Move this script to a path of letters, digits and _ . / - only: $reader" >&2; exit 2 ;;
esac
cd "$directory"
manifest="vector_backup_$timestamp.json"
# Every file of the set is opened as a regular file only (not a symlink, not a FIFO, which would block).
regular() {
    if [ ! -f "$1" ] || [ -L "$1" ]; then
        echo "$directory/$1 is not a regular file (a symlink, a FIFO or missing); refusing." >&2
        exit 1
    fi
}
regular "$manifest"

# The manifest is untrusted: its file names go into a shell command (\copy ... FROM PROGRAM), its table and column
# names into SQL, its DDL to psql. Only what the tool writes is accepted: its file names, names without quotes or
# line breaks, and single CREATE TABLE / CREATE INDEX statements without semicolons or backslashes (a backslash
# would be a psql command).
jq -e '
    [.tables | to_entries[] |
        (.value.file | test("^[A-Za-z0-9_]+_[0-9]{8}_[0-9]{6}[.]csv([.](zst|gz))?$")),
        ([.key, .value.columns[].name][] | test("^[^\"\n\r]+$")),
        (.value.create_table // "CREATE TABLE t" | test("^CREATE TABLE [^;\\\\]*$")),
        ((.value.indexes // [])[] | test("^CREATE (UNIQUE )?INDEX [^;\\\\]*$")),
        (.value.stored_sha256 // .value.sha256 | test("^[0-9a-f]{64}$")),
        ((.value.codec // "none") | IN("zstd", "gzip", "none"))
    ] | all' "$manifest" >/dev/null || {
    echo "$manifest holds a file name, a name or a statement this tool does not write; refusing." >&2
    exit 1
}
for file in $(jq -r '.tables[] | .file' "$manifest"); do
    regular "$file"
done
jq -r '.tables[] | "\(.stored_sha256 // .sha256)  \(.file)"' "$manifest" | sha256sum --check --strict --quiet

{
    echo '\set ON_ERROR_STOP on'
    echo 'BEGIN;'
    if [ "$create" = --create ]; then
        echo 'CREATE EXTENSION IF NOT EXISTS vector;'
        jq -r '.tables[] | .create_table + ";"' "$manifest"
    else
        jq -r '"TRUNCATE " + ([.tables | keys_unsorted[] | "\"" + . + "\""] | join(", ")) + ";"' "$manifest"
    fi
    jq -r '.tables | to_entries[] |
        "\\copy \"\(.key)\" (\(.value.columns | map("\"" + .name + "\"") | join(", "))) FROM PROGRAM '"'"'" +
        "sh " + $reader + " " + .value.file + " " + (.value.stored_sha256 // .value.sha256) + " " + (.value.codec // "none") +
        "'"'"' WITH (FORMAT csv, HEADER MATCH)"' --arg reader "$reader" "$manifest"
    if [ "$create" = --create ]; then
        jq -r '.tables[] | .indexes[] | . + ";"' "$manifest"
    fi
    echo 'COMMIT;'
} | psql -X -q "$PGVECTOR_DSN"
echo "Restored set $timestamp from $directory."
