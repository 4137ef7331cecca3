# Shared by deploy/up.sh and tests/run.sh: make this machine ready to run Scribe from this checkout.
# Safe to run again: every step checks before it acts.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${SCRIBE_VENV:-$REPO/.venv}"
PY="$VENV/bin/python"
export PIP_DISABLE_PIP_VERSION_CHECK=1

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "Need root to run: $*" >&2; return 1; fi
}

ensure_system_packages() {
  # $@: Debian packages, each given as "command:package" so a present command skips its package.
  local missing=()
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    say "Installing system packages: ${missing[*]}"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

ensure_services() {
  if ! pg_isready -q -h "${SCRIBE_DB_HOST:-127.0.0.1}" -p "${SCRIBE_DB_PORT:-5432}"; then
    say "Starting PostgreSQL"
    as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start
    for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 && break; sleep 1; done
  fi
  if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    say "Starting Redis"
    as_root mkdir -p /var/lib/redis /var/log/redis
    as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/scribe.log
    for _ in $(seq 30); do redis-cli ping >/dev/null 2>&1 && break; sleep 1; done
  fi
}

ensure_database() {
  local user="${SCRIBE_DB_USER:-scribe}" name="${SCRIBE_DB_NAME:-scribe}" host="${SCRIBE_DB_HOST:-127.0.0.1}"
  local admin=(psql -h "$host" -U postgres -d postgres -qtAX)
  if [ "$("${admin[@]}" -c "select 1 from pg_roles where rolname='$user'")" != 1 ]; then
    say "Creating database role $user"
    # CREATEDB lets the test suite make its own throw-away database.
    "${admin[@]}" -c "create role \"$user\" login createdb"
  fi
  if [ "$("${admin[@]}" -c "select 1 from pg_database where datname='$name'")" != 1 ]; then
    say "Creating database $name"
    "${admin[@]}" -c "create database \"$name\" owner \"$user\""
  fi
}

ensure_venv() {
  # $1: requirements file. Reinstalls only when the file (or what it includes) changed.
  local req="$1" stamp="$VENV/.scribe-installed-$(basename "$1")"
  local want
  want="$(cat "$REPO/requirements.txt" "$REPO/$req" | sha256sum | cut -d' ' -f1)"
  if [ ! -x "$PY" ]; then
    say "Creating Python environment in $VENV"
    python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python 3.11 or newer is needed" >&2; exit 1; }
    python3 -m venv "$VENV"
  fi
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "Installing Python packages from $req (torch alone is several GB the first time)"
    "$PY" -m pip install -q --upgrade pip
    "$PY" -m pip install -q -r "$REPO/$req"
    "$PY" - <<'PYCHECK'
import torch, torchaudio
assert torch.__version__.split("+")[0] == torchaudio.__version__.split("+")[0], "torch and torchaudio versions differ"
PYCHECK
    echo "$want" > "$stamp"
  fi
}
