#!/bin/sh
# psql_restore.sh's reader: FILE's bytes, decompressed by CODEC (zstd, gzip or none), on stdout, with FILE read once
# and hashed as it passes. Exits 1 when the bytes read do not have the sha256 EXPECTED, so that psql's
# \copy ... FROM PROGRAM fails and the restore's transaction with it: the checksum covers the very bytes that were
# loaded, even if FILE was changed after psql_restore.sh checked it.
#
#   deploy/read_verified.sh FILE EXPECTED_SHA256 CODEC
#
# A FILE ending in .age (an encrypted set) is decrypted first, with "$PGVECTOR_RESTORE_AGE" (age or rage) -d -i
# "$PGVECTOR_RESTORE_IDENTITY", which psql_restore.sh --identity sets.
set -eu
file=$1
expected=$2
codec=$3
# Regular files only: a symlink could point at any file this user can read, and reading a FIFO blocks forever.
if [ ! -f "$file" ] || [ -L "$file" ]; then
    echo "$file is not a regular file (a symlink, a FIFO or missing); refusing." >&2
    exit 1
fi
case $codec in
    zstd) decompress="zstd -dc" ;;
    gzip) decompress="gzip -dc" ;;
    none) decompress=cat ;;
    *) echo "unknown codec $codec" >&2; exit 1 ;;
esac
work=$(mktemp -d)
trap 'exec 3>&-; rm -rf "$work"' EXIT
mkfifo "$work/bytes"
sha256sum <"$work/bytes" >"$work/sum" &
hasher=$!
exec 3>"$work/bytes"  # returns once the hasher has opened its end
case $file in
    *.age)  # an encrypted set's file (psql_restore.sh --identity): decrypted before it is decompressed
        tee /dev/fd/3 <"$file" | { "$PGVECTOR_RESTORE_AGE" -d -i "$PGVECTOR_RESTORE_IDENTITY" || touch "$work/failed"; } |
            $decompress ;;
    *) tee /dev/fd/3 <"$file" | $decompress ;;
esac
exec 3>&-
wait "$hasher"
if [ -e "$work/failed" ]; then
    echo "$file cannot be decrypted with $PGVECTOR_RESTORE_IDENTITY; refusing." >&2
    exit 1
fi
actual=$(cut -c1-64 "$work/sum")
if [ "$actual" != "$expected" ]; then
    echo "$file changed since it was checked: its sha256 is now $actual, the manifest says $expected; refusing." >&2
    exit 1
fi
