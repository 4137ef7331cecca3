#!/usr/bin/env bash
# Restore a backup made by deploy/backup.sh into an EMPTY database and an empty media folder.
#
#   deploy/restore.sh BACKUP_DIR [--env FILE] [--app DIR] [--venv DIR]
#
# It refuses, changing nothing, when a checksum in SHA256SUMS fails, the dump or tarball cannot be read,
# the database already holds tables, or the media folder holds files. To replace a site's data: stop the
# services, drop and re-create the database (createdb -O scribe scribe), empty the media folder, then run
# this. Afterwards it applies migrations, so a backup from an older version comes up to date.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/site-settings.sh"
BACKUP="${1:-}"
[ -n "$BACKUP" ] && [ "${BACKUP:0:2}" != "--" ] || { sed -n '2,9p' "$0"; exit 2; }
shift
parse_site_options "$@"
[ -d "$BACKUP" ] || die "$BACKUP is not a folder"
BACKUP="$(cd "$BACKUP" && pwd)"

say "Checking the backup in $BACKUP"
for file in SHA256SUMS MANIFEST database.dump media.tar.gz; do
  [ -f "$BACKUP/$file" ] || die "the backup has no $file; nothing was restored"
done
(cd "$BACKUP" && sha256sum --check --quiet --strict SHA256SUMS) \
  || die "the backup does not match its SHA256SUMS (damaged or altered); nothing was restored"
pg_restore --list "$BACKUP/database.dump" >/dev/null 2>&1 || die "database.dump cannot be read by pg_restore; nothing was restored"
tar -tzf "$BACKUP/media.tar.gz" >/dev/null 2>&1 || die "media.tar.gz cannot be read; nothing was restored"

load_site_settings
tables="$(psql "${PG_ARGS[@]}" -d "$DB_NAME" -qtAX -c "select count(*) from pg_tables where schemaname = 'public'")" \
  || die "cannot connect to database $DB_NAME; create it first (createdb -O $DB_USER $DB_NAME)"
[ "$tables" = 0 ] || die "database $DB_NAME already holds $tables tables; restore only into an empty database"
if [ -d "$MEDIA_ROOT" ] && [ -n "$(find "$MEDIA_ROOT" -mindepth 1 -print -quit)" ]; then
  die "$MEDIA_ROOT is not empty; restore only into an empty media folder"
fi

say "Restoring database $DB_NAME"
# One transaction: a failure leaves the database empty, not half restored.
pg_restore --no-owner --no-privileges --single-transaction --exit-on-error "${PG_ARGS[@]}" -d "$DB_NAME" "$BACKUP/database.dump"

say "Restoring media into $MEDIA_ROOT"
mkdir -p "$MEDIA_ROOT"
chmod 0750 "$MEDIA_ROOT"
tar -C "$MEDIA_ROOT" -xzf "$BACKUP/media.tar.gz" --no-same-owner

say "Applying migrations newer than the backup"
(cd "$APP" && "$PY" manage.py migrate --noinput -v0)

say "Comparing with the MANIFEST"
expected="$(grep -E '^(rows_|media_files=)' "$BACKUP/MANIFEST" | grep -v rows_django_migrations || true)"
actual="$( (site_counts; echo "media_files=$(find "$MEDIA_ROOT" -type f | wc -l)") | grep -v rows_django_migrations)"
if [ "$expected" != "$actual" ]; then
  diff <(echo "$expected") <(echo "$actual") >&2 || true
  die "restored counts differ from the MANIFEST (above: < backup, > restored)"
fi
say "Restored $(grep '^created=' "$BACKUP/MANIFEST" | cut -d= -f2) into $DB_NAME and $MEDIA_ROOT"
