import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import soundfile

import tfsonify
from tfsonify.cli import main


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    keras.utils.set_random_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    tfsonify.CNN12(width_multiplier=0.0625, num_classes=3).save(path)
    return path


@pytest.fixture(scope="module")
def wav(tmp_path_factory, clip):
    path = tmp_path_factory.mktemp("audio") / "clip.wav"
    soundfile.write(str(path), np.stack([clip, clip], 1), 16000)  # stereo at 16 kHz: downmixed, resampled
    return path


def test_sonify_top_writes_everything(tmp_path, model_file, wav):
    out = tmp_path / "out"
    assert main(["sonify", str(wav), "--model", str(model_file), "--layer", "4", "--layer", "9", "--top", "2", "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["sample_rate"] == 8000 and manifest["input"] == "input.wav"
    assert [(e["layer"]) for e in manifest["sonifications"]] == [4, 4, 9, 9]
    x = soundfile.read(str(out / "input.wav"))[0]
    assert x.size == 2401
    for entry in manifest["sonifications"]:
        sound, rate = soundfile.read(str(out / entry["wav"]))
        assert rate == 8000 and sound.shape == x.shape
        assert np.abs(sound).max() == pytest.approx(np.abs(x).max(), rel=1e-5)
        assert (out / entry["spectrogram"]).stat().st_size > 1000
        assert entry["activation"] > 0
    assert not list(out.glob("*.part"))


def test_sonify_chosen_features(tmp_path, model_file, wav):
    out = tmp_path / "out"
    assert main(["sonify", str(wav), "--model", str(model_file), "--layer", "2", "--feature", "1", "--feature", "3",
                 "--out", str(out), "--no-plots"]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["L02_f0001.wav", "L02_f0003.wav", "input.wav", "manifest.json"]


@pytest.mark.parametrize(
    "case, message",
    [
        ("layer", "layer must be an integer block index in 1..11"),
        ("feature", "outside block 3's 8 maps"),
        ("short", "needs at least 2370"),
        ("empty", "empty"),
        ("not_audio", "cannot read"),
        ("bad_model", "cannot load model"),
        ("missing_model", "does not exist"),
        ("unwritable", "output folder"),
        ("top_zero", "--top must be >= 1"),
        ("model_dir", "is a directory, not a .keras file (it holds "),
        ("input_dir", "is a directory, not an audio file"),
    ],
)
def test_bad_input_messages(tmp_path, model_file, wav, capsys, case, message):
    layer, feature, audio, model, out = "3", None, wav, model_file, tmp_path / "out"
    if case == "layer":
        layer = "12"
    elif case == "feature":
        feature = "8"
    elif case == "short":
        audio = tmp_path / "short.wav"
        soundfile.write(str(audio), np.ones(2000, "float32") * 0.1, 8000)
        layer = "11"
    elif case == "empty":
        audio = tmp_path / "empty.wav"
        soundfile.write(str(audio), np.zeros(0, "float32"), 8000)
    elif case == "not_audio":
        audio = tmp_path / "notes.wav"
        audio.write_text("hello, I am a text file")
    elif case == "bad_model":
        model = tmp_path / "broken.keras"
        model.write_bytes(b"PK\x03\x04 definitely not a keras zip")
    elif case == "missing_model":
        model = tmp_path / "missing.keras"
    elif case == "model_dir":
        model = model_file.parent  # the folder holding tiny.keras
    elif case == "input_dir":
        audio = tmp_path
    elif case == "unwritable":
        out = tmp_path / "file_in_the_way"
        out.write_text("x")
    argv = ["sonify", str(audio), "--model", str(model), "--layer", layer, "--out", str(out)]
    if case == "top_zero":
        argv += ["--top", "0"]
    if feature:
        argv += ["--feature", feature]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err and len(err.strip().splitlines()[-1]) > 0
    if case == "unwritable":
        assert out.read_text() == "x"
    else:  # a failed command leaves no --out folder it created, so no input.wav either
        assert not out.exists(), sorted(out.rglob("*"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_read_only_output(tmp_path, model_file, wav):
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o500)
    assert main(["sonify", str(wav), "--model", str(model_file), "--layer", "1", "--out", str(out)]) == 2


def test_entry_point_help():
    result = subprocess.run([sys.executable, "-m", "tfsonify", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "usage: tfsonify" in result.stdout


def test_every_command_has_help(capsys):
    from tfsonify.cli import build_parser

    commands = build_parser()._subparsers._group_actions[0].choices
    for name in commands:
        with pytest.raises(SystemExit) as exit_info:
            main([name, "--help"])
        assert exit_info.value.code == 0
        assert f"usage: tfsonify {name}" in capsys.readouterr().out


def test_listing_matches_each_commands_own_help():
    """``tfsonify --help`` lists COMMANDS without importing the commands: its one-liners must be theirs."""
    from tfsonify.cli import COMMANDS, build_parser

    full = build_parser("*")._subparsers._group_actions[0]
    own = {action.dest: action.help for action in full._choices_actions}
    assert {name: help for name, _, help in COMMANDS} == own
    listing = build_parser(None).format_help()
    for name, _, help in COMMANDS:
        assert name in listing


def test_verbose_is_global_and_may_follow_the_command():
    from tfsonify.cli import _chosen, _split_verbose

    assert _split_verbose(["--verbose", "sonify", "x"]) == (["sonify", "x"], True)
    assert _split_verbose(["sonify", "x", "--verbose"]) == (["sonify", "x"], True)
    assert _split_verbose(["analyze", "topk", "--", "--verbose"]) == (["analyze", "topk", "--", "--verbose"], False)
    assert _chosen(["--verbose", "sonify"]) == "sonify" and _chosen(["-h"]) is None and _chosen(["x"]) is None


def test_cli_input_wav_equals_load_audio_to_the_last_bit(tmp_path, model_file, clip):
    """One decoder and resampler: the CLI's input.wav (read in blocks, soxr streaming) is load_audio's array."""
    from tfsonify.io.audio import resample

    source = tmp_path / "song.flac"
    stereo = np.stack([resample(clip, 8000, 44100), 0.5 * resample(clip[::-1].copy(), 8000, 44100)], 1)
    soundfile.write(str(source), np.tile(stereo, (9, 1)), 44100, subtype="PCM_24")  # 5.4 s: longer than a block
    out = tmp_path / "out"
    assert main(["sonify", str(source), "--model", str(model_file), "--layer", "2", "--out", str(out), "--no-plots",
                 "--no-progress"]) == 0
    written, rate = soundfile.read(str(out / "input.wav"), dtype="float32")
    assert rate == 8000
    assert np.array_equal(written, tfsonify.load_audio(source, 8000))


def test_cli_run_has_no_native_log_lines_unless_verbose(tmp_path, model_file, wav):
    """A real CLI run in a fresh process (TensorFlow loads in it): none of TensorFlow's native notices reach stderr;
    ``--verbose`` lets them through; errors and progress lines always arrive."""
    import re

    from tfsonify.commands.native_log_filter import DROPPED

    env = {key: value for key, value in os.environ.items() if key not in ("TF_ENABLE_ONEDNN_OPTS", "TF_CPP_MIN_LOG_LEVEL")}
    env["TF_ENABLE_ONEDNN_OPTS"] = "1"  # oneDNN on (TF's default on x86): the probe that logs the DT_BOOL line runs

    def run(*flags, out="out"):
        return subprocess.run([sys.executable, "-m", "tfsonify", *flags, "sonify", str(wav), "--model", str(model_file),
                               "--layer", "3", "--top", "2", "--out", str(tmp_path / out)], capture_output=True,
                              timeout=900, env=env)

    def native(stderr: bytes) -> list[bytes]:
        return [line for line in stderr.splitlines(keepends=True) if any(re.search(p, line) for p in DROPPED)]

    quiet, verbose = run(), run("--verbose", out="out_verbose")
    assert quiet.returncode == 0 and verbose.returncode == 0, (quiet.stderr + verbose.stderr)[-3000:]
    assert native(quiet.stderr) == [], quiet.stderr.decode()
    assert b"block 3: sonifying 2 map(s)" in quiet.stderr and b"loading model" in quiet.stderr  # progress intact
    assert (tmp_path / "out" / "manifest.json").is_file()
    assert native(verbose.stderr), verbose.stderr.decode()  # TensorFlow did print some: --verbose shows them
    failed = subprocess.run([sys.executable, "-m", "tfsonify", "sonify", str(wav), "--model", str(tmp_path / "none.keras"),
                             "--layer", "3", "--out", str(tmp_path / "out2")], capture_output=True, text=True, timeout=900,
                            env=env)
    assert failed.returncode == 2 and "does not exist" in failed.stderr  # errors still reach stderr


def test_quiet_native_logs_keeps_errors_and_user_settings(monkeypatch):
    from tfsonify.cli import quiet_native_logs

    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    quiet_native_logs()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "2"  # 3 would hide ERROR lines too
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    quiet_native_logs()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"  # the user's choice wins


def _filtered(chunks: list[bytes]) -> bytes:
    import threading

    from tfsonify.commands.native_log_filter import filter_stream

    source_read, source_write = os.pipe()
    sink_read, sink_write = os.pipe()
    worker = threading.Thread(target=filter_stream, args=(source_read, sink_write))
    worker.start()
    for chunk in chunks:
        os.write(source_write, chunk)
    os.close(source_write)
    worker.join(30)
    os.close(sink_write)
    out = b""
    while data := os.read(sink_read, 65536):
        out += data
    os.close(source_read)
    os.close(sink_read)
    return out


NATIVE = [
    b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
    b"I0000 00:00:1796598818.659662    7295 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will "
    b"not be used.\n",
    b"E0000 00:00:1796156557.305184   23320 util.cc:131] oneDNN supports DT_BOOL only on platforms with "
    b"AVX-512. Falling back to the default Eigen-based implementation if present.\n",
    b"I0000 00:00:1796156557.1   23320 port.cc:153] oneDNN custom operations are on. You may see slightly different "
    b"numerical results due to floating-point round-off errors from different computation orders. To turn them off, "
    b"set the environment variable `TF_ENABLE_ONEDNN_OPTS=0`.\n",
    b"E0000 00:00:1796156434.307014   22990 cuda_executor.cc:1228] failed call to cuInit: INTERNAL: CUDA error: Failed "
    b"call to cuInit: UNKNOWN ERROR (303)\n",
    b"I0000 00:00:1796599221.571566   15229 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use "
    b"available CPU instructions in performance-critical operations.\n",
    b"To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with the appropriate "
    b"compiler flags.\n",
    b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n",
]


def test_native_log_filter_drops_only_the_native_notices():
    notice = NATIVE[2]
    real = b"E0000 00:00:1796156434.307014   22990 op_kernel.cc:1857] OP_REQUIRES failed at conv_ops.cc:12 : INVALID\n"
    fatal = b"F0000 00:00:1796156434.307014   22990 op.cc:7] Check failed: x == y\n"
    text = b"block 3: sonifying the top 2 map(s)..." + notice + b" done (16.3 s)\nWAVE WIFI E12 Error: x\n"
    assert _filtered([text + real + fatal]) == b"block 3: sonifying the top 2 map(s)... done (16.3 s)\nWAVE WIFI E12 Error: x\n" + real + fatal
    split = [text[:45], text[45:80], text[80:150], text[150:]]  # a record split over several reads
    assert _filtered(split) == b"block 3: sonifying the top 2 map(s)... done (16.3 s)\nWAVE WIFI E12 Error: x\n"
    assert _filtered([b"no newline at the end: E00"]) == b"no newline at the end: E00"  # flushed at EOF
    every = b"".join(NATIVE)
    kept = b"Traceback (most recent call last):\n  File \"x.py\", line 1\nValueError: INFO: WARNING: To enable\n"
    assert _filtered([b"loading model m.keras..." + every + b" done (2.0 s)\n" + kept]) == \
        b"loading model m.keras... done (2.0 s)\n" + kept
    assert _filtered([every[i:i + 7] for i in range(0, len(every), 7)]) == b""  # split anywhere
    progress = b"\rsonifying  40%|####      | 2.0/5.0 s\rsonifying 100%|##########| 5.0/5.0 s\n"
    assert _filtered([progress, NATIVE[0], b"WARNING: something else\n"]) == progress + b"WARNING: something else\n"


def test_native_log_filter_forwards_a_held_tail_without_waiting_for_more():
    """A write ending in what could begin a record ("... I") reaches the terminal after a pause, not at exit."""
    import threading
    import time

    from tfsonify.commands.native_log_filter import FLUSH_SECONDS, filter_stream

    source_read, source_write = os.pipe()
    sink_read, sink_write = os.pipe()
    worker = threading.Thread(target=filter_stream, args=(source_read, sink_write), daemon=True)
    worker.start()
    os.write(source_write, b"overwrite? [y/N] I")
    began = time.perf_counter()
    assert os.read(sink_read, 100) == b"overwrite? [y/N] "
    assert os.read(sink_read, 100) == b"I" and time.perf_counter() - began < FLUSH_SECONDS + 5
    os.close(source_write)
    worker.join(10)
    for fd in (source_read, sink_read, sink_write):
        os.close(fd)


def test_sonify_a_user_built_model_by_layer_name(tmp_path, wav):
    """Any supported Keras model: layer names, audio read at the model's sample rate."""
    keras.utils.set_random_seed(1)
    layers = keras.layers
    model = keras.Sequential([keras.Input((None, 1)), layers.Conv1D(6, 9, strides=2, activation="relu", name="conv1"),
                              layers.MaxPooling1D(3, 2, name="pool1"), layers.Conv1D(4, 5, padding="same", name="conv2"),
                              layers.BatchNormalization(name="bn2"), layers.ReLU(name="relu2"),
                              layers.GlobalAveragePooling1D(), layers.Dense(2)], name="mine")
    path = tmp_path / "mine.keras"
    model.save(path)
    out = tmp_path / "out"
    assert main(["sonify", str(wav), "--model", str(path), "--layer", "relu2", "--layer", "1", "--top", "3",
                 "--out", str(out), "--no-plots"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["sample_rate"] == 8000  # no sample_rate attribute: the 8 kHz default
    assert [e["layer"] for e in manifest["sonifications"]] == ["relu2"] * 3 + [1] * 3
    assert sorted(p.name for p in out.glob("relu2_f*.wav")) == [f"relu2_f{e['feature']:04d}.wav" for e in
                                                               sorted(manifest["sonifications"][:3], key=lambda e: e["feature"])]
    sound, rate = soundfile.read(str(out / manifest["sonifications"][0]["wav"]))
    assert rate == 8000 and sound.size == soundfile.read(str(out / "input.wav"))[0].size
    expected = tfsonify.Sonifier(model).sonify(soundfile.read(str(out / "input.wav"), dtype="float32")[0], "relu2",
                                               feature=manifest["sonifications"][0]["feature"])
    np.testing.assert_allclose(sound, expected, atol=1e-4)


def test_sonify_rejects_unsupported_model_and_layer(tmp_path, wav, capsys):
    keras.utils.set_random_seed(1)
    x = keras.Input((None, 1))
    h = keras.layers.Conv1D(4, 3, name="conv1")(x)
    model = keras.Model(x, keras.layers.Dense(2, name="head")(keras.layers.GlobalAveragePooling1D(name="gap")(h)))
    path = tmp_path / "m.keras"
    model.save(path)
    assert main(["sonify", str(wav), "--model", str(path), "--layer", "head", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "'head'" in err and "lies past the supported path" in err and "Traceback" not in err
