"""Live sonification I/O: a file at real-time pace or the microphone into a stream, out to a WAV and/or speakers.

The sonification itself is :class:`tfsonify.engine.windows.WindowedStream` (``Sonifier.stream``); this module feeds
it and drains it:

- :func:`file_blocks`: a file read in blocks (soundfile + soxr streaming resampling), optionally paced to real
  time (each block is released when its audio time has passed, as a recorder would deliver it);
- :func:`microphone_blocks`: PortAudio input through ``sounddevice`` (optional extra ``tfsonify[live]``;
  Debian/Ubuntu also need ``libportaudio2``), resampled from the device rate with soxr;
- :func:`run_stream`: blocks through the stream into a :class:`tfsonify.io.blocks.WavWriter` (aligned with
  the input: the stream's latency is dropped) and/or a ``sounddevice`` output (as produced, delayed by the
  latency); returns timing figures.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import numpy as np
import soxr

from tfsonify.io.blocks import WavWriter, audio_info, read_blocks

__all__ = ["StreamReport", "file_blocks", "microphone_blocks", "open_player", "run_stream", "import_sounddevice"]


def import_sounddevice():
    """The ``sounddevice`` module, or a ``ValueError`` saying what to install (the package or PortAudio)."""
    try:
        import sounddevice
    except ImportError:
        raise ValueError("live audio needs the optional 'sounddevice' package: pip install 'tfsonify[live]'") from None
    except OSError as error:  # the package is there, the PortAudio library is not
        raise ValueError(f"live audio needs the PortAudio library ({error}); install it, e.g. "
                         f"'apt-get install libportaudio2' on Debian/Ubuntu or 'brew install portaudio' on macOS") from None
    return sounddevice


def file_blocks(path, sample_rate: int, block_size: int, realtime: bool = True,
                clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> Iterator[np.ndarray]:
    """Mono float32 blocks of ``block_size`` samples (the last one ragged) of a file at ``sample_rate``.

    With ``realtime``, block ``i`` is yielded no earlier than ``(i + 1) * block_size / sample_rate`` seconds after the
    first: the pace of a live source.
    """
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"block size must be a positive number of samples; received {block_size!r}")
    pending = np.zeros(0, np.float32)
    start, sent = clock(), 0

    def paced(block):
        nonlocal sent
        sent += block.size
        if realtime:
            wait = start + sent / sample_rate - clock()
            if wait > 0:
                sleep(wait)
        return block

    for chunk, _ in read_blocks(path, sample_rate, block_seconds=1.0, info=audio_info(path)):
        pending = np.concatenate([pending, chunk])
        while pending.size >= block_size:
            yield paced(pending[:block_size])
            pending = pending[block_size:]
    if pending.size:
        yield paced(pending)


def microphone_blocks(sample_rate: int, block_size: int, seconds: float | None = None, device=None) -> Iterator[np.ndarray]:
    """Mono float32 blocks from the default (or given) input device, resampled to ``sample_rate``.

    Runs for ``seconds`` (None: until the consumer stops or Ctrl-C). ``ValueError`` when sounddevice or PortAudio is
    missing, or there is no input device.
    """
    sd = import_sounddevice()
    try:
        info = sd.query_devices(device, kind="input")
    except (sd.PortAudioError, ValueError) as error:
        raise ValueError(f"no audio input device available ({error}); use --input FILE instead of --mic") from None
    device_rate = int(info["default_samplerate"])
    resampler = None if device_rate == sample_rate else \
        soxr.ResampleStream(device_rate, sample_rate, 1, dtype="float32", quality="HQ")
    device_block = max(1, int(round(block_size * device_rate / sample_rate)))
    limit = None if seconds is None else int(seconds * device_rate)
    taken = 0
    try:
        with sd.InputStream(samplerate=device_rate, channels=1, dtype="float32", blocksize=device_block,
                            device=device) as source:
            while limit is None or taken < limit:
                data, _overflowed = source.read(device_block)
                mono = data[:, 0].copy()
                taken += mono.size
                yield mono if resampler is None else resampler.resample_chunk(mono)
    except sd.PortAudioError as error:
        raise ValueError(f"audio input failed: {error}") from None


def open_player(sample_rate: int, device=None):
    """A started ``sounddevice.OutputStream`` (mono float32) or ``ValueError`` (no package, PortAudio or device)."""
    sd = import_sounddevice()
    try:
        sd.query_devices(device, kind="output")
        player = sd.OutputStream(samplerate=sample_rate, channels=1, dtype="float32", device=device)
        player.start()
    except (sd.PortAudioError, ValueError) as error:
        raise ValueError(f"no audio output device available for --play ({error})") from None
    return player


@dataclass
class StreamReport:
    """Figures of one run: ``seconds`` of audio in, ``compute_seconds`` spent in the stream, ``latency`` samples."""

    seconds: float
    compute_seconds: float
    latency: int
    sample_rate: int

    @property
    def realtime_factor(self) -> float:
        """Audio seconds sonified per second of compute (> 1: faster than real time)."""
        return self.seconds / self.compute_seconds if self.compute_seconds > 0 else float("inf")


def run_stream(stream, blocks: Iterable[np.ndarray], sample_rate: int, out_path=None, player=None,
               row: int = 0, stop_on_interrupt: bool = False) -> StreamReport:
    """Feed ``blocks`` through ``stream``; write map ``row`` to ``out_path`` (aligned with the input) and/or play it.

    The WAV is written incrementally and atomically (complete at the end, none on failure); it holds the
    sonification without the stream's leading latency, as long as the input. With ``stop_on_interrupt``, Ctrl-C
    ends the input (the microphone's normal stop): the stream is flushed and the file completed.
    """
    writer = WavWriter(out_path, sample_rate) if out_path is not None else None
    skip, compute, received = stream.latency, 0.0, 0

    def emit(out: np.ndarray) -> None:
        nonlocal skip
        signal = out[row]
        if player is not None and signal.size:
            player.write(np.ascontiguousarray(signal.reshape(-1, 1)))
        if writer is not None:
            dropped = min(skip, signal.size)
            skip -= dropped
            if signal.size > dropped:
                writer.write(signal[dropped:])

    if writer is not None:
        writer.__enter__()
    try:
        try:
            for block in blocks:
                began = time.perf_counter()
                out = stream.process(block)
                compute += time.perf_counter() - began
                received += np.size(block)
                emit(out)
        except KeyboardInterrupt:
            if not stop_on_interrupt:
                raise
        began = time.perf_counter()
        out = stream.flush()
        compute += time.perf_counter() - began
        emit(out)
    except BaseException as error:
        if writer is not None:
            writer.__exit__(type(error), error, error.__traceback__)
        raise
    if writer is not None:
        writer.__exit__(None, None, None)
    return StreamReport(received / sample_rate, compute, stream.latency, sample_rate)
