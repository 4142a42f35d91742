"""Property-based tests (hypothesis, issue 26): every example given to the public API and the CLI's argument parsers
ends in a correct result or a ``ValueError`` whose message names the argument; nothing else (no TypeError, no
crash, no NaN in a result).

Profiles (tests/conftest.py): ``ci`` (default; derandomised, few examples per property) and ``long``
(``benchmarks/fuzz_bench.py``). One tiny CNN12 per module; waveform lengths come from a small fixed set so the
sonifier's graphs are traced a few times only.
"""
from __future__ import annotations

import argparse
import io
from collections import Counter

import numpy as np
import pytest
import soundfile
from hypothesis import assume, given
from hypothesis import strategies as st

from tfsonify.commands.analyze import parse_layers
from tfsonify.commands.sonify import _layer, _window_seconds

LENGTHS = (0, 1, 41, 42, 257, 300, 2400)  # around block 3's 42 and block 6's 258; 2400 fits block 11 (2370)
LAYERS = (1, 3, 6, 11, np.int64(3), "conv3", "pool1", 0, 12, -1, "nope", "", 2.5, True, None)
DTYPES = ("float32", "float64", "int16", "bool", "int64", "float16")

#: what each argument's ValueError must mention (lower case)
NAMES = {"waveform": ("waveform", "clip has"), "layer": ("layer",), "feature": ("feature",), "k": ("k must",),
         "window_seconds": ("window_seconds",)}


@st.composite
def waveforms(draw, lengths=LENGTHS):
    """Arrays a user might pass: any of :data:`DTYPES`, [time] or [batch, time], sometimes non-contiguous (a
    strided view), sometimes with NaN/Inf or huge amplitudes, or a plain list."""
    length = draw(st.sampled_from(lengths))
    batch = draw(st.sampled_from([None, 1, 2]))
    dtype = draw(st.sampled_from(DTYPES))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    shape = (length,) if batch is None else (batch, length)
    scale = draw(st.sampled_from([1e-30, 1e-3, 0.5, 1.0, 1e4, 3e38]))
    data = rng.normal(0, 1, shape) * scale
    if dtype == "bool":
        array = data > 0
    elif dtype.startswith("int"):
        info = np.iinfo(dtype)
        array = np.clip(data * 1e4, info.min, info.max).astype(dtype)
    else:
        with np.errstate(over="ignore"):
            array = data.astype(dtype)
    if length and draw(st.booleans()) and np.issubdtype(array.dtype, np.floating):
        array = array.copy()
        array.reshape(-1)[draw(st.integers(0, array.size - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    if draw(st.booleans()):  # a strided, non-contiguous view of the same samples
        doubled = np.repeat(array, 2, axis=-1)
        array = doubled[..., ::2]
        assert not array.flags.c_contiguous or array.size <= 1
    if draw(st.integers(0, 9)) == 0:
        return array.tolist()
    return array


TALLY: Counter = Counter()
"""(property, outcome) -> examples: "result" or the exception type's name (benchmarks/fuzz_bench.py prints it)."""


def tally(prop: str, outcome: str) -> None:
    TALLY[(prop, outcome)] += 1


def assert_names(error: ValueError, *arguments: str) -> None:
    message = str(error).lower()
    assert "\n" not in message, message
    assert any(word in message for argument in arguments for word in NAMES[argument]), (arguments, message)


def plain(waveform) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(waveform, dtype=np.float32))


@given(waveform=waveforms(), layer=st.sampled_from(LAYERS),
       feature=st.sampled_from([0, 1, 3, 4, 7, 8, 127, 128, -1, 10**12, None, 1.0, True]))
def test_sonify_gives_a_result_or_names_the_argument(sonifier, waveform, layer, feature):
    try:
        result = sonifier.sonify(waveform, layer, feature=feature)
    except ValueError as error:
        assert_names(error, "waveform", "layer", "feature")
        tally("sonify", "ValueError")
        return
    array = plain(waveform)
    assert result.shape == array.shape and result.dtype == np.float32 and np.all(np.isfinite(result))
    again = sonifier.sonify(array, layer, feature=feature)  # the same clip as contiguous float32
    np.testing.assert_array_equal(result, again)
    tally("sonify", "result")


@given(waveform=waveforms(), layer=st.sampled_from(LAYERS),
       k=st.sampled_from([1, 2, 4, 5, 8, 9, 16, 17, 128, 129, 0, -1, True, 2.0, None]))
def test_sonify_top_gives_a_result_or_names_the_argument(sonifier, waveform, layer, k):
    try:
        features, scores, sounds = sonifier.sonify_top(waveform, layer, k)
    except ValueError as error:
        assert_names(error, "waveform", "layer", "k")
        tally("sonify_top", "ValueError")
        return
    array = plain(waveform)
    width = sonifier.num_features(layer)
    assert 1 <= k <= width and features.shape[-1] == k and sounds.shape[-1] == array.shape[-1]
    assert np.all((features >= 0) & (features < width)) and np.all(np.isfinite(sounds)) and np.all(np.isfinite(scores))
    assert np.all(np.diff(scores, axis=-1) <= 0)  # most active first
    tally("sonify_top", "result")


@given(waveform=waveforms(lengths=(2400, 4001)), layer=st.sampled_from([1, 3, 6, 0, "nope"]),
       window=st.sampled_from([0.05, 0.1, 0.25, "auto", None, 0.0, -1.0, float("nan"), float("inf"), "x", 1e-9]))
def test_long_clip_windows_give_the_one_pass_result_or_name_the_argument(sonifier, waveform, layer, window):
    """Exact windows (``window_seconds``) equal the one-pass result; bad window lengths are named."""
    try:
        windowed = sonifier.sonify(waveform, layer, feature=0, window_seconds=window)
    except ValueError as error:
        assert_names(error, "waveform", "layer", "window_seconds")
        tally("long_clip", "ValueError")
        return
    whole = sonifier.sonify(plain(waveform), layer, feature=0, window_seconds=None)
    np.testing.assert_allclose(windowed, whole, rtol=1e-4, atol=1e-5 * max(1e-30, float(np.max(np.abs(whole)))))
    tally("long_clip", "result")


@given(dtype=st.sampled_from(["int16", "int32", "int64", "uint8"]), seed=st.integers(0, 2**16),
       batch=st.sampled_from([None, 2]), as_list=st.booleans(), layer=st.sampled_from([1, 3, 6]))
def test_integer_pcm_is_refused_and_scaled_pcm_windows_match_one_pass(sonifier, dtype, seed, batch, as_list, layer):
    """Issue 26: a full-scale int64 clip (~9.2e18) gave long-clip windows up to 6 % off the one-pass result. Integer
    arrays (or lists of ints) are refused with the full scale to divide by; the same samples divided by it (what
    soundfile gives) sonify through windows exactly as in one pass."""
    info = np.iinfo(dtype)
    shape = (4001,) if batch is None else (batch, 4001)
    data = np.random.default_rng(seed).normal(0, 1, shape) * 4.0  # |x| > 1 clips: a saturated, full-scale clip
    pcm = np.clip(np.round(data * (info.max / 2)), info.min, info.max).astype(dtype)
    half = info.bits - 1
    named, bits = ("int64", 63) if as_list else (dtype, half)  # a list of Python ints is read as int64
    with pytest.raises(ValueError, match=rf"waveform must be floating-point.*dtype {named}.*2\*\*{bits}"):
        sonifier.sonify(pcm.tolist() if as_list else pcm, layer, feature=0, window_seconds=0.1)
    offset = 0 if info.min < 0 else 2**half
    scaled = ((pcm.astype(np.float64) - offset) / 2**half).astype(np.float32)
    windowed = sonifier.sonify(scaled, layer, feature=0, window_seconds=0.1)
    whole = sonifier.sonify(scaled, layer, feature=0, window_seconds=None)
    np.testing.assert_allclose(windowed, whole, rtol=1e-4, atol=1e-5 * max(1e-30, float(np.max(np.abs(whole)))))
    tally("integer_pcm", "ValueError")


@given(rate=st.sampled_from([8000, 16000, 44100, 31, 32, 2_048_000, 2_048_001, 1, 7]),
       target=st.sampled_from([8000, 16000, 0, -8000]),
       frames=st.sampled_from([0, 1, 2, 101]), channels=st.sampled_from([1, 2, 3]),
       subtype=st.sampled_from(["PCM_16", "PCM_24", "FLOAT", "DOUBLE", "PCM_U8"]),
       special=st.sampled_from([None, np.nan, np.inf]))
def test_decode_audio_gives_samples_or_a_one_line_error(rate, target, frames, channels, subtype, special):
    """In-memory files (``decode_audio``, what ``load_audio`` and uploads call): any rate, channel count, length and
    sample format decode to finite mono float32 at the target rate, or a one-line ``ValueError``."""
    from tfsonify.io.audio import decode_audio

    data = np.random.default_rng(frames).uniform(-0.9, 0.9, (frames, channels))
    if special is not None and frames and subtype in ("FLOAT", "DOUBLE"):
        data[0, 0] = special
    buffer = io.BytesIO()
    try:
        soundfile.write(buffer, data, rate, subtype=subtype, format="WAV")
    except (soundfile.LibsndfileError, RuntimeError, ValueError):
        assume(False)  # not a file libsndfile writes (e.g. U8 in WAV is fine, rates above its limit are not)
    buffer.seek(0)
    try:
        mono = decode_audio(buffer, "clip.wav", target)
    except ValueError as error:
        message = str(error)
        assert "\n" not in message and ("clip.wav" in message or "sample rate" in message), message
        tally("decode_audio", "ValueError")
        return
    assert mono.dtype == np.float32 and mono.ndim == 1 and np.all(np.isfinite(mono))
    if rate == target:
        assert mono.size == frames
    else:
        assert abs(mono.size - frames * target / rate) <= 1
    tally("decode_audio", "result")


@given(text=st.one_of(st.text(alphabet="0123456789,-: abcv_", max_size=12),
                      st.sampled_from(["1,4,8-11", "11-1", "conv4,6", "-", ",", "1--3", "0", "99999999999999999999"])))
def test_cli_layer_lists_parse_or_name_the_option(text):
    try:
        layers = parse_layers(text)
    except ValueError as error:
        assert str(error).startswith("--layers must look like") and repr(text) in str(error)
        return
    if not text:
        assert layers is None
        return
    assert layers is not None
    for layer in layers:
        assert (isinstance(layer, int) and layer >= 0) or (isinstance(layer, str) and layer and not layer[0].isdigit())


@given(text=st.one_of(st.text(max_size=8), st.sampled_from(["auto", "AUTO", " 0 ", "0", "5", "1e-3", "-1", "nan",
                                                              "inf", "-0", "1e400", "0x10"])))
def test_cli_window_seconds_parse_or_say_what_is_expected(text):
    try:
        value = _window_seconds(text)
    except argparse.ArgumentTypeError as error:
        assert "expected a number of seconds" in str(error) and repr(text) in str(error)
        return
    assert value == "auto" or value is None or (isinstance(value, float) and 0 < value < float("inf"))


@given(text=st.text(max_size=10))
def test_cli_layer_argument_is_an_index_or_a_name(text):
    value = _layer(text)
    assert (isinstance(value, int) and text.strip().isdigit()) or value == text


pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # float16 overflow of the 3e38 examples
