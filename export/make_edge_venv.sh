#!/usr/bin/env bash
# Create (once) a virtualenv WITHOUT TensorFlow holding only what export/edge_demo.py needs:
# ai-edge-litert, numpy, soundfile (from PyPI, at the versions in requirements/lock.txt). Prints the venv's python. Idempotent and cached:
# re-running only checks the imports. Location: $TFSONIFY_EDGE_VENV or ${TMPDIR:-/tmp}/tfsonify-edge-venv.
set -euo pipefail
VENV="${TFSONIFY_EDGE_VENV:-${TMPDIR:-/tmp}/tfsonify-edge-venv}"
check='import ai_edge_litert.interpreter, numpy, soundfile, importlib.util, sys; sys.exit(importlib.util.find_spec("tensorflow") is not None)'
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "$check" 2>/dev/null; then
  rm -rf "$VENV.partial"
  python3 -m venv "$VENV.partial"
  # the versions the project's lock records (the same the tests use), when the lock is there
  lock="$(dirname "$0")/../requirements/lock.txt"
  constraints=(); [ -f "$lock" ] && constraints=(-c "$lock")
  "$VENV.partial/bin/python" -m pip install -q --disable-pip-version-check "${constraints[@]}" ai-edge-litert numpy soundfile 2>&1 \
    | grep -v "Running pip as the 'root' user\|is ignored: it is neither" || true
  "$VENV.partial/bin/python" -c "$check"
  rm -rf "$VENV"
  mv "$VENV.partial" "$VENV"
fi
echo "$VENV/bin/python"
