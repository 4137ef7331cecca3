#!/usr/bin/env bash
# Run the whole test suite against the real PostgreSQL and Redis, with a real browser.
# Extra arguments go to pytest (e.g. tests/run.sh -k search).
source "$(dirname "$0")/../deploy/common.sh"
cd "$REPO"

ensure_system_packages psql:postgresql redis-server:redis-server ffmpeg:ffmpeg \
  espeak-ng:espeak-ng sox:sox chromium:chromium nginx:nginx-light openssl:openssl
ensure_services
ensure_database
ensure_venv requirements-test.txt

"$PY" -m pytest "$@"
