"""Sonify an audio file of any length without holding it (or its sonifications) in memory.

:func:`sonify_file` is what ``tfsonify sonify`` runs:

1. **decode** the file block by block (:func:`tfsonify.io.blocks.read_blocks`: soundfile, downmix,
   soxr streaming resampling to the model's rate), writing ``input.wav`` incrementally and taking the
   whole clip's peak on the way;
2. per layer, **top maps** (with ``top``) or the requested maps' peak activations: one pass over the
   exact windows of :mod:`tfsonify.engine.windows` reading ``input.wav`` (maximum over windows of per-window maxima);
3. **reconstruct**: a second pass writes each map's stitched raw reconstruction to a temporary file
   and tracks its peak;
4. **scale** each raw file once to unit peak times ``max|x|`` into ``L05_f0012.wav`` (atomic: temporary
   file, then rename), then the spectrogram PNG (the first 30 s of the clip) and ``manifest.json`` last.

Memory: a few decode blocks plus one window of the network, whatever the file's length. The result equals
the in-memory path (:func:`tfsonify.io.blocks.read_whole` then ``Sonifier.sonify_top``/``sonify``).
Hooks used: ``sonifier.raw_reconstruction``, ``peak_activations``, ``geometry``, ``sample_rate``,
``num_features``.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile

from tfsonify.engine import long_clips, windows
from tfsonify.io.audio import atomic_path
from tfsonify.progress import audio_bar
from tfsonify.io.blocks import WavWriter, audio_info, read_blocks
from tfsonify.io.render import check_writable_dir, describe_layer, layer_key, plot_pair, sonification_stem

__all__ = ["decode_to_wav", "sonify_file", "WavWindows"]

SCALE_BLOCK = 1 << 20  # samples per block when scaling the raw reconstructions
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


class WavWindows:
    """Windows of a mono float WAV divided by ``peak`` on reading (the model's input divisor,
    :func:`tfsonify.engine.long_clips.input_divisor`): ``read(start, stop) -> float32 [stop - start]``."""

    def __init__(self, path: str | os.PathLike, peak: np.float32):
        self.path, self.scale = Path(path), np.float32(peak) if peak > 0 else np.float32(1)

    def __enter__(self) -> "WavWindows":
        self._file = soundfile.SoundFile(str(self.path))
        return self

    def read(self, start: int, stop: int) -> np.ndarray:
        self._file.seek(start)
        return self._file.read(stop - start, dtype="float32") / self.scale

    def __exit__(self, *exc):
        self._file.close()
        return False


def _plan(sonifier, samples: int, layer: int | str, window_seconds: float | None) -> windows.WindowPlan:
    field, stride = sonifier.geometry(layer)
    if samples < field:
        raise ValueError(f"the clip has {samples} samples at {sonifier.sample_rate} Hz but {describe_layer(layer)} needs at least "
                         f"{field} (pad or use a longer clip, or a shallower layer)")
    if not long_clips.needs_windows(sonifier, samples, layer, window_seconds):
        return windows.single_window_plan(samples, field, stride)
    return long_clips.plan(sonifier, samples, layer, window_seconds)


def _check_request(sonifier, layer: int | str, features: Sequence[int] | None, top: int | None) -> None:
    width = sonifier.num_features(layer)
    if features is not None:
        bad = [f for f in features if isinstance(f, bool) or not isinstance(f, (int, np.integer)) or not 0 <= f < width]
        if bad or not features:
            raise ValueError(f"feature {bad[0] if bad else '(none)'} is outside {describe_layer(layer)}'s {width} maps "
                             f"(valid: 0..{width - 1})")
    elif isinstance(top, bool) or not isinstance(top, (int, np.integer)) or not 1 <= top <= width:
        raise ValueError(f"top must be an integer in 1..{width} ({describe_layer(layer)}'s maps); received {top!r}")


def sonify_file(sonifier, path: str | os.PathLike, out_dir: str | os.PathLike, layers: Sequence[int],
                features: Sequence[int] | None = None, top: int | None = None,
                window_seconds: float | None = long_clips.DEFAULT_WINDOW_SECONDS, plots: bool = True,
                progress: bool = True, extra: dict | None = None) -> dict:
    """Sonify ``path`` into ``out_dir`` (``input.wav``, ``L{L:02d}_f{F:04d}.wav`` [+ ``.png``], ``manifest.json``).

    Args:
        sonifier: a :class:`tfsonify.Sonifier`.
        path: any soundfile-readable audio file (downmixed, resampled to ``sonifier.sample_rate`` with soxr).
        layers: blocks to sonify.
        features: map indices (the same for every layer), or None to sonify the ``top`` most active maps
            (default 1).
        window_seconds: window length of the exact windows (None: the whole clip in one pass; memory grows
            with the clip).
        plots: write a spectrogram PNG per map (of the first 30 s of a longer clip).
        progress: progress on stderr (audio seconds done and the rate in audio seconds per second): tqdm bars on a
            terminal, plain lines every 10 s otherwise.
        extra: more manifest fields.

    Returns:
        The manifest (also written to ``out_dir/manifest.json``, in the format of
        :func:`tfsonify.io.render.write_sonifications`).

    Raises:
        ValueError: a bad layer, map, ``top`` or ``window_seconds`` (checked before decoding), an unreadable,
            empty, truncated or too short file, or an unwritable ``out_dir``. Files already complete stay;
            none is left half-written.
    """
    top = 1 if features is None and top is None else top
    for layer in layers:
        sonifier.geometry(layer)  # validates the layer
        _check_request(sonifier, layer, None if features is None else list(features), top)
        long_clips.window_samples(sonifier, layer, window_seconds)
    out_dir = check_writable_dir(out_dir)
    rate = sonifier.sample_rate
    input_path = out_dir / "input.wav"
    samples, peak = decode_to_wav(path, input_path, rate, progress)
    manifest_path = out_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    manifest.update({"sample_rate": int(rate), "input": "input.wav", "source": str(path), **(extra or {})})
    entries = manifest.get("sonifications", [])
    for layer in layers:
        layout = _plan(sonifier, samples, layer, window_seconds)
        with WavWindows(input_path, long_clips.input_divisor(sonifier, peak)) as source:
            # pass 1: per-map maxima over the whole clip (exact: max over windows of the windows' maxima)
            with _bar(samples, rate, f"{describe_layer(layer)}: activations", progress) as bar:
                spans = iter(layout.keep)

                def peaks(window):
                    begin, end = next(spans)
                    scores = sonifier.peak_activations(window, layer)
                    bar.update(end - begin)
                    return scores

                best = windows.max_over_windows(layout, source.read, peaks)
            if features is None:
                chosen = np.argsort(-best, kind="stable")[:top].astype(np.int32)  # ties: lower index, as top_k
            else:
                chosen = np.asarray(list(features), np.int32)
            # pass 2: stitched raw reconstructions to temporary files, tracking each map's peak
            with tempfile.TemporaryDirectory(prefix=".tfsonify-raw-", dir=out_dir) as scratch:
                raw_paths = [Path(scratch) / f"{int(f)}.f32" for f in chosen]
                handles = [open(p, "wb") for p in raw_paths]
                tops = np.zeros(len(chosen), np.float32)
                try:
                    with _bar(samples, rate, f"{describe_layer(layer)}: sonifying {len(chosen)} map(s)", progress) as bar:
                        def write(begin, span):
                            nonlocal tops
                            for handle, row in zip(handles, span):
                                handle.write(np.ascontiguousarray(row, np.float32).tobytes())
                            if span.size:
                                tops = np.maximum(tops, np.abs(span).max(axis=1))
                            bar.update(span.shape[1])

                        windows.stitch_reconstruction(layout, source.read,
                                                      lambda window: sonifier.raw_reconstruction(window, layer, chosen),
                                                      write)
                finally:
                    for handle in handles:
                        handle.close()
                # pass 3: scale once (unit peak times max|x|) into the final WAVs, atomically
                replaced = {int(f) for f in chosen}  # a re-run of a map in the same folder replaces its entry
                entries = [e for e in entries if e["layer"] != layer_key(layer) or e["feature"] not in replaced]
                for feature, activation, raw_path, map_top in zip(chosen, best[chosen], raw_paths, tops):
                    stem = sonification_stem(layer, feature)
                    with WavWriter(out_dir / f"{stem}.wav", rate) as writer, open(raw_path, "rb") as raw_file:
                        while True:
                            block = np.fromfile(raw_file, np.float32, SCALE_BLOCK)
                            if block.size == 0:
                                break
                            writer.write(block / map_top * peak if map_top > 0 else np.zeros_like(block))
                    entry = {"layer": layer_key(layer), "feature": int(feature), "activation": float(activation),
                             "wav": f"{stem}.wav"}
                    if plots:
                        entry["spectrogram"] = _plot(out_dir, stem, input_path, layout, layer, int(feature),
                                                     float(activation), rate)
                    entries.append(entry)
    manifest["sonifications"] = entries
    with atomic_path(manifest_path, suffix=".json") as temporary:
        temporary.write_text(json.dumps(manifest, indent=2))
    return manifest


def _plot(out_dir: Path, stem: str, input_path: Path, layout: windows.WindowPlan, layer: int | str, feature: int,
          activation: float, rate: int) -> str:
    """The spectrogram PNG of input and sonification, over the first :data:`PLOT_SECONDS` (the whole clip if shorter)."""
    length = min(layout.clip_length, int(PLOT_SECONDS * rate))
    waveform, _ = soundfile.read(str(input_path), frames=length, dtype="float32")
    sound, _ = soundfile.read(str(out_dir / f"{stem}.wav"), frames=length, dtype="float32")
    part = "" if length == layout.clip_length else f", first {length / rate:.0f} s of {layout.clip_length / rate:.0f} s"
    plot_pair(out_dir / f"{stem}.png", waveform, sound, rate,
              f"{describe_layer(layer)}, map {feature} (max activation {activation:.3g}{part})")
    return f"{stem}.png"
