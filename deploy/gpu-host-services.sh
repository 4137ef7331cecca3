#!/usr/bin/env bash
# On the GPU host, as root, from the repository root: unpack .kit/ (built by deploy/gpu-host-kit.sh),
# start PostgreSQL and Redis from it in the background, and put the Python packages in $SITE.
#
#   deploy/gpu-host-services.sh [start]   start both, print "services ready" when both answer
#   deploy/gpu-host-services.sh stop      stop both (the data folder stays)
#   deploy/gpu-host-services.sh clean     stop both and remove everything this script made
#
# Then, for the site:  . "$KITROOT/scribe-env.sh"   (PYTHONPATH and the SCRIBE_* database and Redis
# settings; LD_LIBRARY_PATH is never exported: the carried libraries are for the two servers only).
#
# Settings (environment): KITROOT=/tmp/kitroot  SITE=/tmp/site  PGDATA=/tmp/pgdata  PGPORT=5432
# REDIS_PORT=6379  PG_USER=scribepg (the unprivileged account that runs PostgreSQL)  PYTHON=python3
# SCRIBE_DB_NAME=scribe  SCRIBE_DB_USER=scribe (created, superuser, trust authentication on 127.0.0.1).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KIT="$(cd "${KIT:-$REPO/.kit}" 2>/dev/null && pwd || echo "${KIT:-$REPO/.kit}")"
KITROOT="${KITROOT:-/tmp/kitroot}"
SITE="${SITE:-/tmp/site}"
PGDATA="${PGDATA:-/tmp/pgdata}"
PGPORT="${PGPORT:-5432}"
REDIS_PORT="${REDIS_PORT:-6379}"
PG_USER="${PG_USER:-scribepg}"
DB_NAME="${SCRIBE_DB_NAME:-scribe}"
DB_USER="${SCRIBE_DB_USER:-scribe}"
PYTHON="${PYTHON:-python3}"
# postgres and initdb were built to read time zones here (see gpu-host-kit.sh)
ZONEINFO_LINK=/tmp/.kit-zoneinfo
PGBIN="$KITROOT/usr/lib/postgresql/15/bin"
REDIS_DIR="$KITROOT/redis"
say() { printf '%s\n' "$*" >&2; }
die() { say "gpu-host-services: $*"; exit 1; }

# The carried binaries, and only they, see the carried libraries.
kitrun() { LD_LIBRARY_PATH="$KITROOT/usr/lib/kit" "$@"; }

# PostgreSQL refuses to run as root. Whichever way of dropping to $PG_USER the image has.
# KIT_RUNAS=runuser|setpriv|python picks one (to try each where all exist).
as_pg() {
  local how="${KIT_RUNAS:-}"
  if [ -z "$how" ]; then
    how=python
    command -v setpriv >/dev/null 2>&1 && how=setpriv
    command -v runuser >/dev/null 2>&1 && how=runuser
  fi
  if [ "$how" = runuser ]; then
    runuser -u "$PG_USER" -- env LD_LIBRARY_PATH="$KITROOT/usr/lib/kit" "$@"
  elif [ "$how" = setpriv ]; then
    setpriv --reuid="$PG_USER" --regid="$(id -g "$PG_USER")" --init-groups \
      env LD_LIBRARY_PATH="$KITROOT/usr/lib/kit" "$@"
  else
    # Python is always there: the same as setpriv, without util-linux.
    "$PYTHON" - "$PG_USER" "$KITROOT/usr/lib/kit" "$@" <<'EOF'
import os, pwd, sys
user, libs, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
pw = pwd.getpwnam(user)
os.initgroups(user, pw.pw_gid)
os.setgid(pw.pw_gid)
os.setuid(pw.pw_uid)
os.environ.update(LD_LIBRARY_PATH=libs, HOME=pw.pw_dir if os.path.isdir(pw.pw_dir) else "/tmp", USER=user)
os.execvp(argv[0], argv)
EOF
  fi
}

ensure_user() {
  id -u "$PG_USER" >/dev/null 2>&1 && return 0
  if command -v useradd >/dev/null 2>&1; then
    useradd --system --no-create-home --home-dir /tmp --shell /usr/sbin/nologin "$PG_USER" 2>/dev/null \
      || useradd -r -M -d /tmp -s /bin/false "$PG_USER"
  elif command -v adduser >/dev/null 2>&1; then
    adduser --system --no-create-home --home /tmp "$PG_USER" >/dev/null 2>&1 \
      || adduser -S -H -h /tmp "$PG_USER"   # busybox
  fi
  if ! id -u "$PG_USER" >/dev/null 2>&1; then
    # No account tools and no such user: the nobody account every image has.
    id -u nobody >/dev/null 2>&1 || die "cannot create or find an unprivileged user for PostgreSQL"
    say "gpu-host-services: no useradd; PostgreSQL runs as nobody"
    PG_USER=nobody
  fi
}

unpack() {
  local archive="$1" dest="$2"
  [ -f "$archive" ] || die "$archive is missing: build the kit with deploy/gpu-host-kit.sh"
  local stamp="$dest/.kit-$(sha256sum "$archive" | cut -c1-16)"
  [ -f "$stamp" ] && return 0   # this archive is already unpacked there
  rm -rf "$dest"
  mkdir -p "$dest"
  # Python's tarfile reads xz on any image (the xz program may be absent).
  "$PYTHON" - "$archive" "$dest" <<'EOF'
import sys, tarfile
with tarfile.open(sys.argv[1], "r:xz") as tar:
    if hasattr(tarfile, "fully_trusted_filter"):
        tar.extractall(sys.argv[2], filter="fully_trusted")  # our own archive: keep modes as built
    else:
        tar.extractall(sys.argv[2])
EOF
  touch "$stamp"
}

# pg_ctl, like the server, refuses to run as root.
pg_running() { [ -f "$PGDATA/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; }
redis_ping() { kitrun "$KITROOT/usr/bin/redis-cli" -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; }

start() {
  [ "$(id -u)" = 0 ] || die "run as root (it creates the PostgreSQL account and drops to it)"
  cd /   # the PostgreSQL account need not be able to enter the current folder
  unpack "$KIT/root.tar.xz" "$KITROOT"
  unpack "$KIT/site.tar.xz" "$SITE"
  ln -sfn "$KITROOT/usr/share/zoneinfo" "$ZONEINFO_LINK"
  ensure_user
  # The account must reach the binaries and its own folders.
  chmod 755 "$KITROOT" "$SITE"

  if ! pg_running; then
    if [ ! -f "$PGDATA/PG_VERSION" ]; then
      rm -rf "$PGDATA"
      mkdir -p "$PGDATA"
      chown "$PG_USER" "$PGDATA"
      chmod 700 "$PGDATA"
      as_pg "$PGBIN/initdb" -D "$PGDATA" -U postgres --auth=trust -E UTF8 --no-locale >"$PGDATA.initdb.log" 2>&1 \
        || { cat "$PGDATA.initdb.log" >&2; die "initdb failed"; }
      cat >> "$PGDATA/postgresql.conf" <<EOF
# gpu-host-services.sh
listen_addresses = '127.0.0.1'
port = $PGPORT
unix_socket_directories = '$PGDATA'
max_connections = 300
shared_buffers = 512MB
timezone = 'UTC'
log_timezone = 'UTC'
# a container's /dev/shm is often 64 MB
dynamic_shared_memory_type = mmap
EOF
      printf 'host all all 127.0.0.1/32 trust\n' >> "$PGDATA/pg_hba.conf"
    fi
    # pg_ctl forks the server into its own session; -w waits until it accepts connections.
    as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -l "$PGDATA/server.log" -w -t 60 -o "-p $PGPORT" start >/dev/null \
      || { tail -20 "$PGDATA/server.log" >&2 || true; die "PostgreSQL did not start"; }
  fi

  if ! redis_ping; then
    mkdir -p "$REDIS_DIR"
    kitrun "$KITROOT/usr/bin/redis-server" --bind 127.0.0.1 --port "$REDIS_PORT" --protected-mode yes \
      --save '' --appendonly no --dir "$REDIS_DIR" --daemonize yes \
      --pidfile "$REDIS_DIR/redis-$REDIS_PORT.pid" --logfile "$REDIS_DIR/redis-$REDIS_PORT.log" >/dev/null
  fi

  for _ in $(seq 1 120); do
    kitrun "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PGPORT" && redis_ping && break
    sleep 0.5
  done
  kitrun "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PGPORT" || die "PostgreSQL does not answer on port $PGPORT"
  redis_ping || { tail -20 "$REDIS_DIR/redis-$REDIS_PORT.log" >&2 || true; die "Redis does not answer on port $REDIS_PORT"; }

  local psql=(kitrun "$PGBIN/psql" -h 127.0.0.1 -p "$PGPORT" -U postgres -d postgres -qAtX -v ON_ERROR_STOP=1)
  if [ "$("${psql[@]}" -c "select 1 from pg_roles where rolname = '$DB_USER'")" != 1 ]; then
    "${psql[@]}" -c "create role \"$DB_USER\" login superuser"
  fi
  if [ "$("${psql[@]}" -c "select 1 from pg_database where datname = '$DB_NAME'")" != 1 ]; then
    "${psql[@]}" -c "create database \"$DB_NAME\" owner \"$DB_USER\""
  fi

  # The site's own imports, against the host's torch, numpy and tokenizers: a mismatch shows here,
  # not halfway into a benchmark. Only the Python packages are checked, so the servers stay up either way.
  PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" -c '
import django, daphne.server, channels_redis.core, channels_redis.pubsub, psycopg, uvloop, aiohttp, celery.schedules
import mistral_common.tokens.tokenizers.mistral, mistral_common.protocol.transcription.request
import transformers
from transformers import VoxtralRealtimeProcessor
assert psycopg.pq.__impl__ == "binary", psycopg.pq.__impl__
' || die "the Python packages in $SITE do not import on this host (see above)"

  cat > "$KITROOT/scribe-env.sh" <<EOF
export PYTHONPATH="$SITE\${PYTHONPATH:+:\$PYTHONPATH}"
export SCRIBE_DB_HOST=127.0.0.1 SCRIBE_DB_PORT=$PGPORT SCRIBE_DB_NAME=$DB_NAME SCRIBE_DB_USER=$DB_USER
export SCRIBE_REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0
export SCRIBE_CELERY_BROKER_URL=redis://127.0.0.1:$REDIS_PORT/1
EOF
  echo "services ready"
}

stop() {
  if [ -d "$PGBIN" ] && [ -f "$PGDATA/postmaster.pid" ]; then
    local owner; owner="$(stat -c %U "$PGDATA")"
    PG_USER="$owner" as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null || true
  fi
  if [ -x "$KITROOT/usr/bin/redis-cli" ] && redis_ping; then
    kitrun "$KITROOT/usr/bin/redis-cli" -h 127.0.0.1 -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
  fi
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  clean)
    stop
    rm -rf "$PGDATA" "$PGDATA.initdb.log" "$KITROOT" "$SITE"
    [ -L "$ZONEINFO_LINK" ] && rm -f "$ZONEINFO_LINK"
    ;;
  *) die "usage: $0 [start|stop|clean]" ;;
esac
