"""Before/after in one run: a git commit's tfsonify extracted beside this checkout, and runs alternated between them.

``python benchmarks/NAME.py --compare REF`` uses these helpers: :func:`extract` unpacks ``git archive REF`` into a
temporary folder, :func:`run_in` runs a benchmark script in a fresh interpreter importing that tree's ``tfsonify``
(``PYTHONPATH``), and :func:`ratio_line` prints this/REF of neighbouring runs. On a shared machine the load changes
during a run, so compare the ratios of neighbouring runs, not absolute times.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def extract(ref: str, folder: Path) -> Path:
    """``git archive REF`` of this repository (or of ``$LONG_BENCH_GIT``, when this copy is itself an extract) unpacked
    into ``folder/REF`` (the tfsonify of that commit)."""
    target = folder / ref
    target.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", os.environ.get("LONG_BENCH_GIT", str(REPO)), "archive", ref], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def run_in(tree: Path, script: str, *args: str, env_var: str = "LONG_BENCH_TREE") -> dict:
    """``python script *args`` in a fresh interpreter importing ``tree``'s tfsonify; the JSON object on its last line."""
    env = {**os.environ, env_var: str(tree), "PYTHONPATH": str(tree) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    result = subprocess.run([sys.executable, script, *args], capture_output=True, text=True, cwd=tree, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"{Path(script).name} {args} on {tree} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def ratio_line(ref: str, pairs: list[tuple[float, float]], width: int = 30) -> str:
    """``this/REF`` of each (REF, this) pair of neighbouring runs and their median (> 1 = this is slower)."""
    ratios = [new / old for old, new in pairs]
    return (f"{'':{width}s} ratio this/{ref}: " + ", ".join(f"{r:.3f}" for r in ratios)
            + f" (median {sorted(ratios)[len(ratios) // 2]:.3f})")
