#!/usr/bin/env bash
# Set up everything tfsonify needs on a fresh Debian machine (root or sudo): system packages, then the
# package itself with its extras. Idempotent; safe to run before every command.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: libsndfile for soundfile; real audio for the demo data and tests.
APT_PACKAGES=(
  libsndfile1 sox espeak-ng hydrogen-drumkits
  flite fluidsynth fluid-soundfont-gm sonic-pi-samples  # demo data: ~0.3 + 0.1 + 120 + 22 MB downloads
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

python3 -m pip install -q --disable-pip-version-check -e ".[dev,lite,serving,demo]" 2>&1 | { grep -v "Running pip as the 'root' user" || true; }
python3 -c "import tfsonify" || { echo "setup: tfsonify failed to import" >&2; exit 1; }
# TensorFlow-free virtualenv (ai-edge-litert, numpy, soundfile) for export/edge_demo.py and its test.
bash export/make_edge_venv.sh >/dev/null
