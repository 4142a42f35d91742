#!/usr/bin/env bash
# Refresh requirements/lock.txt: the exact versions scripts/setup.sh installs (and CI tests), resolved from the
# ranges in pyproject.toml for every extra the set-up installs. Run after changing a dependency, then run the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/versions.sh
python3 -m pip install -q --disable-pip-version-check "uv==$UV_VERSION" 2>&1 | { grep -v "Running pip as the 'root' user" || true; }
python3 -m uv pip compile -q --no-python-downloads pyproject.toml $(printf -- '--extra %s ' "${EXTRAS[@]}") --universal --python-version 3.10 \
  --no-header --upgrade -o requirements/lock.txt
