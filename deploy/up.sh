#!/usr/bin/env bash
# Set up everything this machine needs and start Scribe on http://127.0.0.1:8000 (Ctrl-C stops it).
source "$(dirname "$0")/common.sh"
cd "$REPO"

ensure_system_packages psql:postgresql redis-server:redis-server ffmpeg:ffmpeg
ensure_services
ensure_database
ensure_venv requirements.txt

say "Preparing the database and static files"
"$PY" manage.py migrate --noinput
"$PY" manage.py collectstatic --noinput -v0
"$PY" manage.py ensure_admin

PORT="${SCRIBE_PORT:-8000}"
say "Starting Scribe on http://127.0.0.1:$PORT (the web server and a background worker)"
# -B: the single worker also runs beat (status samples every minute, nightly retention).
"$VENV/bin/celery" -A config worker -B -Q cpu,gpu --concurrency 1 -n "scribe@%h" --loglevel INFO &
WORKER=$!
trap 'kill $WORKER 2>/dev/null; wait $WORKER 2>/dev/null' EXIT INT TERM
"$VENV/bin/daphne" -b 127.0.0.1 -p "$PORT" config.asgi:application
