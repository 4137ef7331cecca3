#!/usr/bin/env bash
# Back up one Scribe site: the database (pg_dump, custom format) and the media store (recordings).
#
#   deploy/backup.sh DEST_DIR [--env FILE] [--app DIR] [--venv DIR]
#
# Writes DEST_DIR/scribe-backup-<UTC time>/ holding
#   database.dump   pg_dump --format=custom (compressed; pg_restore reads it)
#   media.tar.gz    every file under SCRIBE_MEDIA_ROOT
#   MANIFEST        when, from which host and version, the latest migration, row and file counts
#   SHA256SUMS      checksums of the three above; deploy/restore.sh refuses a backup that fails them
#
# The database is dumped first, as one consistent snapshot, then the media. A recording saved in between
# is in the tarball without a row (harmless); for a backup that matches exactly, stop the services first.
# Copy the folder off the host afterwards: a backup on the same disk is no backup.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/site-settings.sh"
DEST="${1:-}"
[ -n "$DEST" ] && [ "${DEST:0:2}" != "--" ] || { sed -n '2,14p' "$0"; exit 2; }
shift
parse_site_options "$@"
load_site_settings

STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="$DEST/scribe-backup-$STAMP"
mkdir -p "$OUT"
chmod 0700 "$OUT"  # transcripts and recordings: readable by the operator only
trap 'echo "backup: failed; removing the incomplete $OUT" >&2; rm -rf "$OUT"' ERR

say "Dumping database $DB_NAME"
pg_dump --format=custom --no-owner --no-privileges --file "$OUT/database.dump" "${PG_ARGS[@]}" "$DB_NAME"

say "Archiving media from $MEDIA_ROOT"
mkdir -p "$MEDIA_ROOT"
tar -C "$MEDIA_ROOT" -czf "$OUT/media.tar.gz" .

say "Writing MANIFEST and SHA256SUMS"
{
  echo "created=$STAMP"
  echo "host=$(hostname)"
  echo "scribe_revision=$(git -C "$APP" describe --always --dirty 2>/dev/null || cat "$APP/REVISION" 2>/dev/null || echo unknown)"
  echo "database=$DB_NAME"
  echo "postgres=$(pg_dump --version | awk '{print $NF}')"
  site_counts
  echo "media_files=$(find "$MEDIA_ROOT" -type f | wc -l)"
  echo "media_bytes=$(du -sb "$MEDIA_ROOT" | cut -f1)"
} > "$OUT/MANIFEST"
(cd "$OUT" && sha256sum database.dump media.tar.gz MANIFEST > SHA256SUMS)
trap - ERR
say "Backup written: $OUT ($(du -sh "$OUT" | cut -f1))"
echo "$OUT"
