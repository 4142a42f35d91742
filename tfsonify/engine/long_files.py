"""Sonify an audio file of any length without holding it (or its sonifications) in memory.

:func:`sonify_file` is what ``tfsonify sonify`` runs:

0. **check** the whole request first (layers, maps, ``top``, ``window_seconds``, the file's header and length,
   the output folder): a refused request writes nothing;
1. **decode** the file block by block (:func:`tfsonify.io.blocks.read_blocks`: soundfile, downmix,
   soxr streaming resampling to the model's rate), writing ``input.wav`` incrementally and taking the
   whole clip's peak on the way;
2. per layer, the path :func:`tfsonify.engine.long_clips.choose` picks (exact windows, the frames of a fixed-frame
   model, or one window for a clip that fits) over a :class:`tfsonify.engine.stitch.WavSource` of ``input.wav``:
   **top maps** (with ``top``) or the requested maps' maxima (:func:`tfsonify.engine.stitch.maxima`);
3. **reconstruct** into a :class:`tfsonify.engine.stitch.WavSink` (raw temporary files, peaks tracked), which
   **scales** each once (:func:`tfsonify.engine.stitch.scale_rows`) into ``L05_f0012.wav`` (atomic), then the
   spectrogram PNG (the first 30 s of the clip) and ``manifest.json`` last
   (:func:`tfsonify.io.render.write_manifest`, the one manifest writer).

A model the windows cannot reproduce (a custom input scaling on a variable-length model) runs each layer in one
pass over the decoded clip (memory grows with the clip), as ``window_seconds=None`` does.

Memory: a few decode blocks plus one window of the network, whatever the file's length. The result equals
the in-memory path (:func:`tfsonify.io.blocks.read_whole` then ``Sonifier.sonify_top``/``sonify``).
Hooks used: those of :mod:`tfsonify.engine.long_clips`, plus ``check_features``, ``check_k``, ``min_length`` and
the one-pass ``sonify_top`` / ``sonify`` / ``top_features``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from tfsonify.engine import long_clips, stitch
from tfsonify.progress import audio_bar
from tfsonify.io.blocks import WavWriter, audio_info, read_blocks
from tfsonify.io.render import (check_output_dir, describe_layer, manifest_entry, output_folder, plot_pair,
                                sonification_stem, write_manifest)

__all__ = ["decode_to_wav", "sonify_file", "check_request", "WavWindows"]

PLOT_SECONDS = 30.0  # a long clip's spectrogram PNG shows its first 30 s


def _bar(total_samples: int, rate: int, description: str, enabled: bool):
    """Progress counted in samples, shown in seconds of audio (:func:`tfsonify.progress.audio_bar`: a tqdm bar on a
    terminal, plain periodic lines in a log)."""
    return audio_bar(total_samples, rate, description, enabled)


def decode_to_wav(path: str | os.PathLike, wav_path: str | os.PathLike, sample_rate: int,
                  progress: bool = False) -> tuple[int, np.float32]:
    """Decode ``path`` to a float32 mono WAV at ``sample_rate`` block by block; returns ``(samples, max|x|)``."""
    info = audio_info(path)
    peak, count = np.float32(0), 0
    with WavWriter(wav_path, sample_rate) as writer, _bar(info.frames, info.sample_rate, "decoding", progress) as bar:
        for block, frames in read_blocks(path, sample_rate, info=info):
            if block.size:
                peak = max(peak, np.float32(np.max(np.abs(block))))
                writer.write(block)
                count += block.size
            bar.update(frames)
    if count == 0:
        raise ValueError(f"audio file {str(path)!r} gives no samples at {sample_rate} Hz")
    return count, peak


class WavWindows(stitch.WavSource):
    """A :class:`tfsonify.engine.stitch.WavSource` whose reads are divided by ``peak`` (the model's input divisor,
    :func:`tfsonify.engine.long_clips.input_divisor`): ``read(start, stop) -> float32 [stop - start]``."""

    def __init__(self, path: str | os.PathLike, peak: np.float32):
        super().__init__(path, peak)
        self.scale = np.float32(peak) if peak > 0 else np.float32(1)

    def read(self, start: int, stop: int) -> np.ndarray:
        return super().read(start, stop) / self.scale


def check_request(sonifier, path, layers: Sequence, features: Sequence[int] | None, top: int | None,
                  window_seconds) -> int:
    """Check a whole file request before anything is written; returns the expected clip length in samples.

    Raises:
        ValueError: one line naming the layer, map, ``top``, ``window_seconds``, the unreadable file or the
            minimum length (in samples and seconds at the model's rate).
    """
    if not layers:
        raise ValueError("no layer to sonify")
    info = audio_info(path)  # readable, with a header
    rate = sonifier.sample_rate
    expected = int(round(info.frames * rate / info.sample_rate))
    for layer in layers:
        sonifier.geometry(layer)  # validates the layer (names the model's layers otherwise)
        if features is not None:
            sonifier.check_features(list(features), layer)
        else:
            width = sonifier.num_features(layer)
            if isinstance(top, bool) or not isinstance(top, (int, np.integer)) or not 1 <= top <= width:
                raise ValueError(f"top must be an integer in 1..{width} ({describe_layer(layer)}'s maps); "
                                 f"received {top!r}")
        long_clips.choose(sonifier, max(expected, 1), layer, window_seconds)  # validates window_seconds
        needed = sonifier.min_length(layer)
        if expected < needed:
            raise ValueError(f"the clip has {expected} samples at {rate} Hz ({expected / rate:.3f} s) but "
                             f"{describe_layer(layer)} needs at least {needed} ({needed / rate:.3f} s): use a longer "
                             f"clip or a shallower layer")
    return expected


def sonify_file(sonifier, path: str | os.PathLike, out_dir: str | os.PathLike, layers: Sequence[int],
                features: Sequence[int] | None = None, top: int | None = None,
                window_seconds: float | str | None = long_clips.AUTO, plots: bool = True,
                progress: bool = True, extra: dict | None = None) -> dict:
    """Sonify ``path`` into ``out_dir`` (``input.wav``, ``L{L:02d}_f{F:04d}.wav`` [+ ``.png``], ``manifest.json``).

    Args:
        sonifier: a :class:`tfsonify.Sonifier`.
        path: any soundfile-readable audio file (downmixed, resampled to ``sonifier.sample_rate`` with soxr).
        layers: blocks (or layer names) to sonify.
        features: map indices (the same for every layer), or None to sonify the ``top`` most active maps
            (default 1).
        window_seconds: :data:`tfsonify.engine.long_clips.AUTO` (default: the engine picks, see
            :func:`tfsonify.engine.long_clips.choose`), a window length in seconds, or None (the whole clip in one
            pass; memory grows with the clip).
        plots: write a spectrogram PNG per map (of the first 30 s of a longer clip).
        progress: progress on stderr (audio seconds done and the rate in audio seconds per second): tqdm bars on a
            terminal, plain lines every 10 s otherwise.
        extra: more manifest fields.

    Returns:
        The manifest (also written to ``out_dir/manifest.json``, by :func:`tfsonify.io.render.write_manifest`).

    Raises:
        ValueError: a bad layer, map, ``top``, ``window_seconds``, a file too short for a layer or unreadable
            (checked before anything is written), a truncated file, or an unwritable ``out_dir``. A request that
            fails (or is interrupted) leaves the folder as it found it: its files are staged under hidden names and
            renamed into place together just before the manifest (:class:`tfsonify.io.manifest.output_folder`), so
            an earlier result in the folder stays whole and no file is left half-written.
        tfsonify.io.manifest.NoSpaceError: the disk filled up (one line naming the file; the folder as above).
    """
    top = 1 if features is None and top is None else top
    check_request(sonifier, path, layers, features, top, window_seconds)
    check_output_dir(out_dir)
    rate = sonifier.sample_rate
    with output_folder(out_dir) as folder:
        out_dir = folder.path
        input_path = folder.created(out_dir / "input.wav")
        samples, peak = decode_to_wav(path, input_path, rate, progress)
        entries = []
        for layer in layers:
            if samples < sonifier.min_length(layer):  # the decoder's length can differ from the header's by a sample
                raise ValueError(f"the clip has {samples} samples at {rate} Hz but {describe_layer(layer)} needs at "
                                 f"least {sonifier.min_length(layer)}")
            entries += _sonify_layer(sonifier, folder, input_path, samples, peak, layer, features, top,
                                     window_seconds, plots, progress)
        folder.commit()  # every file of the run into place at once, then the manifest that lists them
        return write_manifest(out_dir, entries, rate, str(path), extra)


def _sonify_layer(sonifier, folder: output_folder, input_path: Path, samples: int, peak, layer, features, top,
                  window_seconds, plots: bool, progress: bool) -> list[dict]:
    """One layer of :func:`sonify_file`: its manifest entries (WAVs and PNGs written)."""
    rate, out_dir = sonifier.sample_rate, folder.path
    path = long_clips.choose(sonifier, samples, layer, window_seconds)
    if path == long_clips.ONE_PASS and getattr(sonifier, "input_scaling", "peak") not in ("peak", None):
        # windows cannot reproduce this model's input scaling: the decoded clip in one pass
        import soundfile

        clip = soundfile.read(str(input_path), dtype="float32")[0]
        if features is None:
            chosen, activation, sounds = sonifier.sonify_top(clip, layer, top, window_seconds=None)
        else:
            chosen = np.asarray(list(features), np.int32)
            sounds = sonifier.sonify(clip, layer, features=chosen, window_seconds=None)
            scores = sonifier.peak_activations(sonifier.scaled_input(clip), layer)
            activation = scores[chosen]
        stems = [sonification_stem(layer, f) for f in chosen]
        for stem, sound in zip(stems, sounds):
            with WavWriter(folder.created(out_dir / f"{stem}.wav"), rate) as writer:
                writer.write(sound)
        plan = long_clips.layout(sonifier, samples, layer, None)
    else:
        plan = long_clips.layout(sonifier, samples, layer, window_seconds)
        with stitch.WavSource(input_path, peak) as source:
            read, peaks, raw_of = long_clips.runners(sonifier, plan, layer, source)
            # pass 1: per-map maxima over the whole clip (exact: max over windows or frames)
            with _bar(samples, rate, f"{describe_layer(layer)}: activations", progress) as bar:
                best = stitch.maxima(plan, read, peaks, bar.update)
            if features is None:
                chosen, activation = stitch.top_k(best, top)
            else:
                chosen = np.asarray(list(features), np.int32)
                activation = best[chosen]
            stems = [sonification_stem(layer, f) for f in chosen]
            # pass 2: raw reconstructions to temporary files, then each scaled once into its WAV
            with _bar(samples, rate, f"{describe_layer(layer)}: sonifying {len(chosen)} map(s)", progress) as bar, \
                    stitch.WavSink([folder.created(out_dir / f"{stem}.wav") for stem in stems], rate, out_dir,
                                   bar.update) as sink:
                stitch.reconstruct(plan, read, raw_of(chosen), sink)
                sink.finish(source.peak)
    entries = []
    for feature, score, stem in zip(chosen, activation, stems):
        picture = _plot(folder, stem, input_path, samples, layer, int(feature), float(score), rate) if plots else None
        entries.append(manifest_entry(layer, feature, score, f"{stem}.wav", picture))
    return entries


def _plot(folder: output_folder, stem: str, input_path: Path, samples: int, layer: int | str, feature: int,
          activation: float, rate: int) -> str:
    """The spectrogram PNG of input and sonification, over the first :data:`PLOT_SECONDS` (the whole clip if shorter)."""
    import soundfile

    out_dir = folder.path
    length = min(samples, int(PLOT_SECONDS * rate))
    waveform, _ = soundfile.read(str(input_path), frames=length, dtype="float32")
    sound, _ = soundfile.read(str(folder.created(out_dir / f"{stem}.wav")), frames=length, dtype="float32")
    part = "" if length == samples else f", first {length / rate:.0f} s of {samples / rate:.0f} s"
    plot_pair(folder.created(out_dir / f"{stem}.png"), waveform, sound, rate,
              f"{describe_layer(layer)}, map {feature} (max activation {activation:.3g}{part})")
    return f"{stem}.png"
