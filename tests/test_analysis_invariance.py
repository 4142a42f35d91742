"""Time invariance (Figure B.3): pool-aligned shifts give exactly shifted sonifications; others are reported."""
from __future__ import annotations

import numpy as np
import pytest

from tfsonify.analysis.invariance import pool_period, time_invariance


def test_pool_period(tiny_model):
    """CNN12's stride: 2 ** (pooled blocks up to the layer), read from the walk of the model, not a table."""
    assert [pool_period(layer, tiny_model) for layer in (1, 3, 8, 9, 11)] == [2, 8, 256, 256, 256]


@pytest.mark.parametrize("layer", [3, 9])
def test_aligned_shifts_are_exact_and_misaligned_are_not(tiny_model, layer):
    import tfsonify

    sonifier = tfsonify.Sonifier(tiny_model)
    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.3, 7000).astype("float32")
    x[5000] = 2.0  # the peak survives every shift, so peak normalisation is unchanged
    period = pool_period(layer, sonifier)
    checks = time_invariance(sonifier, x, layer, shifts=[period, 2 * period, period + 1, 3])
    assert [c.aligned for c in checks] == [True, True, False, False]
    assert all(c.peak_kept for c in checks)
    for check in checks[:2]:
        assert check.max_error < 1e-5, check
    for check in checks[2:]:
        assert check.max_error > 1e-2, check  # alignment broken: different pool winners


def test_bad_input(tiny_model):
    import tfsonify

    sonifier = tfsonify.Sonifier(tiny_model)
    with pytest.raises(ValueError, match="needs at least"):
        time_invariance(sonifier, np.ones(3000, np.float32), 11, shifts=[256])
    with pytest.raises(ValueError, match="positive"):
        time_invariance(sonifier, np.ones(3000, np.float32), 2, shifts=[0])
