#!/usr/bin/env bash
# On a machine WITH network access: build .kit/, everything a bare GPU host needs to run the whole site
# (Daphne with the live path, manage.py migrate, PostgreSQL, Redis) without network, apt or a database
# of its own. deploy/gpu-host-services.sh unpacks and starts it there.
#
#   deploy/gpu-host-kit.sh
#
# The GPU host is x86-64 Ubuntu 24.04-like (glibc 2.39) with Python 3.12 and its ML stack (torch,
# numpy, tokenizers, safetensors, huggingface_hub, tiktoken, ...) already installed; the kit carries
# only what is missing, in two solid xz archives (the wheels and debs as they come are ~150 MB):
#   .kit/site.tar.xz   the cp312 wheels below installed into one folder, translations and bundled
#                      tokenizer files stripped; unpacked into the PYTHONPATH folder
#   .kit/root.tar.xz   PostgreSQL 15 and Redis 7 from this box's Debian packages, with the libraries
#                      a stock Ubuntu 24.04 lacks (ICU 72, OpenLDAP 2.5, SASL, Kerberos, libxml2,
#                      jemalloc, lzf) in usr/lib/kit, and tzdata's zoneinfo
#   .kit/MANIFEST      versions and checksums
# Needs: python3 with pip, apt-get (root, Debian bookworm: its PostgreSQL is 15), dpkg-deb, xz.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KIT="$REPO/.kit"
PIP="${PIP:-python3 -m pip}"
MAX_MIB="${KIT_MAX_MIB:-45}"
say() { printf '==> %s\n' "$*" >&2; }

# What the site imports at start-up (settings, ASGI application, the engine's loader, migrations) and
# what the GPU host does not already have. Pins follow the project's environment; transformers is newer
# than the host's 5.17 because the engine needs 5.23. Left out on purpose: pyannote (speaker separation
# runs in Celery workers), av and python-docx (imported only by uploads and exports), scipy,
# huggingface_hub, tokenizers, safetensors, regex, numpy (the host's satisfy transformers' own checks).
WHEELS=(
  Django==5.2.19 asgiref==3.13.0 sqlparse==0.6.1 whitenoise==6.12.0 django-axes==8.3.1
  channels==4.3.2 channels_redis==4.3.0 msgpack==1.2.4 redis==8.1.0
  daphne==4.2.3 Twisted==26.10.0 autobahn==26.10.2 txaio==26.6.1 cbor2==6.3.0 ujson==6.1.0
  cffi==2.1.1 pycparser==3.12 cryptography==50.0.2 pyOpenSSL==26.4.0 service-identity==26.1.0
  hyperlink==21.0.0 idna==3.20 attrs==26.1.0 Automat==25.4.16 constantly==23.10.4 Incremental==24.11.0
  zope.interface==8.7
  # settings.py reads celery.schedules; the worker's command-line extras are not needed
  celery==5.7.0 kombu==5.7.0 billiard==4.3.2 vine==5.1.0 amqp==5.4.2 click==8.5.1
  python-dateutil==2.9.0.post0 six==1.17.0 tzlocal==5.4.5
  psycopg==3.3.9 psycopg-binary==3.3.9
  transformers==5.23.0 mistral_common==1.13.1 pydantic==2.14.4 pydantic_core==2.50.5
  pydantic-extra-types==2.11.1 pycountry==26.2.16 annotated-types==0.8.0 typing-inspection==0.4.5
  typing_extensions==4.16.0 jsonschema==4.26.0 jsonschema-specifications==2025.9.1 referencing==0.37.0
  rpds-py==2026.9.1 pillow==13.0.0 soundfile==0.14.0 soxr==1.1.0
  # the benchmark client and Daphne's faster event loop
  aiohttp==3.14.5 aiohappyeyeballs==2.7.1 aiosignal==1.4.0 frozenlist==1.8.0 multidict==7.2.1
  propcache==0.5.4 yarl==1.25.1 uvloop==0.23.0
)
WHEELS=($(printf '%s\n' "${WHEELS[@]}" | grep -v '^#'))
PLATFORMS=(manylinux_2_34_x86_64 manylinux_2_31_x86_64 manylinux_2_28_x86_64 manylinux_2_27_x86_64
           manylinux_2_24_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux_2_5_x86_64
           manylinux1_x86_64 any)

# Server packages, and the libraries of theirs that a stock Ubuntu 24.04 lacks or names differently.
# glibc, OpenSSL 3, zlib, zstd, lz4, xz, systemd, PAM, GnuTLS, readline and ncurses are taken from the host.
DEBS=(postgresql-15 postgresql-client-15 libpq5 redis-tools tzdata
      libicu72 libldap-2.5-0 libsasl2-2 libxml2 libgssapi-krb5-2 libkrb5-3 libk5crypto3 libkrb5support0
      libcom-err2 libkeyutils1 libjemalloc2 liblzf1 libatomic1)
# What is kept of PostgreSQL: the server and the few tools the services script runs.
PG_BINS=(postgres initdb pg_ctl psql pg_isready createdb)

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$KIT"
EXCLUDE="$(git -C "$REPO" rev-parse --git-path info/exclude)"
case "$EXCLUDE" in /*) ;; *) EXCLUDE="$REPO/$EXCLUDE" ;; esac
mkdir -p "$(dirname "$EXCLUDE")"
grep -qxF '/.kit/' "$EXCLUDE" 2>/dev/null || echo '/.kit/' >> "$EXCLUDE"

say "Downloading ${#WHEELS[@]} cp312 manylinux wheels"
plat_args=(); for p in "${PLATFORMS[@]}"; do plat_args+=(--platform "$p"); done
$PIP download -q --disable-pip-version-check --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --abi cp312 --abi abi3 --abi none "${plat_args[@]}" -d "$WORK/wheels" "${WHEELS[@]}"
# pip can lay out wheels for another interpreter and platform: nothing is compiled or run.
$PIP install -q --disable-pip-version-check --no-index --no-deps --no-compile --no-cache-dir \
  --only-binary=:all: --python-version 3.12 --implementation cp --abi cp312 --abi abi3 --abi none \
  "${plat_args[@]}" --target "$WORK/site" "$WORK"/wheels/*.whl

say "Stripping the Python packages"
S="$WORK/site"
rm -rf "$S/bin"
find "$S" -name __pycache__ -prune -exec rm -rf {} +
# (C sources stay: autobahn reads its UTF-8 validator source at import)
find "$S" \( -name '*.pyi' -o -name '*.pyx' -o -name '*.pxd' \) -type f -delete
# Translations: the site is in English. Every other language folder under a locale/ goes
# (Django's en* ones stay: they hold its date and number formats).
python3 - "$S" <<'EOF'
import pathlib, shutil, sys
for loc in list(pathlib.Path(sys.argv[1]).rglob("locale")):
    if loc.is_dir():
        for lang in loc.iterdir():
            if lang.is_dir() and not lang.name.startswith(("en", "__")):
                shutil.rmtree(lang)
EOF
rm -rf "$S/pycountry/locales"
# Tokenizers of other Mistral models; the engine reads tekken.json from the model folder. The one kept is
# the vocabulary benchmarks/live_system_bench.py --build-full-model writes the random model's tokenizer from.
find "$S/mistral_common/data" -type f \( -name '*.model*' -o -name 'tekken_*.json' \) ! -name tekken_240911.json -delete
rm -rf "$S/uvloop/_testbase.py" "$S/twisted/"*/test
# Debug sections; the extension modules load the same without them.
find "$S" \( -name '*.so' -o -name '*.so.*' \) -type f -exec strip --strip-unneeded {} + 2>/dev/null || true

# PyAV (36 MB, its own FFmpeg) decodes uploaded recordings, which the GPU host's live path never does;
# the URLs import that module all the same. A stand-in lets the site start, and says so if it is used.
mkdir -p "$S/av"
cat > "$S/av/__init__.py" <<'EOF'
"""Stand-in for PyAV in the GPU host kit: the live path starts without it; decoding an upload fails."""
time_base = 1_000_000


class FFmpegError(Exception):
    pass


def _absent(*args, **kwargs):
    raise FFmpegError("PyAV is not installed on this host (the GPU host kit leaves it out): uploads cannot be decoded here")


open = AudioResampler = _absent
EOF
say "Downloading ${#DEBS[@]} Debian packages"
mkdir -p "$WORK/debs" "$WORK/x"
(cd "$WORK/debs" && apt-get download -q=2 "${DEBS[@]}" 2>&1 | grep -v 'unsandboxed' >&2 || true)
for d in "${DEBS[@]}"; do ls "$WORK/debs/${d}"_*.deb >/dev/null 2>&1 || { echo "apt-get download failed for $d (run apt-get update?)" >&2; exit 1; }; done
for deb in "$WORK"/debs/*.deb; do dpkg-deb -x "$deb" "$WORK/x"; done

say "Assembling the server tree"
R="$WORK/root"
PGB=usr/lib/postgresql/15/bin
mkdir -p "$R/$PGB" "$R/usr/lib/postgresql/15" "$R/usr/share/postgresql" "$R/usr/bin" "$R/usr/lib/kit" "$R/usr/share"
for b in "${PG_BINS[@]}"; do cp -a "$WORK/x/$PGB/$b" "$R/$PGB/"; done
# Server modules (encodings, plpgsql, snowball); not the JIT, which needs LLVM.
cp -a "$WORK/x/usr/lib/postgresql/15/lib" "$R/usr/lib/postgresql/15/"
rm -rf "$R/usr/lib/postgresql/15/lib/bitcode" "$R/usr/lib/postgresql/15/lib/llvmjit"* "$R/usr/lib/postgresql/15/lib/pgxs"
cp -a "$WORK/x/usr/share/postgresql/15" "$R/usr/share/postgresql/"
rm -rf "$R/usr/share/postgresql/15/man"
# Only plpgsql, which initdb installs; the site's migrations create no extension.
find "$R/usr/share/postgresql/15/extension" -type f ! -name 'plpgsql*' -delete
cp -a "$WORK/x/usr/bin/redis-check-rdb" "$WORK/x/usr/bin/redis-cli" "$R/usr/bin/"
ln -s redis-check-rdb "$R/usr/bin/redis-server"   # the same program, as Debian ships it
cp -a "$WORK/x/usr/share/zoneinfo" "$R/usr/share/"
rm -rf "$R/usr/share/zoneinfo/right" "$R/usr/share/zoneinfo/posix" "$R/usr/share/zoneinfo/localtime"
for lib in libpq.so.5 libicuuc.so.72 libicui18n.so.72 libicudata.so.72 libldap-2.5.so.0 liblber-2.5.so.0 \
           libsasl2.so.2 libxml2.so.2 libgssapi_krb5.so.2 libkrb5.so.3 libk5crypto.so.3 libkrb5support.so.0 \
           libcom_err.so.2 libkeyutils.so.1 libjemalloc.so.2 liblzf.so.1 libatomic.so.1; do
  src="$(find "$WORK/x" -name "$lib" | head -1)"
  [ -n "$src" ] || { echo "$lib is in none of the packages" >&2; exit 1; }
  cp -L "$src" "$R/usr/lib/kit/$lib"
done
# Debian's PostgreSQL reads time zones from /usr/share/zoneinfo, which a slim image may not have, and
# nothing may be written outside /tmp on the GPU host: point the server at a fixed path of the same
# length or shorter, which the services script links to the zoneinfo carried here.
python3 - "$R/$PGB/postgres" "$R/$PGB/initdb" <<'EOF'
import sys
old, new = b"\0/usr/share/zoneinfo\0", b"\0/tmp/.kit-zoneinfo\0"
new = new + b"\0" * (len(old) - len(new))
for path in sys.argv[1:]:
    data = open(path, "rb").read()
    if data.count(old) != 1:
        sys.exit(f"{path}: expected one zoneinfo path, found {data.count(old)}")
    open(path, "wb").write(data.replace(old, new))
EOF
find "$R/usr/lib" "$R/usr/bin" "$R/$PGB" -type f \( -name '*.so*' -o -perm -u+x \) -exec strip --strip-unneeded {} + 2>/dev/null || true
find "$R" -type l -lname '/*' -print | while read -r l; do
  echo "absolute link left in the tree: $l -> $(readlink "$l")" >&2; exit 1; done

say "Packing"
chmod 755 "$WORK/site" "$R"
rm -f "$KIT"/*.tar.xz "$KIT"/MANIFEST
# Solid xz with a large window: the trees are ~3x smaller than their wheels and debs.
tar -C "$WORK/site" --owner=0 --group=0 --numeric-owner --sort=name -cf - . | xz -9e -T0 > "$KIT/site.tar.xz"
tar -C "$R" --owner=0 --group=0 --numeric-owner --sort=name -cf - . | xz -9e -T0 > "$KIT/root.tar.xz"
{
  echo "# built $(date -u +%FT%TZ) from $(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)"
  (cd "$WORK/wheels" && ls *.whl) | sed 's/^/wheel /'
  (cd "$WORK/debs" && ls *.deb) | sed 's/^/deb /'
  (cd "$KIT" && sha256sum site.tar.xz root.tar.xz)
} > "$KIT/MANIFEST"
size_kib="$(du -sk "$KIT" | cut -f1)"
say "Kit: $(du -sh "$KIT" | cut -f1) in $KIT (site $(du -h "$KIT/site.tar.xz" | cut -f1), root $(du -h "$KIT/root.tar.xz" | cut -f1))"
if [ "$size_kib" -gt $((MAX_MIB * 1024)) ]; then
  echo "The kit is over ${MAX_MIB} MiB" >&2; exit 1
fi
