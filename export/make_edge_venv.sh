#!/usr/bin/env bash
# Create (once) a virtualenv WITHOUT TensorFlow holding only what tfsonify/edge/demo.py needs:
# ai-edge-litert, numpy, soundfile (from PyPI, at the versions in requirements/lock.txt). Prints the venv's python. Idempotent and cached:
# re-running only checks the imports and that it was built from the current lock. Location: $TFSONIFY_EDGE_VENV or
# .venv-edge/ beside the project's .venv (a fresh clone gets a fresh one).
set -euo pipefail
VENV="${TFSONIFY_EDGE_VENV:-$(cd "$(dirname "$0")/.." && pwd)/.venv-edge}"
check='import ai_edge_litert.interpreter, numpy, soundfile, importlib.util, sys; sys.exit(importlib.util.find_spec("tensorflow") is not None)'
lock="$(cd "$(dirname "$0")/.." && pwd)/requirements/lock.txt"
stamp=none; [ -f "$lock" ] && stamp=$(sha256sum "$lock" | cut -d' ' -f1)
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "$check" 2>/dev/null || [ "$(cat "$VENV/lock.sha256" 2>/dev/null)" != "$stamp" ]; then
  rm -rf "$VENV.partial"
  python3 -m venv "$VENV.partial"
  # the versions the project's lock records (the same the tests use), when the lock is there: installed with uv, which
  # reads the universal lock as scripts/setup.sh does (pip rejects some of its pins as constraints)
  if [ -f "$lock" ]; then
    source "$(dirname "$lock")/../scripts/versions.sh"
    "$VENV.partial/bin/python" -m pip install -q --disable-pip-version-check "uv==$UV_VERSION" 2>&1 \
      | grep -v "Running pip as the 'root' user\|is ignored: it is neither" || true
    "$VENV.partial/bin/python" -m uv pip install -q --python "$VENV.partial/bin/python" -c "$lock" ai-edge-litert numpy soundfile
  else
    "$VENV.partial/bin/python" -m pip install -q --disable-pip-version-check ai-edge-litert numpy soundfile 2>&1 \
      | grep -v "Running pip as the 'root' user\|is ignored: it is neither" || true
  fi
  "$VENV.partial/bin/python" -c "$check"
  echo "$stamp" > "$VENV.partial/lock.sha256"
  rm -rf "$VENV"
  mv "$VENV.partial" "$VENV"
fi
echo "$VENV/bin/python"
