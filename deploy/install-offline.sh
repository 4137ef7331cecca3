#!/usr/bin/env bash
# On the air-gapped server, with NO network: install or upgrade Scribe from a wheelhouse made by
# deploy/build-wheelhouse.sh.
#
#   deploy/install-offline.sh WHEELHOUSE [--app DIR] [--venv DIR] [--env FILE] [--check-url URL] [--no-database]
#
#   WHEELHOUSE   the folder copied from the connected machine (its SHA256SUMS is checked first)
#   --app DIR    where the application source goes (default /opt/scribe/app); unpacked from the
#                wheelhouse's scribe-*.tar.gz unless DIR already holds manage.py
#   --venv DIR   the Python environment (default /opt/scribe/venv); made fresh, then filled with --no-index
#   --env FILE   the settings (default /etc/scribe/scribe.env)
#   --check-url  the site's address to check afterwards (e.g. https://scribe.example.internal); without
#                it a temporary Daphne on loopback is started and checked, then stopped
#   --no-database  skip creating the database role and database (PostgreSQL on another host, or
#                created by its administrator)
#   --keep-venv  keep the existing environment as it is (only migrate and check again, e.g. after
#                editing the settings)
#
# Then: create the database (if PostgreSQL is local), migrate, collectstatic, `manage.py check --deploy`,
# and check /healthz (or the sign-in page where /healthz does not exist). Safe to run again for an upgrade.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
APP=/opt/scribe/app
VENV=/opt/scribe/venv
ENV_FILE=/etc/scribe/scribe.env
CHECK_URL=""
CREATE_DB=1
KEEP_VENV=0
WHEELHOUSE="${1:-}"
[ -n "$WHEELHOUSE" ] && [ "${WHEELHOUSE:0:2}" != "--" ] || { sed -n '2,22p' "$0"; exit 2; }
shift
while [ $# -gt 0 ]; do
  case "$1" in
    --app) APP="$2"; shift 2 ;;
    --venv) VENV="$2"; shift 2 ;;
    --env) ENV_FILE="$2"; shift 2 ;;
    --check-url) CHECK_URL="$2"; shift 2 ;;
    --no-database) CREATE_DB=0; shift ;;
    --keep-venv) KEEP_VENV=1; shift ;;
    *) echo "Unknown option: $1" >&2; exit 2 ;;
  esac
done
WHEELHOUSE="$(cd "$WHEELHOUSE" && pwd)"
say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { printf 'install-offline: %s\n' "$*" >&2; exit 1; }
# Only the wheelhouse: no index, and no pip configuration of this machine pointing elsewhere.
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INDEX=1 PIP_CONFIG_FILE=/dev/null
unset PIP_FIND_LINKS PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_CONSTRAINT PIP_REQUIREMENT

say "Checking the wheelhouse against its SHA256SUMS"
[ -f "$WHEELHOUSE/SHA256SUMS" ] || die "$WHEELHOUSE has no SHA256SUMS: is it a wheelhouse from deploy/build-wheelhouse.sh?"
(cd "$WHEELHOUSE" && sha256sum --check --quiet --strict SHA256SUMS) \
  || die "the wheelhouse does not match its SHA256SUMS (damaged or incomplete copy); copy it again"

if [ ! -f "$APP/manage.py" ]; then
  say "Unpacking the application into $APP"
  mkdir -p "$APP"
  tar -xzf "$WHEELHOUSE"/scribe-*.tar.gz -C "$APP" --strip-components=1
fi

source "$HERE/env-file.sh"
load_env_file "$ENV_FILE"
export DJANGO_SETTINGS_MODULE="${DJANGO_SETTINGS_MODULE:-config.settings}"

install_packages() {
python3 -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || die "Python 3.11 is needed, as on the machine that built the wheelhouse"
# A fresh environment each time, so an upgrade keeps no package the new pins dropped. The old one is
# put back if the install fails. (Stop the services first: they run from this folder.)
rm -rf "$VENV.previous"
[ -d "$VENV" ] && mv "$VENV" "$VENV.previous"
restore_previous() { [ -d "$VENV.previous" ] && { rm -rf "$VENV"; mv "$VENV.previous" "$VENV"; echo "install-offline: the previous environment was put back" >&2; }; }
trap restore_previous ERR
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --find-links "$WHEELHOUSE/wheels" --upgrade pip
# pip compiles some 20,000 modules to bytecode one at a time; compileall uses every core instead. The
# services cannot write into the environment, so without this every start would compile in memory.
"$VENV/bin/python" -m pip install -q --no-compile --find-links "$WHEELHOUSE/wheels" -r "$WHEELHOUSE/requirements.txt"
# A few packages ship files that are not valid Python 3 (templates, test data): pip skips them too.
"$VENV/bin/python" -m compileall -q -j 0 "$VENV/lib" >/dev/null 2>&1 || true
"$VENV/bin/python" - <<'PYCHECK'
import torch, torchaudio
assert torch.__version__.split("+")[0] == torchaudio.__version__.split("+")[0], "torch and torchaudio versions differ"
PYCHECK
trap - ERR
rm -rf "$VENV.previous"
}

if [ "$KEEP_VENV" = 1 ] && [ -x "$VENV/bin/python" ]; then
  say "Keeping the Python environment in $VENV"
else
  say "Installing Python packages into $VENV (no network)"
  install_packages
fi
PY="$VENV/bin/python"

cd "$APP"
if [ "$CREATE_DB" = 1 ]; then
  DB_NAME="${SCRIBE_DB_NAME:-scribe}" DB_USER="${SCRIBE_DB_USER:-scribe}" DB_HOST="${SCRIBE_DB_HOST:-127.0.0.1}"
  PSQL=(psql -h "$DB_HOST" -p "${SCRIBE_DB_PORT:-5432}" -U postgres -d postgres -qtAX)
  if ! "${PSQL[@]}" -c 'select 1' >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && id postgres >/dev/null 2>&1; then
    PSQL=(runuser -u postgres -- psql -d postgres -qtAX)  # peer authentication on the local socket
  fi
  if [ "$("${PSQL[@]}" -c "select 1 from pg_roles where rolname='$DB_USER'")" != 1 ]; then
    say "Creating database role $DB_USER"
    "${PSQL[@]}" -c "create role \"$DB_USER\" login"
    PW_FILE="${SCRIBE_DB_PASSWORD_FILE:-}"
    if [ -n "$PW_FILE" ] && [ ! -e "$PW_FILE" ]; then
      # Debian's PostgreSQL asks for a password on 127.0.0.1: make one, readable by the services only.
      (umask 0027 && python3 -c 'import secrets; print(secrets.token_urlsafe(32))' > "$PW_FILE")
      getent group scribe >/dev/null && chgrp scribe "$PW_FILE"
      say "Generated the database password in $PW_FILE"
    fi
    if [ -n "$PW_FILE" ]; then
      "${PSQL[@]}" -v pw="$(cat "$PW_FILE")" <<< "alter role \"$DB_USER\" password :'pw'"
    fi
  fi
  if [ "$("${PSQL[@]}" -c "select 1 from pg_database where datname='$DB_NAME'")" != 1 ]; then
    say "Creating database $DB_NAME"
    "${PSQL[@]}" -c "create database \"$DB_NAME\" owner \"$DB_USER\""
  fi
fi

say "Applying database migrations"
"$PY" manage.py migrate --noinput
say "Collecting static files"
"$PY" manage.py collectstatic --noinput -v0
say "Checking the deployment settings (manage.py check --deploy)"
"$PY" manage.py check --deploy --fail-level WARNING

check_site() {
  # $1: base URL, $2: the /healthz parts to check (empty: all). /healthz where the site has it, else the
  # sign-in page must answer 200.
  "$PY" - "$1" "${2:-}" <<'PYCHECK'
import ssl, sys, urllib.error, urllib.request

base = sys.argv[1].rstrip("/")
parts = sys.argv[2]
context = ssl.create_default_context()
context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # a site certificate may be from a local CA


def status(path):
    try:
        with urllib.request.urlopen(base + path, timeout=20, context=context) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError as exc:
        sys.exit(f"install-offline: {base} cannot be reached: {exc}")


path = "/healthz" + (f"?parts={parts}" if parts else "")
code = status(path)
if code == 404:
    code, path = status("/accounts/login/"), "/accounts/login/"
if code != 200:
    sys.exit(f"install-offline: {base}{path} answered HTTP {code}; see the services' logs (journalctl -u 'scribe-*')")
print(f"Site answers: {base}{path}")
PYCHECK
}

if [ -n "$CHECK_URL" ]; then
  check_site "$CHECK_URL"
else
  # The services may not be set up yet: start Daphne on a free loopback port just for the check.
  # Plain HTTP on loopback, so HTTPS redirects are off for this one process.
  PORT="$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  LOG="$(mktemp)"
  SCRIBE_HTTPS=false SCRIBE_ALLOWED_HOSTS=127.0.0.1 "$VENV/bin/daphne" -b 127.0.0.1 -p "$PORT" config.asgi:application >"$LOG" 2>&1 &
  DAPHNE=$!
  trap 'kill $DAPHNE 2>/dev/null || true; wait $DAPHNE 2>/dev/null || true; rm -f "$LOG"' EXIT
  "$PY" - "$PORT" <<'PYWAIT'
import socket, sys, time
for _ in range(240):
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=0.5).close()
        break
    except OSError:
        time.sleep(0.25)
PYWAIT
  # No worker runs yet: check what this process itself needs; the full check comes with --check-url.
  check_site "http://127.0.0.1:$PORT" database,redis || { tail -40 "$LOG" >&2; exit 1; }
fi
say "Installed. Start or restart the services: systemctl restart scribe.target (see deploy/README.md)"
