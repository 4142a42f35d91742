"""Shared by the zoo battery's files: in-process CLI runs and one TFLite export per model (the per-model
fixture ``zoo`` is in ``conftest.py``).

Module-scoped per model: the model is saved once (with its geometry, rate and class names), its clips written once,
and the surfaces share them. Clips are 0.6 s at the model's own rate; the 10-minute cases live in the benchmarks.
CLI commands run in process through :func:`tfsonify.cli.main` (the same parser and error handling as the shell,
without a TensorFlow start-up per command). The battery is two files (surfaces; exported artefacts) so that
``pytest -n 2 --dist loadfile`` runs them on both workers.
"""
from __future__ import annotations

from pathlib import Path


def run(*argv) -> int:
    from tfsonify.cli import main

    return main([str(a) for a in argv])


def tag(layer) -> str:
    return str(layer) if isinstance(layer, str) else f"L{layer:02d}"


def exported_tflite(zoo) -> Path:
    """``tfsonify export tflite`` of the zoo model's layer (top 2), once per model and test module."""
    path = zoo.root / "zoo.tflite"
    if not path.exists():
        assert run("export", "tflite", zoo.path, "--out", path, "--layers", zoo.layer, "--top", 2) == 0
    return path
