#!/usr/bin/env python3
"""On-device sonification with LiteRT alone (no TensorFlow): WAV in, WAVs of the top maps out.

Needs only ``ai-edge-litert``, ``numpy``, ``soundfile`` and ``soxr`` (``pip install 'tfsonify[lite]'``).
Runs a ``.tflite`` written by ``tfsonify export tflite MODEL.keras --out sonifier.tflite [--length N | --length 0]``
(any model the exporter takes: CNN12, CREPE, your own) on all CPU cores (XNNPACK):

    python3 -m tfsonify.edge sonifier.tflite clip.wav --layer 5 --top 3 --out sounds/

The model's rate, its layers' receptive fields and strides and its class names come from the record the exporter
stored in the file (:mod:`tfsonify.edge.metadata`). The clip is downmixed to mono and resampled to the model's rate
by :func:`tfsonify.io.audio.load_audio` (soxr): the very samples the CLI and the API read. A dynamic-length model
(``--length 0`` at export) takes the whole clip. A fixed-length model (default, 1 s) runs a longer clip as exact
overlapping windows (:mod:`tfsonify.edge.windows`: the same maps and sounds as one pass over the whole clip); a
shorter clip is zero-padded to ``W`` samples (which changes the maps near the padded end). A fixed-frame model
(CREPE's 1024 samples) sonifies one frame: a longer clip is refused with the reason. Writes ``input.wav``,
``{layer}_rank{r}_f{F}.wav`` (float32 WAV at the model's rate) and ``manifest.json`` (the library's one manifest
format, :func:`tfsonify.io.manifest.write_manifest`) and prints one line per map; a run that fails leaves nothing it
created.

Live mode (fixed-length model): ``--stream --feature F`` feeds the clip block by block (``--block-size``
samples, as a recorder delivers them) through an exact windowed stream (:meth:`EdgeModel.stream`)
and writes ``stream_{layer}_f{F}.wav`` aligned with the input, printing the latency and the real-time factor.
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

from tfsonify.edge import windows as edge_windows
from tfsonify.edge.metadata import signature_suffix
from tfsonify.edge.model import EdgeModel  # numpy + LiteRT only
from tfsonify.io import audio  # numpy, soundfile, soxr: the one decoder and resampler
from tfsonify.io.manifest import manifest_entry, output_folder, write_manifest  # stdlib only


def write_wav(path: str, waveform: np.ndarray, sample_rate: int) -> None:
    """Float32 WAV at ``sample_rate`` Hz, written to a temporary file and renamed (no half-written files)."""
    handle, temporary = tempfile.mkstemp(prefix=".edge-", suffix=".wav", dir=os.path.dirname(path) or ".")
    os.close(handle)
    try:
        soundfile.write(temporary, waveform, sample_rate, subtype="FLOAT")
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def _layer(text: str) -> int | str:
    return int(text) if text.isdecimal() else text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tfsonify.edge",
                                     description="Sonify the top feature maps of a layer with LiteRT only.")
    parser.add_argument("model", help=".tflite from `tfsonify export tflite`")
    parser.add_argument("input", help="WAV/FLAC/OGG file")
    parser.add_argument("--layer", type=_layer, required=True,
                        help="a block index or layer name exported in the model (the error lists them)")
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
    if args.threads < 1:
        parser.error(f"--threads must be a positive number; received {args.threads}")

    try:
        model = EdgeModel(args.model, num_threads=args.threads)
        model.geometry(args.layer)  # an exported layer (the message lists them)
        clip = audio.load_audio(args.input, model.sample_rate)
        if args.stream:
            return stream_clip(model, clip, args)
        model.check_clip(clip, args.layer)
    except ValueError as error:
        print(f"edge: error: {error}", file=sys.stderr)
        return 2
    rate, suffix = model.sample_rate, signature_suffix(args.layer)
    mode = "dynamic" if model.length is None else f"fixed {model.length}-sample"
    if model.windowed(clip.size):
        plan = edge_windows.plan_windows(clip.size, int(model.length), model.geometry(args.layer))
        mode += f", {len(plan.starts)} exact overlapping windows"
    start = time.perf_counter()
    try:
        features, activations, sounds = model.sonify_top(clip, args.layer, args.top)
    except (ValueError, RuntimeError) as error:
        print(f"edge: error: the model rejected a {len(clip)}-sample clip: {error}", file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - start
    names = model.class_names
    entries = []
    try:
        with output_folder(args.out) as folder:
            write_wav(str(folder.created(folder.path / "input.wav")), clip, rate)
            for rank, (feature, sound) in enumerate(zip(features, sounds)):
                name = f"{suffix}_rank{rank}_f{int(feature)}.wav"
                write_wav(str(folder.created(folder.path / name)), sound, rate)
                entries.append(manifest_entry(args.layer, int(feature), float(activations[rank]), name))
            extra = {"model": args.model, "runtime": "litert", "mode": mode}
            if names:
                extra["class_names"] = list(names)
            folder.commit()
            write_manifest(folder.path, entries, rate, args.input, extra)
    except (ValueError, OSError) as error:
        print(f"edge: error: {error}", file=sys.stderr)
        return 2
    for entry in entries:
        print(f"{entry['wav']}\tfeature {entry['feature']}\tpeak activation {entry['activation']:.4f}")
    print(f"{model.geometry(args.layer).name}: {len(entries)} map(s) of a {len(clip) / rate:.2f} s clip at {rate} Hz in "
          f"{elapsed * 1000:.1f} ms on {args.threads} thread(s) ({mode} model)")
    return 0


def stream_clip(model: EdgeModel, clip: np.ndarray, args) -> int:
    """``--stream``: the clip through :meth:`EdgeModel.stream` in blocks; writes the aligned sonification."""
    rate = model.sample_rate
    try:
        stream = model.stream(args.layer, [args.feature], args.reference_peak)
    except ValueError as error:
        print(f"edge: error: {error}", file=sys.stderr)
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
    name = f"stream_{signature_suffix(args.layer)}_f{args.feature}.wav"
    write_wav(os.path.join(args.out, name), sound, rate)
    seconds = len(clip) / rate
    print(f"{name}\t{model.geometry(args.layer).name}, map {args.feature}: {seconds:.2f} s streamed in blocks of "
          f"{args.block_size} samples, latency {stream.latency} samples ({1000 * stream.latency / rate:.0f} ms), "
          f"{seconds / compute:.1f}x real time on {args.threads} thread(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
