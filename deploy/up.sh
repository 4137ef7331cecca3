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
say "Starting Scribe on http://127.0.0.1:$PORT (the web server, a caption worker and a background worker)"
# -B: the single worker also runs beat (status samples every minute, nightly retention).
"$VENV/bin/celery" -A config worker -B -Q cpu,gpu --concurrency 1 -n "scribe@%h" --loglevel INFO &
WORKER=$!
# The speech engine for live captions in a process of its own, as in production: restarting the web
# server never reloads the model, and live meetings resume within a second of it listening again.
"$PY" manage.py run_caption_worker &
CAPTIONS=$!
trap 'kill $WORKER $CAPTIONS 2>/dev/null; wait $WORKER $CAPTIONS 2>/dev/null' EXIT INT TERM
SCRIBE_ASR_LIVE_ENGINE=worker "$VENV/bin/daphne" -b 127.0.0.1 -p "$PORT" config.asgi:application
