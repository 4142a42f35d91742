"""Real audio from Debian packages: speech from ``espeak-ng``, drum one-shots from ``hydrogen-drumkits``.

Nothing is installed silently: a missing tool or package raises ``RuntimeError`` with the
exact ``apt-get install`` line. All waveforms are mono float32 ``[time]`` at ``sample_rate`` Hz.
"""
from __future__ import annotations

import glob
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from tfsonify.io.audio import load_audio

__all__ = ["require_debian", "speak", "drum_samples", "mix_at_snr"]

HYDROGEN_DRUMKITS = "/usr/share/hydrogen/data/drumkits"


def require_debian(executable: str | None, package: str, path: str | None = None) -> None:
    """Raise ``RuntimeError`` with the ``apt-get install`` line if ``executable``/``path`` is missing."""
    missing = (executable is not None and shutil.which(executable) is None) or (path is not None and not Path(path).exists())
    if missing:
        raise RuntimeError(f"{package} is not installed; install it with: sudo apt-get install -y {package}")


def speak(text: str, voice: str = "en", speed: int = 150, pitch: int = 50, sample_rate: int = 8000) -> np.ndarray:
    """Speak ``text`` with espeak-ng (``voice`` like ``en``, ``en-us+m3``, ``en+f2``); speed in words/min, pitch 0-99."""
    require_debian("espeak-ng", "espeak-ng")
    with tempfile.TemporaryDirectory() as folder:
        wav = Path(folder) / "speech.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(wav), text],
                       check=True, capture_output=True, timeout=60)
        return load_audio(wav, sample_rate)


def drum_samples(pattern: str = "*", kit: str = "ElectricEmpireKit") -> list[Path]:
    """Sorted paths of hydrogen-drumkits one-shots in ``kit`` whose file name matches ``pattern`` (glob)."""
    require_debian(None, "hydrogen-drumkits", HYDROGEN_DRUMKITS)
    return sorted(Path(p) for p in glob.glob(f"{HYDROGEN_DRUMKITS}/{kit}/{pattern}.flac"))


def mix_at_snr(foreground: np.ndarray, background: np.ndarray, snr_db: float) -> tuple[np.ndarray, np.ndarray]:
    """Mix so that ``10 log10(P_fg / P_bg) == snr_db`` (power over the whole clip).

    ``background`` is tiled or cut to the foreground's length. Returns
    ``(mixture, scaled_background)``, both float32 ``[time]``; the mixture is
    ``foreground + scaled_background`` exactly.
    """
    foreground = np.asarray(foreground, np.float32)
    background = np.resize(np.asarray(background, np.float32), foreground.shape)
    power_fg = float(np.mean(foreground**2))
    power_bg = float(np.mean(background**2))
    if power_fg == 0 or power_bg == 0:
        raise ValueError("cannot mix at an SNR when the foreground or the background is silent")
    scaled = background * np.float32(np.sqrt(power_fg / (power_bg * 10 ** (snr_db / 10.0))))
    return foreground + scaled, scaled


# --- added for the demo dataset builder: flite, SVOX Pico, fluidsynth + fluid-soundfont-gm, sonic-pi-samples ---

FLUID_SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
SONIC_PI_SAMPLES = "/usr/share/sonic-pi/samples"
FLITE_VOICES = ("kal", "awb", "rms", "slt")
PICO_VOICES = ("en-US", "en-GB")


def flite_speak(text: str, voice: str = "slt", duration_stretch: float = 1.0, f0_mean: float | None = None,
                sample_rate: int = 8000) -> np.ndarray:
    """Speak ``text`` with flite (voices kal, awb, rms, slt); ``duration_stretch`` > 1 is slower, ``f0_mean`` in Hz.

    Returns mono float32 ``[time]`` at ``sample_rate`` Hz.
    """
    require_debian("flite", "flite")
    with tempfile.TemporaryDirectory() as folder:
        wav = Path(folder) / "speech.wav"
        command = ["flite", "-voice", voice, "--setf", f"duration_stretch={duration_stretch:.3f}"]
        if f0_mean is not None:
            command += ["--setf", f"int_f0_target_mean={f0_mean:.1f}"]
        subprocess.run(command + ["-t", text, "-o", str(wav)], check=True, capture_output=True, timeout=60)
        return load_audio(wav, sample_rate)


def pico_available() -> bool:
    """True when the ``py-nanotts`` wheel (SVOX Pico, offline) is installed."""
    import importlib.util

    return importlib.util.find_spec("py_nanotts") is not None


# py-nanotts segfaults when TensorFlow is loaded in the same process (measured: exit 139 after
# ``import tensorflow``), so Pico always runs in a child Python that never imports TensorFlow.
_PICO_CHILD = """
import io, json, sys
import numpy as np
import py_nanotts
tts = py_nanotts.NanoTTS()
out = {}
for index, (text, voice, speed, pitch) in enumerate(json.load(sys.stdin)):
    out[str(index)] = np.frombuffer(tts.speak(text, voice=voice, speed=speed, pitch=pitch), dtype="<i2")
buffer = io.BytesIO()
np.savez(buffer, **out)
sys.stdout.buffer.write(buffer.getvalue())
"""


def pico_speak_many(requests: list[tuple[str, str, float, float]], sample_rate: int = 8000) -> list[np.ndarray]:
    """SVOX Pico (``py-nanotts`` from PyPI, offline) for many ``(text, voice, speed, pitch)`` at once.

    ``voice`` is ``en-US`` or ``en-GB`` (also de-DE, es-ES, fr-FR, it-IT); ``speed`` (0.2-5) and ``pitch``
    (0.5-2) are multipliers. Runs one child process (see the note above). Returns mono float32 ``[time]``
    clips at ``sample_rate`` Hz, in request order.

    Raises:
        RuntimeError: ``py-nanotts`` is missing (with the pip line) or the synthesiser failed.
    """
    import io
    import json
    import sys

    from tfsonify.io.audio import resample

    if not pico_available():
        raise RuntimeError("py-nanotts is not installed; install it with: python3 -m pip install py-nanotts")
    if not requests:
        return []
    result = subprocess.run([sys.executable, "-c", _PICO_CHILD], input=json.dumps([list(r) for r in requests]).encode(),
                            capture_output=True, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"SVOX Pico (py-nanotts) failed with exit code {result.returncode}: "
                           f"{result.stderr.decode(errors='replace')[-500:]}")
    arrays = np.load(io.BytesIO(result.stdout))
    clips = []
    for index, (text, voice, _, _) in enumerate(requests):
        pcm = arrays[str(index)]
        if pcm.size == 0:
            raise RuntimeError(f"SVOX Pico returned no audio for {text!r} with voice {voice!r}")
        clips.append(resample(pcm.astype(np.float32) / 32768.0, 16000, sample_rate))
    return clips


def pico_speak(text: str, voice: str = "en-US", speed: float = 1.0, pitch: float = 1.0, sample_rate: int = 8000) -> np.ndarray:
    """Speak ``text`` with SVOX Pico; see :func:`pico_speak_many`. Mono float32 ``[time]`` at ``sample_rate``."""
    return pico_speak_many([(text, voice, speed, pitch)], sample_rate)[0]


def _midi_varlen(value: int) -> bytes:
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    return bytes(reversed(out))


def render_notes(notes: list[tuple[int, int, float]], note_seconds: float = 1.0, gap_seconds: float = 0.5,
                 velocity: int = 100, sample_rate: int = 8000, soundfont: str = FLUID_SOUNDFONT) -> list[np.ndarray]:
    """Render General-MIDI notes with fluidsynth and fluid-soundfont-gm, one fluidsynth run for all of them.

    Args:
        notes: ``(program, midi_note, velocity_scale)`` triples; program is the GM program 0-127
            (0 piano, 24 nylon guitar, 40 violin, 56 trumpet, 73 flute, ...), velocity_scale in (0, 1].
        note_seconds: how long each key is held.
        gap_seconds: silence after each note (the release tail is kept in its clip).

    Returns:
        One mono float32 ``[(note_seconds + gap_seconds) * sample_rate]`` clip per note.
    """
    require_debian("fluidsynth", "fluidsynth")
    require_debian(None, "fluid-soundfont-gm", soundfont)
    ticks_per_second = 960  # 480 ticks per quarter at the default 120 bpm
    events = b""
    for program, note, scale in notes:
        if not (0 <= program <= 127 and 0 <= note <= 127):
            raise ValueError(f"GM program and note must be 0-127; received program={program}, note={note}")
        level = max(1, min(127, int(round(velocity * scale))))
        events += _midi_varlen(0) + bytes([0xC0, program]) + _midi_varlen(0) + bytes([0x90, note, level])
        events += _midi_varlen(int(note_seconds * ticks_per_second)) + bytes([0x80, note, 0])
        events += _midi_varlen(int(gap_seconds * ticks_per_second)) + bytes([0xB0, 123, 0])  # all notes off
    events += _midi_varlen(0) + b"\xff\x2f\x00"
    midi = b"MThd" + (6).to_bytes(4, "big") + (0).to_bytes(2, "big") + (1).to_bytes(2, "big") + (480).to_bytes(2, "big")
    midi += b"MTrk" + len(events).to_bytes(4, "big") + events
    with tempfile.TemporaryDirectory() as folder:
        midi_path, wav = Path(folder) / "notes.mid", Path(folder) / "notes.wav"
        midi_path.write_bytes(midi)
        subprocess.run(["fluidsynth", "-ni", "-q", "-g", "0.5", "-r", "16000", "-F", str(wav), soundfont, str(midi_path)],
                       check=True, capture_output=True, timeout=600)
        audio = load_audio(wav, sample_rate)
    step = int(round((note_seconds + gap_seconds) * sample_rate))
    audio = np.pad(audio, (0, max(0, step * len(notes) - audio.size)))
    return [audio[index * step : (index + 1) * step].copy() for index in range(len(notes))]


def sonic_pi_samples(pattern: str = "loop_*") -> list[Path]:
    """Sorted paths of sonic-pi-samples FLACs whose file name matches ``pattern`` (glob, no extension)."""
    require_debian(None, "sonic-pi-samples", SONIC_PI_SAMPLES)
    return sorted(Path(p) for p in glob.glob(f"{SONIC_PI_SAMPLES}/{pattern}.flac"))

__all__ += ["flite_speak", "pico_available", "pico_speak", "pico_speak_many", "render_notes", "sonic_pi_samples",
            "FLITE_VOICES", "PICO_VOICES"]


# --- more speech engines for the demo: Festival (Debian festvox voices), espeak-ng + MBROLA, RHVoice ---

#: Festival voices the demo uses when their Debian package is installed: ``{voice: (package, directory)}``.
FESTIVAL_VOICES = {
    "kal_diphone": ("festvox-kallpc16k", "/usr/share/festival/voices/english/kal_diphone"),
    "ked_diphone": ("festvox-kdlpc16k", "/usr/share/festival/voices/english/ked_diphone"),
    "cmu_us_slt_arctic_hts": ("festvox-us-slt-hts", "/usr/share/festival/voices/us/cmu_us_slt_arctic_hts"),
}
#: espeak-ng MBROLA voices (``-v mb-us1``): ``{voice: (package, database)}``; the ``mbrola`` package runs them.
MBROLA_VOICES = {
    "mb-us1": ("mbrola-us1", "/usr/share/mbrola/us1"),
    "mb-us2": ("mbrola-us2", "/usr/share/mbrola/us2"),
    "mb-us3": ("mbrola-us3", "/usr/share/mbrola/us3"),
    "mb-en1": ("mbrola-en1", "/usr/share/mbrola/en1"),
}
#: RHVoice English voices (``RHVoice-test -p <voice>``), Debian ``rhvoice`` + ``rhvoice-english`` where they exist.
RHVOICE_VOICES = ("alan", "bdl", "clb", "slt")
RHVOICE_DATA = "/usr/share/RHVoice/voices"


def festival_voices() -> tuple[str, ...]:
    """The :data:`FESTIVAL_VOICES` installed here (empty when ``festival`` itself is missing)."""
    if shutil.which("festival") is None:
        return ()
    return tuple(voice for voice, (_, folder) in FESTIVAL_VOICES.items() if Path(folder).is_dir())


def mbrola_voices() -> tuple[str, ...]:
    """The :data:`MBROLA_VOICES` usable here: ``mbrola`` and ``espeak-ng`` on the PATH and the voice database installed."""
    if shutil.which("mbrola") is None or shutil.which("espeak-ng") is None:
        return ()
    return tuple(voice for voice, (_, database) in MBROLA_VOICES.items() if Path(database).exists())


def rhvoice_voices() -> tuple[str, ...]:
    """The :data:`RHVOICE_VOICES` installed here (``RHVoice-test`` on the PATH and the voice's data folder)."""
    if shutil.which("RHVoice-test") is None:
        return ()
    return tuple(voice for voice in RHVOICE_VOICES if (Path(RHVOICE_DATA) / voice).is_dir())


def _scheme_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def festival_speak_many(requests: list[tuple[str, str, float]], sample_rate: int = 8000) -> list[np.ndarray]:
    """Festival for many ``(text, voice, duration_stretch)`` at once: one ``festival --batch`` run per voice.

    ``voice`` is a :data:`FESTIVAL_VOICES` name; ``duration_stretch`` > 1 is slower (diphone voices honour it,
    the HTS voice ignores it). Returns mono float32 ``[time]`` clips at ``sample_rate`` Hz, in request order.

    Raises:
        RuntimeError: festival or a voice is missing (with the apt-get line), or festival failed.
    """
    require_debian("festival", "festival")
    clips: list[np.ndarray | None] = [None] * len(requests)
    by_voice: dict[str, list[int]] = {}
    for index, (_, voice, _) in enumerate(requests):
        if voice not in FESTIVAL_VOICES:
            raise ValueError(f"unknown Festival voice {voice!r}; known: {', '.join(FESTIVAL_VOICES)}")
        package, folder = FESTIVAL_VOICES[voice]
        require_debian(None, package, folder)
        by_voice.setdefault(voice, []).append(index)
    with tempfile.TemporaryDirectory() as folder:
        for voice, indices in by_voice.items():
            lines = [f"(voice_{voice})"]
            for index in indices:
                text, _, stretch = requests[index]
                lines.append(f"(Parameter.set 'Duration_Stretch {float(stretch):.3f})")
                lines.append(f"(utt.save.wave (utt.synth (Utterance Text {_scheme_string(text)})) "
                             f"{_scheme_string(str(Path(folder) / f'{index}.wav'))} 'riff)")
            script = Path(folder) / f"{voice}.scm"
            script.write_text("\n".join(lines) + "\n")
            result = subprocess.run(["festival", "--batch", str(script)], capture_output=True, timeout=1200)
            if result.returncode != 0:
                raise RuntimeError(f"festival ({voice}) failed with exit code {result.returncode}: "
                                   f"{result.stderr.decode(errors='replace')[-500:]}")
            for index in indices:
                wav = Path(folder) / f"{index}.wav"
                if not wav.is_file():
                    raise RuntimeError(f"festival ({voice}) wrote no audio for {requests[index][0]!r}")
                clips[index] = load_audio(wav, sample_rate)
    return clips  # type: ignore[return-value]


def rhvoice_speak(text: str, voice: str = "slt", rate: float = 1.0, pitch: float = 1.0, sample_rate: int = 8000) -> np.ndarray:
    """Speak ``text`` with RHVoice (``RHVoice-test -p voice``); ``rate`` and ``pitch`` are multipliers around 1."""
    require_debian("RHVoice-test", "rhvoice")
    with tempfile.TemporaryDirectory() as folder:
        wav = Path(folder) / "speech.wav"
        subprocess.run(["RHVoice-test", "-p", voice, "-r", str(int(round(100 * rate))), "-t", str(int(round(100 * pitch))),
                        "-o", str(wav)], input=text.encode(), check=True, capture_output=True, timeout=60)
        return load_audio(wav, sample_rate)


__all__ += ["festival_voices", "festival_speak_many", "mbrola_voices", "rhvoice_voices", "rhvoice_speak",
            "FESTIVAL_VOICES", "MBROLA_VOICES", "RHVOICE_VOICES"]
