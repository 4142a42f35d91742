#!/usr/bin/env python3
"""On-device sonification with LiteRT alone (no TensorFlow): WAV in, WAVs of the top maps out.

Needs only ``ai-edge-litert``, ``numpy``, ``soundfile`` and ``soxr`` (``pip install 'tfsonify[lite]'``).
Runs a ``.tflite`` written by ``tfsonify export tflite MODEL.keras --out sonifier.tflite [--length 8000 | --length 0]`` on
all CPU cores (XNNPACK):

    python3 -m tfsonify.edge sonifier.tflite clip.wav --layer 5 --top 3 --out sounds/

The clip is downmixed to mono and resampled to 8 kHz by :func:`tfsonify.load_audio` (soxr): the very
samples the CLI and the API read. A dynamic-length model (``--length 0`` at export) takes the whole clip. A fixed-length
model (default, 1 s) runs a longer clip as exact overlapping windows
(``edge_windows.py`` beside this script: the same maps and sounds as one pass over
the whole clip); a shorter clip is zero-padded to ``T`` samples (which changes the
maps near the padded end). Writes ``input.wav`` and
``l{L}_rank{r}_f{F}.wav`` (float32 WAV at 8 kHz) and ``manifest.json`` (the library's one manifest format,
:func:`tfsonify.io.manifest.write_manifest`) and prints one line per map; a run that fails leaves nothing it created.

Live mode (fixed-length model): ``--stream --feature F`` feeds the clip block by block (``--block-size``
samples, as a recorder delivers them) through an exact windowed stream (``edge_windows.litert_stream``)
and writes ``stream_l{L}_f{F}.wav`` aligned with the input, printing the latency and the real-time factor.
The input is divided by ``--reference-peak`` (default 1.0, full scale); the output is scaled by the largest
raw reconstruction seen so far.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np
import soundfile
from ai_edge_litert.interpreter import Interpreter

from tfsonify.edge import windows as edge_windows  # numpy only
from tfsonify.io import audio  # numpy, soundfile, soxr: the one decoder and resampler
from tfsonify.io.manifest import manifest_entry, output_folder, write_manifest  # stdlib only

SAMPLE_RATE = 8000


def resample(waveform: np.ndarray, source_rate: int, target_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Mono float32 ``[time]`` resampled with the package's one resampler (soxr VHQ, :func:`tfsonify.io.audio.resample`)."""
    return audio.resample(waveform, source_rate, target_rate)


def read_clip(path: str) -> np.ndarray:
    """Mono float32 ``[time]`` at 8 kHz, decoded exactly as :func:`tfsonify.load_audio` (and the CLI) decode it."""
    return audio.load_audio(path, SAMPLE_RATE)


def write_wav(path: str, waveform: np.ndarray) -> None:
    """Float32 WAV at 8 kHz, written to a temporary file and renamed (no half-written files)."""
    handle, temporary = tempfile.mkstemp(prefix=".edge-", suffix=".wav", dir=os.path.dirname(path) or ".")
    os.close(handle)
    try:
        soundfile.write(temporary, waveform, SAMPLE_RATE, subtype="FLOAT")
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Sonify the top feature maps of a CNN12 layer with LiteRT only.")
    parser.add_argument("model", help=".tflite from `tfsonify export tflite`")
    parser.add_argument("input", help="WAV/FLAC/OGG file")
    parser.add_argument("--layer", type=int, required=True, help="block 1..11 (must be exported in the model)")
    parser.add_argument("--top", type=int, default=None, help="number of maps (default: all K the model returns)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="CPU threads (default: all cores)")
    parser.add_argument("--stream", action="store_true", help="live mode: feed the clip block by block (needs --feature)")
    parser.add_argument("--feature", type=int, default=None, help="with --stream: the map to sonify")
    parser.add_argument("--block-size", type=int, default=512, help="with --stream: samples per block (default 512)")
    parser.add_argument("--reference-peak", type=float, default=1.0, help="with --stream: input level of full scale")
    args = parser.parse_args(argv)
    if args.stream and args.feature is None:
        parser.error("--stream needs --feature F (the map to sonify live)")
    if args.block_size < 1:
        parser.error(f"--block-size must be a positive number of samples; received {args.block_size}")
    if args.top is not None and args.top < 1:
        parser.error(f"--top must be a positive number of maps; received {args.top}")

    try:
        interpreter = Interpreter(model_path=args.model, num_threads=args.threads)
    except (ValueError, RuntimeError) as error:
        print(f"edge_demo: error: cannot load {args.model!r}: {error}", file=sys.stderr)
        return 2
    key = f"top_k_l{args.layer}"
    signatures = interpreter.get_signature_list()
    if key not in signatures:
        layers = sorted(int(name[len("top_k_l"):]) for name in signatures if name.startswith("top_k_l"))
        print(f"edge_demo: error: layer {args.layer} is not in this model; exported layers: {layers}", file=sys.stderr)
        return 2
    try:
        clip = read_clip(args.input)
    except ValueError as error:
        print(f"edge_demo: error: {error}", file=sys.stderr)
        return 2
    if args.stream:
        return stream_clip(interpreter, clip, args)
    runner = interpreter.get_signature_runner(key)
    wave_details = runner.get_input_details()["waveform"]
    fixed = int(wave_details["shape_signature"][1])
    mode = "dynamic" if fixed == -1 else f"fixed {fixed}-sample"
    windowed = fixed != -1 and len(clip) > fixed
    if windowed:
        try:
            length, raw, peaks = edge_windows.litert_functions(interpreter, args.layer)
            plan = edge_windows.plan_windows(len(clip), length, args.layer)
        except ValueError as error:
            print(f"edge_demo: warning: cannot window this clip exactly ({error}); using its first {fixed} samples",
                  file=sys.stderr)
            windowed = False
    if fixed != -1 and not windowed:
        clip = clip[:fixed] if len(clip) >= fixed else np.pad(clip, (0, fixed - len(clip)))
    start = time.perf_counter()
    try:
        if windowed:
            k = int(runner.get_output_details()["features"]["shape"][1]) if args.top is None else args.top
            width = int(interpreter.get_signature_runner(f"peak_activations_l{args.layer}")
                        .get_output_details()["activations"]["shape"][1])
            features, activations = edge_windows.top_features_windowed(clip, args.layer, length, peaks, min(k, width))
            sounds = edge_windows.sonify_windowed(clip, args.layer, length, raw, features)
            mode += f", {len(plan.starts)} exact overlapping windows"
        else:
            outputs = runner(waveform=clip[np.newaxis].astype(np.float32))
            features, activations, sounds = outputs["features"][0], outputs["activations"][0], outputs["sonifications"][0]
    except (ValueError, RuntimeError) as error:
        print(f"edge_demo: error: the model rejected a {len(clip)}-sample clip: {error}", file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - start
    count = len(features) if args.top is None else min(args.top, len(features))
    entries = []
    try:
        with output_folder(args.out) as folder:
            write_wav(str(folder.created(folder.path / "input.wav")), clip)
            for rank in range(count):
                name = f"l{args.layer}_rank{rank}_f{int(features[rank])}.wav"
                write_wav(str(folder.created(folder.path / name)), sounds[rank])
                entries.append(manifest_entry(args.layer, int(features[rank]), float(activations[rank]), name))
            write_manifest(folder.path, entries, SAMPLE_RATE, args.input,
                           {"model": args.model, "runtime": "litert", "mode": mode})
    except (ValueError, OSError) as error:
        print(f"edge_demo: error: {error}", file=sys.stderr)
        return 2
    for entry in entries:
        print(f"{entry['wav']}\tfeature {entry['feature']}\tpeak activation {entry['activation']:.4f}")
    print(f"block {args.layer}: {count} map(s) of a {len(clip) / SAMPLE_RATE:.2f} s clip in {elapsed * 1000:.1f} ms "
          f"on {args.threads} thread(s) ({mode} model)")
    return 0


def stream_clip(interpreter, clip: np.ndarray, args) -> int:
    """``--stream``: the clip through ``edge_windows.litert_stream`` in blocks; writes the aligned sonification."""
    try:
        stream = edge_windows.litert_stream(interpreter, args.layer, [args.feature], args.reference_peak)
    except ValueError as error:
        print(f"edge_demo: error: {error}", file=sys.stderr)
        return 2
    pieces, compute = [], 0.0
    for start in range(0, len(clip), args.block_size):
        began = time.perf_counter()
        pieces.append(stream.process(clip[start:start + args.block_size])[0])
        compute += time.perf_counter() - began
    began = time.perf_counter()
    pieces.append(stream.flush()[0])
    compute += time.perf_counter() - began
    sound = np.concatenate(pieces)[stream.latency:]
    os.makedirs(args.out, exist_ok=True)
    name = f"stream_l{args.layer}_f{args.feature}.wav"
    write_wav(os.path.join(args.out, name), sound)
    seconds = len(clip) / SAMPLE_RATE
    print(f"{name}\tblock {args.layer}, map {args.feature}: {seconds:.2f} s streamed in blocks of {args.block_size} "
          f"samples, latency {stream.latency} samples ({1000 * stream.latency / SAMPLE_RATE:.0f} ms), "
          f"{seconds / compute:.1f}x real time on {args.threads} thread(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
