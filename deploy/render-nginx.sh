#!/usr/bin/env bash
# Write the nginx site for Scribe to stdout, from deploy/nginx/scribe.conf.template and the settings in
# an environment file (default /etc/scribe/scribe.env):
#
#   deploy/render-nginx.sh [/etc/scribe/scribe.env] > /etc/nginx/sites-available/scribe.conf
#
# Values nginx needs that Django does not: SCRIBE_SERVER_NAME, SCRIBE_TLS_CERT, SCRIBE_TLS_KEY,
# SCRIBE_DAPHNE_ADDRESS, SCRIBE_NGINX_HTTP_PORT, SCRIBE_NGINX_HTTPS_PORT (see scribe.env.example).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ENV_FILE="${1:-/etc/scribe/scribe.env}"
source "$HERE/env-file.sh"
load_env_file "$ENV_FILE"

VAR_DIR="${SCRIBE_VAR_DIR:-/var/lib/scribe}"
ALLOWED="${SCRIBE_ALLOWED_HOSTS:-localhost}"
# sed replacement text: escape the characters sed treats specially.
esc() { printf '%s' "$1" | sed -e 's/[\/&|]/\\&/g'; }
# One Daphne process or several (comma-separated addresses): one `server` line each.
SERVERS=""
IFS=, read -r -a DAPHNES <<< "${SCRIBE_DAPHNE_ADDRESS:-127.0.0.1:8000}"
for address in "${DAPHNES[@]}"; do
  address="${address// /}"
  [[ -n "$address" ]] && SERVERS+="server $address; "
done
sed \
  -e "s|{{SERVER_NAME}}|$(esc "${SCRIBE_SERVER_NAME:-${ALLOWED//,/ }}")|g" \
  -e "s|{{TLS_CERT}}|$(esc "${SCRIBE_TLS_CERT:-/etc/scribe/tls/scribe.crt}")|g" \
  -e "s|{{TLS_KEY}}|$(esc "${SCRIBE_TLS_KEY:-/etc/scribe/tls/scribe.key}")|g" \
  -e "s|{{DAPHNE_SERVERS}}|$(esc "${SERVERS% }")|g" \
  -e "s|{{HTTP_PORT}}|$(esc "${SCRIBE_NGINX_HTTP_PORT:-80}")|g" \
  -e "s|{{HTTPS_PORT}}|$(esc "${SCRIBE_NGINX_HTTPS_PORT:-443}")|g" \
  -e "s|{{REQUEST_BODY_MAX_KB}}|$(esc "${SCRIBE_REQUEST_BODY_MAX_KB:-1024}")|g" \
  -e "s|{{UPLOAD_PIECE_KB}}|$(( ${SCRIBE_UPLOAD_PIECE_MB:-8} * 1024 + 64 ))|g" \
  -e "s|{{STATIC_ROOT}}|$(esc "${SCRIBE_STATIC_ROOT:-$VAR_DIR/static}")|g" \
  -e "s|{{MEDIA_ROOT}}|$(esc "${SCRIBE_MEDIA_ROOT:-$VAR_DIR/media}")|g" \
  -e "s|{{MEDIA_ACCEL_REDIRECT}}|$(esc "${SCRIBE_MEDIA_ACCEL_REDIRECT:-/protected-media/}")|g" \
  "$HERE/nginx/scribe.conf.template"
