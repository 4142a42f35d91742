"""A generated corpus of hostile audio files (issue 26): truncated, header-corrupted, mislabelled, zero-byte and
huge-header variants of WAV, FLAC, OGG, MP3 and AIFF files written by soundfile. Shared by
tests/test_faults_files.py (short form) and benchmarks/fuzz_bench.py (long form); deterministic for a seed.
"""
from __future__ import annotations

import io
import random
import struct

import numpy as np
import soundfile

#: (extension, soundfile format, subtype) of the well-formed seeds
FORMATS = [(".wav", "WAV", "PCM_16"), (".wav", "WAV", "FLOAT"), (".flac", "FLAC", "PCM_16"),
           (".ogg", "OGG", "VORBIS"), (".mp3", "MP3", "MPEG_LAYER_III"), (".aiff", "AIFF", "PCM_24")]
EXTENSIONS = [".wav", ".flac", ".ogg", ".mp3", ".aiff", ".txt", ""]


def seeds(rate: int = 8000, seconds: float = 0.4) -> dict[str, tuple[str, bytes]]:
    """Well-formed files: ``{label: (extension, bytes)}`` of a stereo chirp in each of :data:`FORMATS`."""
    t = np.arange(int(rate * seconds)) / rate
    chirp = 0.4 * np.sin(2 * np.pi * (300 + 900 * t) * t)
    stereo = np.stack([chirp, chirp[::-1]], axis=1).astype("float32")
    out = {}
    for extension, kind, subtype in FORMATS:
        buffer = io.BytesIO()
        soundfile.write(buffer, stereo, rate, format=kind, subtype=subtype)
        out[f"{kind.lower()}-{subtype.lower()}"] = (extension, buffer.getvalue())
    return out


def _riff(chunks: list[tuple[bytes, bytes]], declared: int | None = None) -> bytes:
    body = b"WAVE" + b"".join(tag + struct.pack("<I", len(data) if size is None else size) + data
                              for tag, data, size in ((c[0], c[1], None) if len(c) == 2 else c for c in chunks))
    return b"RIFF" + struct.pack("<I", len(body) if declared is None else declared) + body


def _fmt(channels=1, rate=8000, bits=16, tag=1) -> bytes:
    block = channels * bits // 8
    return struct.pack("<HHIIHH", tag, channels, rate, (rate * block) & 0xFFFFFFFF, block & 0xFFFF, bits)


def crafted() -> dict[str, tuple[str, bytes]]:
    """Hand-made hostile headers: zero bytes, a header alone, sizes far beyond the file, absurd channel counts and
    rates, a 1 MiB junk chunk before ``fmt``, a format tag nobody decodes."""
    pcm = np.zeros(200, "<i2").tobytes()
    return {
        "zero-bytes": (".wav", b""),
        "riff-only": (".wav", b"RIFF"),
        "header-no-data": (".wav", _riff([(b"fmt ", _fmt())])),
        "data-size-4gb": (".wav", _riff([(b"fmt ", _fmt()), (b"data", pcm, 0xFFFFFFF0)], declared=0xFFFFFFF8)),
        "riff-size-huge": (".wav", _riff([(b"fmt ", _fmt()), (b"data", pcm)], declared=0x7FFFFFFF)),
        "channels-65535": (".wav", _riff([(b"fmt ", _fmt(channels=65535)), (b"data", pcm)])),
        "channels-0": (".wav", _riff([(b"fmt ", _fmt(channels=0)), (b"data", pcm)])),
        "rate-0": (".wav", _riff([(b"fmt ", _fmt(rate=0)), (b"data", pcm)])),
        "rate-4e9": (".wav", _riff([(b"fmt ", _fmt(rate=4_000_000_000)), (b"data", pcm)])),
        "rate-1": (".wav", _riff([(b"fmt ", _fmt(rate=1)), (b"data", pcm)])),
        "bits-7": (".wav", _riff([(b"fmt ", _fmt(bits=7)), (b"data", pcm)])),
        "format-tag-unknown": (".wav", _riff([(b"fmt ", _fmt(tag=0x1234)), (b"data", pcm)])),
        "junk-chunk-1mib": (".wav", _riff([(b"JUNK", b"\0" * 2**20), (b"fmt ", _fmt()), (b"data", pcm)])),
        "fmt-size-huge": (".wav", _riff([(b"fmt ", _fmt(), 0xFFFFFF00), (b"data", pcm)])),
        "text": (".wav", b"hello, I am a text file, not audio\n" * 20),
        "html": (".mp3", b"<!doctype html><html><body>404</body></html>"),
        "random-bytes": (".ogg", bytes(random.Random(0).getrandbits(8) for _ in range(4096))),
    }


def corpus(seed: int = 0, per_seed: int = 6) -> list[tuple[str, str, bytes]]:
    """``[(label, extension, bytes)]``: every seed and crafted file, plus ``per_seed`` mutants of each seed
    (truncated at a random point, bytes of the header overwritten, the bytes under another format's extension)."""
    rng = random.Random(seed)
    items = [(label, ext, data) for label, (ext, data) in {**seeds(), **crafted()}.items()]
    for label, (extension, data) in seeds().items():
        for i in range(per_seed):
            kind = ("truncate", "header", "mislabel")[i % 3]
            if kind == "truncate":
                cut = rng.randrange(0, len(data))
                items.append((f"{label}-truncated-{cut}", extension, data[:cut]))
            elif kind == "header":
                mutated = bytearray(data)
                for _ in range(rng.randint(1, 8)):
                    mutated[rng.randrange(0, min(64, len(mutated)))] = rng.getrandbits(8)
                items.append((f"{label}-header-{i}", extension, bytes(mutated)))
            else:
                other = rng.choice([e for e in EXTENSIONS if e != extension])
                items.append((f"{label}-as{other or '-none'}", other, data))
    return items
