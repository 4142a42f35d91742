"""The window planner and the stream engine (tfsonify/engine/windows.py, numpy only), on a local numpy 'deconvnet'.

``local_raw`` has exactly the locality of a deconvnet: step ``i`` sees ``x[S*i : S*i+R]`` through a ReLU unit and
writes a fixed pattern back onto those samples only. Windowed and streamed outputs must equal one pass over
the whole signal for any geometry (strides that are not powers of 2, stride 1, stride = receptive field).
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tfsonify.engine import windows

REPO = Path(__file__).resolve().parents[1]
GEOMETRIES = [(8, 2), (162, 32), (2370, 256), (10, 3), (5, 1), (12, 12), (37, 4)]


def local_raw(field: int, stride: int, maps: int = 2, seed: int = 0):
    """A locality-exact raw reconstruction ``[n] -> [maps, n]`` for geometry ``(field, stride)``."""
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(maps, field)).astype(np.float32)
    pattern = rng.normal(size=(maps, field)).astype(np.float32)

    def raw(window: np.ndarray) -> np.ndarray:
        window = np.asarray(window, np.float32)
        out = np.zeros((maps, window.size), np.float32)
        steps = windows.output_length(window.size, field, stride)
        for i in range(steps):
            piece = window[stride * i:stride * i + field]
            activation = np.maximum(weights @ piece - 0.1, 0.0)
            out[:, stride * i:stride * i + field] += activation[:, None] * pattern
        return out

    def peaks(window: np.ndarray) -> np.ndarray:
        window = np.asarray(window, np.float32)
        steps = windows.output_length(window.size, field, stride)
        frames = np.stack([weights @ window[stride * i:stride * i + field] for i in range(steps)])
        return np.maximum(frames - 0.1, 0.0).max(axis=0)

    return raw, peaks


def signal(length: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 0.3, length).astype(np.float32)


@pytest.mark.parametrize("field, stride", GEOMETRIES)
def test_plan_tiles_with_aligned_starts_inside_exact_spans(field, stride):
    window = windows.min_window_length(field, stride) + 3 * stride + 1
    for length in (window + stride, 3 * window + 7, 10 * window + 1):
        plan = windows.plan_windows(length, window, field, stride)
        assert plan.keep[0][0] == 0 and plan.keep[-1][1] == length
        assert all(a[1] == b[0] for a, b in zip(plan.keep, plan.keep[1:]))
        assert all(start % stride == 0 for start in plan.starts) and len(plan.starts) >= 2
        for index, w in enumerate(plan.windows):
            assert w.stop - w.start == plan.effective_length <= window and w.stop <= length
            assert index == 0 or w.begin >= w.start + plan.margin
            assert index == len(plan.starts) - 1 or w.end <= w.stop - plan.margin
        firsts = plan.step_keep()
        assert firsts[0][0] == 0 and firsts[-1][1] == plan.num_steps == windows.output_length(length, field, stride)
        assert all(a[1] == b[0] for a, b in zip(firsts, firsts[1:]))


@pytest.mark.parametrize("field, stride", GEOMETRIES)
def test_windows_equal_one_pass(field, stride):
    raw, peaks = local_raw(field, stride)
    window = windows.min_window_length(field, stride) + 2 * stride
    x = signal(7 * window + 5)
    whole = raw(x)
    plan = windows.plan_windows(x.size, window, field, stride)
    stitched = windows.windowed_reconstruction(x, plan, raw)
    np.testing.assert_allclose(stitched, whole, atol=1e-5 * np.abs(whole).max())
    np.testing.assert_allclose(windows.max_over_windows(plan, lambda a, b: x[a:b], peaks), peaks(x), rtol=1e-6)
    single = windows.single_window_plan(x.size, field, stride)
    np.testing.assert_allclose(windows.windowed_reconstruction(x, single, raw), whole, atol=1e-6)


@pytest.mark.parametrize("field, stride", GEOMETRIES)
def test_balanced_windows_are_shorter_never_more_and_exact(field, stride):
    """A window budget (``balanced=True``): no more windows than the budget needs, less work, the same result."""
    raw, peaks = local_raw(field, stride)
    budget = windows.min_window_length(field, stride) + 9 * stride
    for length in (budget + stride, 2 * budget + 1, 2 * budget - stride, 5 * budget + 3):
        fixed = windows.plan_windows(length, budget, field, stride)
        plan = windows.plan_windows(length, budget, field, stride, balanced=True)
        assert len(plan.starts) <= len(fixed.starts)
        assert plan.effective_length <= fixed.effective_length and plan.window_length <= budget
        assert len(plan.starts) * plan.effective_length <= len(fixed.starts) * fixed.effective_length
        assert plan.keep[0][0] == 0 and plan.keep[-1][1] == length
        assert all(start % stride == 0 for start in plan.starts)
        assert all(w.stop <= length for w in plan.windows)
        x = signal(length, seed=length)
        whole = raw(x)
        np.testing.assert_allclose(windows.windowed_reconstruction(x, plan, raw), whole, atol=1e-5 * np.abs(whole).max())
        np.testing.assert_allclose(windows.max_over_windows(plan, lambda a, b: x[a:b], peaks), peaks(x), rtol=1e-6)
    ten_seconds = windows.plan_windows(80000, 40000, 834, 256, balanced=True)  # CNN12 block 8, 10 s in 5 s windows
    assert len(ten_seconds.starts) == 3 and len(ten_seconds.starts) * ten_seconds.effective_length < 1.05 * 80000


@pytest.mark.parametrize("field, stride", [(10, 3), (162, 32)])
def test_one_sample_less_margin_is_not_exact(field, stride):
    """Keeping one stride more of each inner window edge than the margin allows changes the result."""
    raw, _ = local_raw(field, stride)
    window = windows.min_window_length(field, stride) + 2 * stride
    x = signal(6 * window)
    plan = windows.plan_windows(x.size, window, field, stride)
    keep = [(b - (stride if i else 0), e) for i, (b, e) in enumerate(plan.keep)]
    narrow = windows.WindowPlan(plan.clip_length, plan.window_length, plan.effective_length, plan.margin, plan.starts,
                                tuple(keep), field, stride)
    pieces = []
    windows.stitch_reconstruction(narrow, lambda a, b: x[a:b], raw, lambda begin, span: pieces.append((begin, span)))
    out = np.zeros_like(raw(x))
    for begin, span in pieces:
        out[:, begin:begin + span.shape[1]] = span
    assert np.abs(out - raw(x)).max() > 1e-3 * np.abs(raw(x)).max()


def test_span_input_and_hops():
    assert windows.span_input(0, 256, 2370, 256, 10 ** 6) == (0, 2370)
    start, stop = windows.span_input(2560, 2816, 2370, 256, 10 ** 6)
    assert start % 256 == 0 and start <= 2560 - 2370 + 256 and stop == 2816 - 256 + 2370
    assert windows.span_input(0, 100, 2370, 256, 2000) is None  # no step fits
    assert windows.span_input(5000, 5100, 2370, 256, 5000) is None  # past the last step
    hop = windows.max_stream_hop(8000, 2370, 256)
    assert hop == 3328 and hop + 4418 <= 8000 < hop + 256 + 4418
    with pytest.raises(ValueError, match="cannot stream"):
        windows.max_stream_hop(3000, 2370, 256)


def test_bad_plans_raise():
    with pytest.raises(ValueError, match="too short for exact windows.*at least 4674"):
        windows.plan_windows(20000, 4000, 2370, 256)
    with pytest.raises(ValueError, match="clip has 7000 samples.*at least 7746"):
        windows.plan_windows(7000, 8000, 2370, 256)
    with pytest.raises(ValueError, match="stride .* larger than the receptive field"):
        windows.plan_windows(20000, 8000, 4, 8)
    for bad in (0, -3, 2.5, True, None):
        with pytest.raises(ValueError, match="positive integer"):
            windows.plan_windows(20000, bad, 162, 32)
    with pytest.raises(ValueError, match="receptive field is 2370"):
        windows.single_window_plan(1000, 2370, 256)


def _stream_all(stream, x, sizes):
    outs, position, index = [], 0, 0
    while position < x.size:
        size = sizes[index % len(sizes)]
        block = x[position:position + size]
        out = stream.process(block)
        assert out.shape == (stream.num_maps, block.size)
        outs.append(out)
        position, index = position + size, index + 1
    tail = stream.flush()
    assert tail.shape == (stream.num_maps, stream.latency)
    return np.concatenate(outs + [tail], axis=1)


@pytest.mark.parametrize("field, stride", [(162, 32), (10, 3), (37, 4), (2370, 256)])
@pytest.mark.parametrize("sizes", [[1], [37], [8000], [1, 500, 3, 2999, 8000]])
def test_stream_equals_offline(field, stride, sizes):
    raw, _ = local_raw(field, stride)
    x = signal(13001 if sizes != [1] else 3001)
    reference = np.float32(0.8)
    offline = raw(x / reference)
    peaks = np.abs(offline).max(axis=1)
    stream = windows.WindowedStream(raw, field, stride, 2, reference, peaks)
    assert stream.latency == stream.margin + stream.hop - 1 and stream.hop % stride == 0
    out = _stream_all(stream, x, sizes)
    assert out.shape == (2, x.size + stream.latency) and not np.any(out[:, :stream.latency])
    expected = offline / peaks[:, None] * reference
    np.testing.assert_allclose(out[:, stream.latency:], expected, atol=1e-5 * reference)


@pytest.mark.parametrize("field, stride, window", [(2370, 256, 8000), (162, 32, 8000), (10, 3, 40)])
def test_stream_on_a_fixed_length_model_equals_offline(field, stride, window):
    """A model taking exactly ``window`` samples, fed zero-padded shorter windows (as LiteRT's fixed models)."""
    raw, _ = local_raw(field, stride)

    def fixed(piece):
        assert piece.size <= window
        return raw(np.pad(piece, (0, window - piece.size)))[:, :piece.size]

    for length in (3 * window + 17, window + 5 * stride + 1):
        x = signal(length)
        offline = raw(x)
        stream = windows.WindowedStream(fixed, field, stride, 2, 1.0, 1.0, max_window=window)
        assert stream.hop == windows.max_stream_hop(window, field, stride) or stream.hop < windows.max_stream_hop(window, field, stride)
        out = _stream_all(stream, x, [window // 3 + 1, 1, 7])
        np.testing.assert_allclose(out[:, stream.latency:], offline, atol=1e-5 * np.abs(offline).max())


def test_stream_hop_sets_latency_and_running_peak_is_bounded():
    raw, _ = local_raw(162, 32)
    x = signal(9000)
    for hop, latency in ((32, 130 + 31), (100, 130 + 127), (None, 130 + 511)):
        stream = windows.WindowedStream(raw, 162, 32, 2, 1.0, hop=hop)
        assert stream.latency == latency
        out = _stream_all(stream, x, [256])
        assert np.abs(out).max() <= 1.0 + 1e-6 and np.abs(out).max() > 0.5
    capped = windows.WindowedStream(raw, 2370, 256, 2, 1.0, hop=100000, max_window=8000)
    assert capped.hop == 3328


def test_stream_survives_bad_blocks():
    raw, _ = local_raw(37, 4)
    x = signal(5000)
    good = windows.WindowedStream(raw, 37, 4, 2, 1.0, 1.0)
    expected = _stream_all(good, x, [300])
    stream = windows.WindowedStream(raw, 37, 4, 2, 1.0, 1.0)
    bad_blocks = [
        ((np.ones(10) * 100).astype(np.int16), "dtype int16.*int16"),
        (np.ones((10, 2), np.float32), r"shape \[n\]; received shape \(10, 2\)"),
        (np.array([0.1, np.nan], np.float32), "1 NaN or Inf"),
        (np.array([np.inf, -np.inf, 0.0]), "2 NaN or Inf"),
        (np.array(["a", "b"]), "floating-point"),
        (np.array([1 + 2j]), "complex"),
    ]
    outs = []
    for index, position in enumerate(range(0, x.size, 300)):
        if index < len(bad_blocks):
            block, message = bad_blocks[index]
            with pytest.raises(ValueError, match=message):
                stream.process(block)
        outs.append(stream.process(x[position:position + 300].astype(np.float64)))  # float64 is fine
    outs.append(stream.flush())
    np.testing.assert_array_equal(np.concatenate(outs, axis=1), expected)
    with pytest.raises(ValueError, match="closed"):
        stream.process(x[:10])


def test_stream_failure_inside_the_network_leaves_it_unchanged():
    raw, _ = local_raw(37, 4)
    calls = {"fail": True}

    def flaky(window):
        if calls["fail"]:
            calls["fail"] = False
            raise RuntimeError("device lost")
        return raw(window)

    x = signal(3000)
    stream = windows.WindowedStream(flaky, 37, 4, 2, 1.0, 1.0)
    with pytest.raises(RuntimeError):
        stream.process(x[:2000])
    assert stream.samples_in == 0
    out = np.concatenate([stream.process(x[:2000]), stream.process(x[2000:]), stream.flush()], axis=1)
    reference = _stream_all(windows.WindowedStream(raw, 37, 4, 2, 1.0, 1.0), x, [3000])
    np.testing.assert_array_equal(out, reference)


def test_stream_arguments_are_checked():
    raw, _ = local_raw(37, 4)
    for peak in (0, -1, float("nan"), float("inf"), "loud", None):
        with pytest.raises(ValueError, match="reference_peak"):
            windows.WindowedStream(raw, 37, 4, 2, peak)
    with pytest.raises(ValueError, match="reconstruction_peak"):
        windows.WindowedStream(raw, 37, 4, 2, 1.0, [-1.0, 1.0])
    with pytest.raises(ValueError, match="hop"):
        windows.WindowedStream(raw, 37, 4, 2, 1.0, hop=0)
    short = windows.WindowedStream(raw, 37, 4, 2, 1.0, 1.0)  # a stream shorter than the receptive field: silence
    out = np.concatenate([short.process(signal(20)), short.flush()], axis=1)
    assert out.shape == (2, 20 + short.latency) and not np.any(out)


def test_windows_imports_without_tensorflow():
    code = ("import sys; import tfsonify.engine.windows; "
            "sys.exit('tensorflow' in sys.modules or 'keras' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-2000:]
