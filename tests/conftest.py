"""Shared fixtures: small CNN12 models with fixed seeds and short real-ish clips."""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# Property-based tests (tests/test_faults_*.py). `ci`, the default: derandomised (the same examples every run, so a
# failure reproduces), few examples per property, no per-example deadline (a shared machine is not a benchmark).
# `long`: random examples, many of them; benchmarks/fuzz_bench.py runs it (HYPOTHESIS_PROFILE=long selects it here).
settings.register_profile("ci", derandomize=True, max_examples=40, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.register_profile("long", max_examples=2000, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def tiny_model():
    """CNN12 at 1/16 width with random (non-zero) biases, fixed seed."""
    from tiny import tiny_cnn12

    return tiny_cnn12(1234)


@pytest.fixture(scope="session")
def clip():
    """A 0.6 s clip at 8 kHz: a chirp plus noise bursts, deterministic."""
    rng = np.random.default_rng(7)
    t = np.arange(4801) / 8000.0
    chirp = np.sin(2 * np.pi * (200 + 1500 * t) * t)
    bursts = rng.normal(0, 0.3, t.size) * (np.sin(2 * np.pi * 3 * t) > 0.5)
    return (0.4 * chirp + bursts).astype("float32")


@pytest.fixture(scope="module")
def sonifier(tiny_model):
    """A Sonifier of ``tiny_model`` (one per test module)."""
    import tfsonify

    return tfsonify.Sonifier(tiny_model)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory, tiny_model):
    """``tiny_model`` saved as a .keras file (one per test module)."""
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    tiny_model.save(path)
    return path
