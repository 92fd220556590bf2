#!/bin/sh
# The last resort: restore a backup set with psql alone, when neither Dagster nor this package can run.
# Needs psql, jq, sha256sum, and zstd or gzip for compressed sets, and read_verified.sh and psql_restore.jq beside it.
# Reads the DSN from $PGVECTOR_DSN.
#
#   deploy/psql_restore.sh SET_DIRECTORY TIMESTAMP            # empty the set's tables and load them, one transaction
#   deploy/psql_restore.sh SET_DIRECTORY TIMESTAMP --create   # into an empty database: extension, tables, indexes
#   deploy/psql_restore.sh SET_DIRECTORY TIMESTAMP --identity KEY.txt   # an encrypted set, CSV or binary (see "Encrypted sets")
#
# 1. The DSN is read as libpq reads it (a postgresql:// URI, keyword=value settings or a database name) and handed
#    to psql as PG* variables (PGHOST, PGPASSWORD, ...): never on a command line, which every local user can read in
#    /proc/PID/cmdline. A setting libpq reads from no variable (keepalives, sslpassword, ...) is refused: put it in a
#    connection service file and name the service in the DSN (service=NAME).
# 2. The manifest is read once (what is checked is what is used) and must hold only the file names, names,
#    checksums, codecs and set formats the tool writes. Every file of the set must be a regular file (not a symlink or
#    a FIFO) and is checked against the manifest's sha256 (of the file as stored) before psql starts.
# 3. A binary set (set_format binary: {table}_{ts}.pgcopy[.zst|.gz], PostgreSQL's binary COPY streams) loads only into
#    columns of the types it records: without --create, a first psql session (which only reads) prints the target
#    tables' column types, and jq compares them with the manifest's. A column of another type (json for jsonb, text for
#    varchar) is refused, naming it and both types, before anything changes: the tool casts through a staging table
#    (pgvector-pipeline --direct restore). A type modifier may differ (vector(1536) for vector): the server checks each
#    value against the target's as it loads. With --create the tables are built of the set's types.
# 4. One transaction, stopped at the first error (nothing changes then): TRUNCATE of the set's tables (or, with
#    --create, CREATE EXTENSION vector and the set's tables), a \copy per table in the manifest's order (tables
#    before those that reference them), read once and decompressed on the fly by read_verified.sh, which fails the
#    \copy when the bytes it read are not the manifest's (a file changed after step 2), with HEADER MATCH so a CSV
#    whose columns differ is refused (a binary stream's fields load into the manifest's columns, in order: FORMAT
#    binary), then (with --create) the set's indexes, then COMMIT.
# --create runs no SQL text of the manifest: psql_restore.jq builds each CREATE TABLE from the manifest's column
# names and types (a list of types; names plain identifiers, double-quoted) and the primary, unique and foreign keys
# of its CREATE TABLE, and each CREATE INDEX from plain columns, operator classes and plain options. A table with
# anything else (a default other than its own sequence, a generated column, a CHECK, an expression index, another
# type) is refused before psql starts: create the tables yourself and run without --create, or use the tool.
# What it does not do, unlike the tool: check the CSV's row counts while loading, rebuild indexes faster, swap
# tables in without blocking the app, or move serial sequences past the restored ids (SELECT setval(...) yourself
# for tables with serial ids).
set -eu

usage() {
    echo "usage: $0 SET_DIRECTORY TIMESTAMP [--create] [--identity FILE]" >&2
    exit 2
}
[ $# -ge 2 ] || usage
directory=$1
timestamp=$2
shift 2
create=false
identity=""
while [ $# -gt 0 ]; do
    case $1 in
        --create) create=true; shift ;;
        --identity) [ $# -ge 2 ] || usage; identity=$2; shift 2 ;;
        *) usage ;;  # a mistyped --create must not empty the tables instead
    esac
done
case $timestamp in
    "" | *[!0-9_]*) echo "$timestamp is not a set's timestamp (YYYYMMDD_HHMMSS)." >&2; exit 2 ;;
esac
: "${PGVECTOR_DSN:?set PGVECTOR_DSN to the target database}"
here="$(cd "$(dirname "$0")" && pwd)"
# The reader psql runs for each file (read once, hashed as it loads); its path goes into a shell command.
reader="$here/read_verified.sh"
case $reader in
    *[!A-Za-z0-9_./-]*) echo "Move this script to a path of letters, digits and _ . / - only: $reader" >&2; exit 2 ;;
esac
module() {  # jq with psql_restore.jq's definitions
    jq -L "$here" "$@"
}

# The connection settings, as shell commands that export PG* variables (values quoted): read now, so that a DSN it
# cannot pass is refused before anything else, and exported in psql's process alone. The DSN is not passed on.
settings=$(module -n -r 'include "psql_restore"; connection_exports') || exit 1
unset PGVECTOR_DSN

# --- Encrypted sets (--identity FILE) --------------------------------------------------------------------------------
# Their files end in .age and vector_backup_TS.json is a clear index; the manifest is vector_backup_TS.json.age. It is
# read once into a private directory, checked against the index's sha256 and decrypted with `age` or `rage` (whichever
# is installed), and read_verified.sh decrypts each file as it loads (PGVECTOR_RESTORE_AGE, PGVECTOR_RESTORE_IDENTITY).
# An identity file anyone but its owner may read is refused, as ssh refuses such a key.
opened_manifest() {  # $1: the index -> the manifest, decrypted
    PGVECTOR_RESTORE_AGE=$(command -v age || command -v rage) || {
        echo "Set $timestamp is age-encrypted: install age or rage (https://age-encryption.org) to decrypt it." >&2
        return 1
    }
    case $(ls -ld -- "$identity") in
        -???------*) ;;
        *) echo "The identity file $identity is open to others (a private key must be its owner's alone): run chmod 600 $identity." >&2; return 1 ;;
    esac
    sum=$(printf '%s\n' "$1" | jq -r 'select(.kind == "sealed") | .manifest.stored_sha256 | select(test("\\A[0-9a-f]{64}\\z"))')
    [ -n "$sum" ] || { echo "vector_backup_$timestamp.json is not an encrypted set's index; refusing." >&2; return 1; }
    sealed="vector_backup_$timestamp.json.age"
    regular "$sealed"
    private=$(mktemp -d)
    head -c 4259840 -- "$sealed" >"$private/sealed"
    if [ "$(sha256sum <"$private/sealed" | cut -c1-64)" != "$sum" ]; then
        rm -rf "$private"
        echo "$sealed does not match the set's index; refusing." >&2
        return 1
    fi
    "$PGVECTOR_RESTORE_AGE" -d -i "$identity" "$private/sealed" || {
        rm -rf "$private"
        echo "$sealed cannot be decrypted with $identity (another recipient's set, or a changed file)." >&2
        return 1
    }
    rm -rf "$private"
}

if [ -n "$identity" ]; then  # as an absolute path: it is read after the cd below, and by read_verified.sh
    identity=$(cd "$(dirname -- "$identity")" && pwd)/$(basename -- "$identity") || exit 1
fi
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
# Read once: a manifest changed after it was checked is not read again. At most the tool's 4 MiB
# (pgvector_pipeline.store.manifest.MAX_MANIFEST_BYTES): a larger one is not a manifest.
document=$(head -c 4194305 -- "$manifest")
if [ ${#document} -gt 4194304 ]; then
    echo "$manifest is larger than 4194304 bytes: it is not a manifest this tool wrote; refusing." >&2
    exit 1
fi
if [ -n "$identity" ]; then
    document=$(opened_manifest "$document") || exit 1
elif printf '%s\n' "$document" | jq -e '.kind == "sealed"' >/dev/null 2>&1; then
    echo "Set $timestamp is age-encrypted: give the identity file of one of its recipients with --identity FILE." >&2
    exit 1
fi
checked() {
    printf '%s\n' "$document" | module "$@"
}
checked -e --arg timestamp "$timestamp" 'include "psql_restore"; acceptable($timestamp)' >/dev/null || {
    echo "$manifest holds a file name, a name or a statement this tool does not write; refusing." >&2
    exit 1
}
# Built whole before any file is read or psql starts: a table --create cannot rebuild is refused here.
script=$(checked -r --argjson create "$create" --arg reader "$reader" \
    'include "psql_restore"; restore_script($create; $reader)') || exit 1
for file in $(checked -r '.tables[] | .file'); do
    regular "$file"
done
checked -r '.tables[] | "\(.stored_sha256 // .sha256)  \(.file)"' | sha256sum --check --strict --quiet

# A binary set's types against the target's, compared here (no type of the manifest reaches psql).
if [ "$(checked -r 'include "psql_restore"; binary')" = true ] && [ "$create" = false ]; then
    target=$(checked -r 'include "psql_restore"; target_types_script' | (eval "$settings" && exec psql -X -q -A -t)) \
        || exit 1
    checked --argjson target "$target" 'include "psql_restore"; same_types($target)' >/dev/null || exit 1
fi

if [ -n "$identity" ]; then
    # For read_verified.sh, which psql runs per file: the binary found above and the identity, as an absolute path.
    PGVECTOR_RESTORE_AGE=$(command -v age || command -v rage)
    PGVECTOR_RESTORE_IDENTITY=$identity
    export PGVECTOR_RESTORE_AGE PGVECTOR_RESTORE_IDENTITY
fi

printf '%s\n' "$script" | (eval "$settings" && exec psql -X -q)
echo "Restored set $timestamp from $directory."
