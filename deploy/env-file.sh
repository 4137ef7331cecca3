# load_env_file FILE: export the VARIABLE=value lines of a settings file the way systemd's
# EnvironmentFile reads them (a value may hold spaces; one pair of surrounding quotes is removed;
# lines starting with # are comments). Sourcing the file with bash would run a value with a space.
load_env_file() {
  local line key value
  [ -f "$1" ] || return 0
  while IFS= read -r line || [ -n "$line" ]; do
    line="${line#"${line%%[![:space:]]*}"}"
    case "$line" in ''|'#'*|';'*) continue ;; esac
    key="${line%%=*}"
    value="${line#*=}"
    [[ "$key" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] && [ "$key" != "$line" ] || { echo "ignoring a malformed line in $1: $line" >&2; continue; }
    if [[ "$value" =~ ^\"(.*)\"$ || "$value" =~ ^\'(.*)\'$ ]]; then value="${BASH_REMATCH[1]}"; fi
    export "$key=$value"
  done < "$1"
}
