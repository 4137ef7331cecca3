#!/usr/bin/env bash
# On a machine WITH network access: gather everything an air-gapped server needs to install Scribe.
#
#   deploy/build-wheelhouse.sh [--profile cuda|cpu] [--out DIR]
#
# The result is one folder (copy it across on a disk; install-offline.sh reads it):
#   wheels/             every pinned requirement and its dependencies as wheels (nothing to compile offline)
#   scribe-<rev>.tar.gz the application source at this commit, vendored frontend assets included
#   requirements.txt    the pins the wheels were resolved from, plus profile.txt naming the torch build
#   SHA256SUMS          checksums of all of the above; install-offline.sh refuses a bundle that fails them
#
# Profiles: "cuda" (default) takes torch from PyPI, whose Linux wheels are CUDA builds that also run on a
# CPU; "cpu" takes the CPU-only torch build from download.pytorch.org, about 2.5 GB smaller, for hosts
# without a GPU (web server, CPU worker). Both must use the Python version of the target servers (3.11).
# Running it again into the same folder re-downloads nothing that is already there.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PROFILE=cuda
OUT=""
PYTHON="${PYTHON:-python3}"
TORCH_CPU_INDEX="${SCRIBE_TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}"

while [ $# -gt 0 ]; do
  case "$1" in
    --profile) PROFILE="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "Unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$PROFILE" in cuda|cpu) ;; *) echo "--profile must be cuda or cpu, not $PROFILE" >&2; exit 2 ;; esac

REV="$(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)"
OUT="${OUT:-$REPO/dist/wheelhouse-$PROFILE}"
mkdir -p "$OUT/wheels"
OUT="$(cd "$OUT" && pwd)"
say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
export PIP_DISABLE_PIP_VERSION_CHECK=1

"$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
  || { echo "Build the wheelhouse with Python 3.11, the version the servers run." >&2; exit 1; }

# The torch build is chosen by a constraint, so requirements.txt stays the one list of pins.
TORCH="$(sed -n 's/^torch==\([^ #]*\).*/\1/p' "$REPO/requirements.txt")"
TORCHAUDIO="$(sed -n 's/^torchaudio==\([^ #]*\).*/\1/p' "$REPO/requirements.txt")"
EXTRA=()
if [ "$PROFILE" = cpu ]; then
  # Fail in seconds, in words, rather than after pip's retries.
  "$PYTHON" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + "/torch/", timeout=20)' "$TORCH_CPU_INDEX" 2>/dev/null \
    || { echo "The CPU torch index $TORCH_CPU_INDEX cannot be reached; the cpu profile needs it" \
              "(or a mirror of it in SCRIBE_TORCH_CPU_INDEX). The cuda profile needs only PyPI." >&2; exit 1; }
  printf 'torch==%s+cpu\ntorchaudio==%s+cpu\n' "$TORCH" "$TORCHAUDIO" > "$OUT/constraints-cpu.txt"
  EXTRA=(--extra-index-url "$TORCH_CPU_INDEX" -c "$OUT/constraints-cpu.txt")
fi

say "Downloading the pinned requirements ($PROFILE profile) into $OUT/wheels"
"$PYTHON" -m pip download -q -r "$REPO/requirements.txt" "${EXTRA[@]}" -d "$OUT/wheels" \
  --only-binary=torch,torchaudio
# pip and its build tools too, so the offline venv can be brought to the same pip.
"$PYTHON" -m pip download -q pip setuptools wheel -d "$OUT/wheels"

# A package published only as source is built here, so the air-gapped server needs no compiler.
shopt -s nullglob
for sdist in "$OUT"/wheels/*.tar.gz "$OUT"/wheels/*.zip; do
  say "Building a wheel from $(basename "$sdist")"
  "$PYTHON" -m pip wheel -q --no-deps --no-index --find-links "$OUT/wheels" -w "$OUT/wheels" "$sdist"
  rm -f "$sdist"
done

say "Adding the application source ($REV)"
rm -f "$OUT"/scribe-*.tar.gz
if git -C "$REPO" rev-parse --git-dir >/dev/null 2>&1; then
  # Tracked files only: no virtual environment, media or secrets from this checkout.
  git -C "$REPO" archive --format=tar.gz --prefix="scribe/" -o "$OUT/scribe-$REV.tar.gz" HEAD
else
  tar -C "$REPO/.." -czf "$OUT/scribe-$REV.tar.gz" --exclude=.venv --exclude=var --exclude=__pycache__ "$(basename "$REPO")"
fi
cp "$REPO/requirements.txt" "$OUT/requirements.txt"
printf 'profile=%s\nrevision=%s\ntorch=%s\n' "$PROFILE" "$REV" "$TORCH" > "$OUT/profile.txt"

say "Writing SHA256SUMS"
(cd "$OUT" && find . -type f ! -name SHA256SUMS -printf '%P\n' | LC_ALL=C sort | xargs -d '\n' sha256sum > SHA256SUMS)
say "Wheelhouse ready: $OUT ($(du -sh "$OUT" | cut -f1), $(ls "$OUT/wheels" | wc -l) wheels)"
