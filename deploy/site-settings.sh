# Shared by deploy/backup.sh and deploy/restore.sh: read the site's database and media settings from
# Django itself, so the scripts and the services can never disagree about where the data lives.

APP=/opt/scribe/app
VENV=/opt/scribe/venv
ENV_FILE=/etc/scribe/scribe.env

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf '%s: %s\n' "$(basename "$0" .sh)" "$*" >&2; exit 1; }

parse_site_options() {
  while [ $# -gt 0 ]; do
    case "$1" in
      --env) ENV_FILE="$2"; shift 2 ;;
      --app) APP="$2"; shift 2 ;;
      --venv) VENV="$2"; shift 2 ;;
      *) die "unknown option: $1" ;;
    esac
  done
}

load_site_settings() {
  # Sets DB_NAME, MEDIA_ROOT and PG_ARGS (connection options for psql, pg_dump and pg_restore).
  source "$(dirname "${BASH_SOURCE[0]}")/env-file.sh"
  load_env_file "$ENV_FILE"
  export DJANGO_SETTINGS_MODULE="${DJANGO_SETTINGS_MODULE:-config.settings}"
  PY="$VENV/bin/python"
  [ -x "$PY" ] || die "no Python environment at $VENV (use --venv)"
  local values
  values="$(cd "$APP" && "$PY" -c '
from django.conf import settings
db = settings.DATABASES["default"]
for value in (db["NAME"], db["USER"], db["HOST"], db["PORT"], settings.MEDIA_ROOT, db["PASSWORD"]):
    print(value)
')" || die "could not read the site settings from $APP with $ENV_FILE"
  { read -r DB_NAME; read -r DB_USER; read -r DB_HOST; read -r DB_PORT; read -r MEDIA_ROOT; read -r DB_PASSWORD || true; } <<< "$values"
  PG_ARGS=(--host "$DB_HOST" --port "$DB_PORT" --username "$DB_USER")
  [ -n "${DB_PASSWORD:-}" ] && export PGPASSWORD="$DB_PASSWORD"
  export DB_NAME MEDIA_ROOT
}

site_counts() {
  # Rows a restore must bring back, as key=value lines (an empty database gives zeros).
  local table
  for table in auth_user meetings_meeting meetings_segment meetings_recording django_migrations; do
    echo "rows_$table=$(psql "${PG_ARGS[@]}" -d "$DB_NAME" -qtAX -c "select count(*) from $table" 2>/dev/null || echo 0)"
  done
}
