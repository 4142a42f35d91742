#!/usr/bin/env bash
# Order-dependence check (issue 11): every test file alone, then the whole suite in a shuffled order.
#   bash scripts/test_isolation.sh            # both parts (about twice the suite's time)
#   bash scripts/test_isolation.sh alone      # each file in its own pytest process
#   bash scripts/test_isolation.sh shuffled [SEED]   # the suite once, shuffled by pytest-randomly
# A test that passes or fails depending on what ran before it is a defect; the seed pytest-randomly prints
# reproduces a shuffled failure (`.venv/bin/python -m pytest -p randomly --randomly-seed=SEED`).
set -uo pipefail
cd "$(dirname "$0")/.."
python=${TFSONIFY_VENV:-.venv}/bin/python
part=${1:-all}
status=0

if [ "$part" = all ] || [ "$part" = alone ]; then
  failed=()
  for file in tests/test_*.py; do
    if "$python" -m pytest -q -p no:cacheprovider "$file" > /tmp/tfsonify-alone.log 2>&1; then
      echo "alone ok    $file"
    else
      echo "alone FAIL  $file"; tail -n 30 /tmp/tfsonify-alone.log; failed+=("$file")
    fi
  done
  [ ${#failed[@]} -eq 0 ] || { echo "failed alone: ${failed[*]}"; status=1; }
fi

if [ "$part" = all ] || [ "$part" = shuffled ]; then
  seed=${2:-$RANDOM}
  "$python" -m pytest -q -p no:cacheprovider -p randomly --randomly-seed="$seed" || { echo "shuffled run failed (seed $seed)"; status=1; }
fi
exit $status
