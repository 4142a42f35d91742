#!/usr/bin/env bash
# Create (once) a virtualenv WITHOUT TensorFlow holding exactly what `pip install 'tfsonify[lite]'` pulls for the edge
# runtime (python -m tfsonify.edge): the base dependencies plus the [lite] extra, read from pyproject.toml (today
# numpy, soundfile, soxr, tqdm, ai-edge-litert), at the versions in requirements/lock.txt. Prints the venv's python.
# The package itself comes from PYTHONPATH (the checkout). Idempotent and cached: re-running only checks the imports
# and that it was built from the current lock and pyproject. Location: $TFSONIFY_EDGE_VENV or .venv-edge/ beside the
# project's .venv (a fresh clone gets a fresh one).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${TFSONIFY_EDGE_VENV:-$ROOT/.venv-edge}"
check='import ai_edge_litert.interpreter, numpy, soundfile, soxr, importlib.util, sys; sys.exit(importlib.util.find_spec("tensorflow") is not None)'
lock="$ROOT/requirements/lock.txt"
stamp=$(cat "$ROOT/pyproject.toml" "$lock" 2>/dev/null | sha256sum | cut -d' ' -f1)
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "$check" 2>/dev/null || [ "$(cat "$VENV/lock.sha256" 2>/dev/null)" != "$stamp" ]; then
  rm -rf "$VENV.partial"
  python3 -m venv "$VENV.partial"
  # the requirements of `tfsonify[lite]`, from pyproject.toml (tomllib: Python >= 3.11; tomli otherwise)
  mapfile -t packages < <("$VENV.partial/bin/python" - "$ROOT/pyproject.toml" <<'PY'
import sys
try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
print("\n".join(project["dependencies"] + project["optional-dependencies"]["lite"]))
PY
)
  # the versions the project's lock records (the same the tests use), when the lock is there: installed with uv, which
  # reads the universal lock as scripts/setup.sh does (pip rejects some of its pins as constraints)
  if [ -f "$lock" ]; then
    source "$ROOT/scripts/versions.sh"
    "$VENV.partial/bin/python" -m pip install -q --disable-pip-version-check "uv==$UV_VERSION" 2>&1 \
      | grep -v "Running pip as the 'root' user\|is ignored: it is neither" || true
    "$VENV.partial/bin/python" -m uv pip install -q --compile-bytecode --python "$VENV.partial/bin/python" -c "$lock" "${packages[@]}"
  else
    "$VENV.partial/bin/python" -m pip install -q --disable-pip-version-check "${packages[@]}" 2>&1 \
      | grep -v "Running pip as the 'root' user\|is ignored: it is neither" || true
  fi
  "$VENV.partial/bin/python" -c "$check"
  echo "$stamp" > "$VENV.partial/lock.sha256"
  rm -rf "$VENV"
  mv "$VENV.partial" "$VENV"
fi
echo "$VENV/bin/python"
