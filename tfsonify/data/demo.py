"""The real demo dataset: spoken keywords, instruments, drums, backgrounds and mixtures from Debian packages.

Everything is synthesised or sampled locally (nothing is downloaded at build time):

* **keywords** (the classification task): ``yes no up down left right on off stop go`` spoken by
  ``espeak-ng`` (accents × voice variants, ``-v en-us+m3`` style: a variant on ``en-gb`` is silently
  ignored by espeak-ng, so only accents that honour it are used), ``flite`` (kal, awb, rms, slt) and SVOX
  Pico (``py-nanotts`` from PyPI, offline; en-US, en-GB), each take with rate and pitch jitter, trimmed
  and placed at a random offset in a 1 s clip with a random peak level.
* **instruments**: General-MIDI families (piano, organ, guitar, bass, strings, brass, reed, flute) rendered
  with ``fluidsynth`` from ``fluid-soundfont-gm``.
* **drums**: one-shots (kick, snare, hihat, cymbal, tom) from ``hydrogen-drumkits``.
* **backgrounds**: loops from ``sonic-pi-samples``.
* **mixtures**: held-out-voice keywords over a background crop at a known SNR, saved with both components.

Layout (folder per class, 8 kHz float WAV)::

    OUT/manifest.json                       every clip: path, task, label, engine, voice, accent, variant,
                                            speed, pitch, split, seconds; mixtures: snr_db + component paths
    OUT/keywords/<word>/<engine>_<voice>_<take>.wav
    OUT/instruments/<family>/<program>_<note>.wav
    OUT/drums/<kind>/<kit>_<sample>.wav
    OUT/backgrounds/<name>.wav
    OUT/mixtures/<word>/<id>.wav            OUT/mixture_components/<id>.speech.wav, <id>.background.wav

Every keyword clip records which engine and voice made it, and ``split`` says where it belongs:
``train``, ``heldout_voice`` (the espeak-ng voice variants ``HELD_OUT_VARIANTS``, in every accent, never
used for training) or ``heldout_engine`` (every clip of one whole engine: ``pico`` when py-nanotts works,
else ``flite``). All flite voices train by default: holding one out (``HELD_OUT_FLITE``, e.g. ``"awb"``)
measured ~20 % accuracy on it, because with three flite voices left it behaves like a new engine, not a
new variant (width-0.25 CNN12, 16 epochs: held-out espeak-ng variants 95.7 %, flite awb 16.7 %).

API summary::

    build_demo_data(out, small=False, seed=0, workers=None, takes=2) -> dict (the manifest)
    missing_packages(small=False) -> {component: [debian packages]}; apt_line(packages) -> str
    read_demo(root, task="keywords", splits=None) -> ClipList (metadata: engine, voice, accent, variant, split, ...)
    KEYWORDS, HELD_OUT_VARIANTS, HELD_OUT_FLITE
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from tfsonify.io.audio import load_audio, write_wav

SAMPLE_RATE = 8000  # the demo data's rate: CNN12's (tfsonify.models.cnn12.SAMPLE_RATE)
from tfsonify.data import sources
from tfsonify.data.pipeline import ClipList

__all__ = ["build_demo_data", "build_espeak_keywords", "ensure_demo_data", "read_demo", "missing_packages", "apt_line", "KEYWORDS", "HELD_OUT_VARIANTS",
           "HELD_OUT_FLITE"]

KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
#: espeak-ng accents that honour a ``+variant`` suffix (``en-gb+m3`` sounds exactly like ``en``; measured).
ESPEAK_ACCENTS = ("en", "en-us", "en-029", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd")
ESPEAK_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5")
#: Voice variants never used for training (all accents): the "unseen voices" evaluation.
HELD_OUT_VARIANTS = ("m3", "f4")
#: espeak-ng variants of :func:`build_espeak_keywords`' small keyword set (every accent of ESPEAK_ACCENTS).
KEYWORD_SET_VARIANTS = ("m1", "m3", "m5", "m7", "f1", "f2", "f3", "f4", "croak", "whisper")
#: A flite voice to hold out with the variants (None: every flite voice is used for training).
HELD_OUT_FLITE: str | None = None
INSTRUMENT_FAMILIES = {  # General-MIDI programs (0-based) and a note range per family
    "piano": ((0, 1, 4), (48, 60, 67, 72)),
    "organ": ((16, 17, 19), (48, 55, 60, 67)),
    "guitar": ((24, 25, 26), (45, 52, 57, 64)),
    "bass": ((32, 33, 34), (28, 33, 38, 43)),
    "strings": ((40, 41, 48), (55, 62, 67, 74)),
    "brass": ((56, 57, 61), (50, 55, 60, 65)),
    "reed": ((64, 65, 71), (55, 60, 65, 70)),
    "flute": ((73, 74, 75), (67, 72, 76, 79)),
}
DRUM_KINDS = {  # kind -> substrings of hydrogen one-shot file names (lower case)
    "kick": ("kick", "bd_", "bassdrum", "bass drum"),
    "snare": ("snare", "sd_"),
    "hihat": ("hihat", "hi-hat", "hh", "hat"),
    "cymbal": ("crash", "ride", "cymbal", "splash", "china"),
    "tom": ("tom",),
}
MIXTURE_SNRS_DB = (0.0, 5.0, 10.0, 20.0)

COMPONENT_PACKAGES = {
    "espeak-ng": ["espeak-ng"],
    "flite": ["flite"],
    "instruments": ["fluidsynth", "fluid-soundfont-gm"],
    "drums": ["hydrogen-drumkits"],
    "backgrounds": ["sonic-pi-samples"],
}
_PACKAGE_CHECKS = {
    "espeak-ng": ("espeak-ng", None),
    "flite": ("flite", None),
    "fluidsynth": ("fluidsynth", None),
    "fluid-soundfont-gm": (None, sources.FLUID_SOUNDFONT),
    "hydrogen-drumkits": (None, sources.HYDROGEN_DRUMKITS),
    "sonic-pi-samples": (None, sources.SONIC_PI_SAMPLES),
}


def _installed(package: str) -> bool:
    executable, path = _PACKAGE_CHECKS[package]
    return (executable is None or shutil.which(executable) is not None) and (path is None or Path(path).exists())


def missing_packages(small: bool = False) -> dict[str, list[str]]:
    """``{component: [missing Debian packages]}`` for the components the build uses (only non-empty entries)."""
    components = ["espeak-ng", "drums"] + ([] if small else ["flite", "instruments", "backgrounds"])
    missing = {c: [p for p in COMPONENT_PACKAGES[c] if not _installed(p)] for c in components}
    return {c: packages for c, packages in missing.items() if packages}


def apt_line(packages) -> str:
    """The exact install command for ``packages``."""
    return "sudo apt-get install -y " + " ".join(sorted(set(packages)))


def _note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _rng(seed: int, *keys) -> np.random.Generator:
    return np.random.default_rng([seed] + [zlib.crc32(str(key).encode()) for key in keys])


def _trim(waveform: np.ndarray, threshold_db: float = -40.0, frame: int = 80) -> np.ndarray:
    """Drop leading/trailing frames quieter than ``threshold_db`` below the loudest frame (10 ms frames)."""
    frames = waveform[: waveform.size // frame * frame].reshape(-1, frame)
    if frames.size == 0:
        return waveform
    energy = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    loud = np.flatnonzero(energy > energy.max() + threshold_db)
    return waveform[loud[0] * frame : (loud[-1] + 1) * frame]


def _place(speech: np.ndarray, rng: np.random.Generator, length: int = SAMPLE_RATE) -> tuple[np.ndarray, float]:
    """Trim, scale to a random peak in [0.3, 0.9] and put at a random offset in a ``length`` clip."""
    speech = _trim(np.asarray(speech, np.float32))
    if speech.size == 0 or not np.any(speech):
        raise RuntimeError("the synthesiser produced silence")
    speech = speech / np.max(np.abs(speech)) * rng.uniform(0.3, 0.9)
    if speech.size > length:  # keep the middle; happens only for the slowest takes
        start = (speech.size - length) // 2
        speech = speech[start : start + length]
    clip = np.zeros(length, np.float32)
    offset = int(rng.integers(0, length - speech.size + 1))
    clip[offset : offset + speech.size] = speech
    return clip, speech.size / SAMPLE_RATE


# ---------------------------------------------------------------------------------------------- keywords


def _keyword_jobs(words, accents, variants, takes, flite_voices, flite_takes, pico_voices, pico_takes, seed):
    jobs = []
    for word in words:
        for accent in accents:
            for variant in variants:
                for take in range(takes):
                    rng = _rng(seed, "espeak", word, accent, variant, take)
                    jobs.append(dict(engine="espeak-ng", word=word, voice=f"{accent}+{variant}", accent=accent,
                                     variant=variant, take=take, speed=int(rng.integers(120, 191)),
                                     pitch=int(rng.integers(25, 76))))
        for voice in flite_voices:
            for take in range(flite_takes):
                rng = _rng(seed, "flite", word, voice, take)
                jobs.append(dict(engine="flite", word=word, voice=voice, accent="en", variant=voice, take=take,
                                 speed=round(float(rng.uniform(0.8, 1.25)), 3),
                                 pitch=round(float(rng.uniform(0.85, 1.2)), 3)))
        for voice in pico_voices:
            for take in range(pico_takes):
                rng = _rng(seed, "pico", word, voice, take)
                jobs.append(dict(engine="pico", word=word, voice=voice, accent=voice, variant=voice, take=take,
                                 speed=round(float(rng.uniform(0.8, 1.25)), 3),
                                 pitch=round(float(rng.uniform(0.85, 1.2)), 3)))
    return jobs


_FLITE_F0 = {"kal": 100.0, "awb": 110.0, "rms": 100.0, "slt": 170.0}  # typical mean F0 (Hz), jittered by ``pitch``


def _synthesise(job) -> np.ndarray:
    if job["engine"] == "espeak-ng":
        return sources.speak(job["word"], voice=job["voice"], speed=job["speed"], pitch=job["pitch"], sample_rate=SAMPLE_RATE)
    if job["engine"] == "flite":
        return sources.flite_speak(job["word"], voice=job["voice"], duration_stretch=1.0 / job["speed"],
                                   f0_mean=_FLITE_F0[job["voice"]] * job["pitch"], sample_rate=SAMPLE_RATE)
    raise ValueError(f"unknown engine {job['engine']!r}")


def _keyword_split(job, held_out_engine: str | None) -> str:
    if job["engine"] == held_out_engine:
        return "heldout_engine"
    if (job["engine"] == "espeak-ng" and job["variant"] in HELD_OUT_VARIANTS) or \
            (job["engine"] == "flite" and HELD_OUT_FLITE is not None and job["voice"] == HELD_OUT_FLITE):
        return "heldout_voice"
    return "train"


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "-" for c in name)


# ---------------------------------------------------------------------------------------------- builder


def build_demo_data(out: str | os.PathLike, small: bool = False, seed: int = 0, workers: int | None = None,
                    words: tuple[str, ...] | None = None, takes: int = 2) -> dict:
    """Build the demo dataset into ``out`` (created; an existing manifest there is replaced).

    Full build: 10 keywords × (7 espeak-ng accents × 12 variants × 2 takes + 4 flite voices × 6 takes +
    2 Pico voices × 12 takes) = 2,160 keyword clips, 96 instrument clips, up to 80 drum one-shots,
    17 background loops and 40 mixtures. ``small=True`` (for tests): 3 keywords × 2 accents × 3 variants,
    4 drum one-shots (kick, snare), no flite/Pico/fluidsynth/sonic-pi; backgrounds are drum loops.

    Components whose Debian packages are missing are skipped with a printed note and the exact
    ``apt-get install`` line; espeak-ng is required (the keyword task needs it).

    Args:
        out: output folder.
        small: build the small test subset.
        seed: seed for jitter, offsets, levels, SNRs.
        workers: synthesis threads (default: CPU count).
        words: keywords to use (default: all ten, or three with ``small``).
        takes: jittered takes per espeak-ng voice and word (flite gets 3×, Pico 6× as many: they have
            fewer voices); the full build's figures above are for the default 2.

    Returns:
        The manifest (also written to ``out/manifest.json``).

    Raises:
        RuntimeError: espeak-ng is not installed (message has the apt-get line).
    """
    started = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    workers = workers or os.cpu_count() or 2
    missing = missing_packages(small)
    if missing:
        packages = sorted({p for ps in missing.values() for p in ps})
        _note(f"build-demo-data: missing Debian packages for {', '.join(sorted(missing))}; install with:\n  {apt_line(packages)}")
    if "espeak-ng" in missing:
        raise RuntimeError(f"espeak-ng is required for the keyword task; install it with: {apt_line(['espeak-ng'])}")
    skipped = {component: f"missing {', '.join(packages)} ({apt_line(packages)})" for component, packages in missing.items()}
    words = tuple(words or (KEYWORDS[:3] if small else KEYWORDS))
    unknown = [w for w in words if w not in KEYWORDS]
    if unknown:
        raise ValueError(f"unknown keywords {unknown}; choose from {KEYWORDS}")
    use_flite = not small and "flite" not in missing
    use_pico = not small and sources.pico_available()
    if not small and not use_pico:
        skipped["pico"] = "py-nanotts is not installed (python3 -m pip install py-nanotts)"
        _note("build-demo-data: SVOX Pico skipped: py-nanotts is not installed (python3 -m pip install py-nanotts)")
    held_out_engine = "pico" if use_pico else ("flite" if use_flite else None)
    if small:
        accents, variants, takes = ESPEAK_ACCENTS[:2], ("m1", "f1", HELD_OUT_VARIANTS[0]), 1
    else:
        accents, variants = ESPEAK_ACCENTS, ESPEAK_VARIANTS
    if takes < 1:
        raise ValueError(f"takes must be >= 1; received {takes}")
    jobs = _keyword_jobs(words, accents, variants, takes, sources.FLITE_VOICES if use_flite else (), 3 * takes,
                         sources.PICO_VOICES if use_pico else (), 6 * takes, seed)
    clips: list[dict] = []
    failures: list[str] = []

    # Keywords: espeak-ng and flite in threads (each call is a subprocess), Pico in one child process.
    def make(job):
        try:
            return job, _synthesise(job), None
        except (RuntimeError, OSError, ValueError) as error:
            return job, None, str(error)

    local_jobs = [j for j in jobs if j["engine"] != "pico"]
    pico_jobs = [j for j in jobs if j["engine"] == "pico"]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(make, local_jobs))
    if pico_jobs:
        try:
            waves = sources.pico_speak_many([(j["word"], j["voice"], j["speed"], j["pitch"]) for j in pico_jobs], SAMPLE_RATE)
            results += [(job, wave, None) for job, wave in zip(pico_jobs, waves)]
        except RuntimeError as error:
            skipped["pico"] = str(error)
            _note(f"build-demo-data: SVOX Pico failed and is skipped: {error}")
            held_out_engine = "flite" if use_flite else None
    keyword_speech = {}
    for job, wave, error in results:
        name = f"{job['engine']}_{_safe(job['voice'])}_{job['take']}"
        if wave is None:
            failures.append(f"{job['engine']} {job['voice']} {job['word']!r}: {error}")
            continue
        try:
            clip, speech_seconds = _place(wave, _rng(seed, "place", job["word"], name))
        except RuntimeError as error:
            failures.append(f"{job['engine']} {job['voice']} {job['word']!r}: {error}")
            continue
        path = out / "keywords" / job["word"] / f"{name}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_wav(path, clip, SAMPLE_RATE)
        split = _keyword_split(job, held_out_engine)
        entry = dict(path=str(path.relative_to(out)), task="keywords", label=job["word"], engine=job["engine"],
                     voice=job["voice"], accent=job["accent"], variant=job["variant"], take=job["take"],
                     speed=job["speed"], pitch=job["pitch"], split=split, seconds=1.0,
                     speech_seconds=round(speech_seconds, 3))
        clips.append(entry)
        keyword_speech[entry["path"]] = clip

    # Drums (hydrogen-drumkits one-shots).
    drum_clips = []
    if "drums" not in missing:
        drum_clips = _drums(out, kinds=("kick", "snare") if small else tuple(DRUM_KINDS), per_kind=2 if small else 16,
                            seed=seed, failures=failures)
        clips += drum_clips
    else:
        _note(f"build-demo-data: drums skipped ({skipped['drums']})")

    # Instruments (fluidsynth + fluid-soundfont-gm).
    if not small:
        if "instruments" not in missing:
            clips += _instruments(out)
        else:
            _note(f"build-demo-data: instruments skipped ({skipped['instruments']})")

    # Backgrounds: sonic-pi loops; drum loops made from the one-shots when sonic-pi is not used.
    backgrounds = []
    if not small and "backgrounds" not in missing:
        backgrounds = _sonic_pi_backgrounds(out)
    elif drum_clips:
        backgrounds = _drum_loop_backgrounds(out, drum_clips, seed)
        if not small:
            _note(f"build-demo-data: sonic-pi loops skipped ({skipped['backgrounds']}); using drum loops")
    clips += backgrounds

    # Mixtures: held-out-voice speech over a background crop at a known SNR, with components.
    if backgrounds:
        clips += _mixtures(out, clips, keyword_speech, backgrounds, per_word=1 if small else 4, seed=seed)

    if failures:
        _note(f"build-demo-data: {len(failures)} clip(s) failed and were left out: " + "; ".join(failures[:5]))
    counts = {}
    for clip in clips:
        counts.setdefault(clip["task"], {}).setdefault(clip["split"], 0)
        counts[clip["task"]][clip["split"]] += 1
    manifest = dict(
        sample_rate=SAMPLE_RATE, seed=seed, small=small, keywords=list(words),
        held_out=dict(voice_variants=list(HELD_OUT_VARIANTS), flite_voice=HELD_OUT_FLITE, engine=held_out_engine),
        engines=dict(espeak_accents=list(accents), espeak_variants=list(variants),
                     flite=list(sources.FLITE_VOICES) if use_flite else [],
                     pico=list(sources.PICO_VOICES) if "pico" not in skipped and use_pico else []),
        skipped=skipped, failures=failures, counts=counts,
        build_seconds=round(time.perf_counter() - started, 1), clips=clips)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def _drums(out: Path, kinds, per_kind: int, seed: int, failures: list) -> list[dict]:
    by_kind: dict[str, list[Path]] = {kind: [] for kind in kinds}
    for path in sorted(Path(sources.HYDROGEN_DRUMKITS).glob("*/*.flac")):
        name = path.stem.lower()
        if name.startswith("beats_"):
            continue
        for kind in kinds:  # first matching kind wins (so "hh" does not catch "kick")
            if any(key in name for key in DRUM_KINDS[kind]):
                by_kind[kind].append(path)
                break
    clips = []
    for kind, paths in by_kind.items():
        rng = _rng(seed, "drums", kind)
        chosen = [paths[i] for i in sorted(rng.permutation(len(paths))[:per_kind])]
        for path in chosen:
            try:
                wave = load_audio(path, SAMPLE_RATE)
            except ValueError as error:
                failures.append(str(error))
                continue
            wave = wave[:SAMPLE_RATE]
            if not np.any(wave):
                continue
            wave = np.pad(wave, (0, SAMPLE_RATE - wave.size)) / np.max(np.abs(wave)) * 0.8
            target = out / "drums" / kind / f"{_safe(path.parent.name)}_{_safe(path.stem)}.wav"
            target.parent.mkdir(parents=True, exist_ok=True)
            write_wav(target, wave.astype(np.float32), SAMPLE_RATE)
            clips.append(dict(path=str(target.relative_to(out)), task="drums", label=kind, engine="hydrogen-drumkits",
                              voice=path.parent.name, source=str(path), split="train", seconds=1.0))
    return clips


def _instruments(out: Path) -> list[dict]:
    notes = [(program, note, 1.0) for programs, pitches in INSTRUMENT_FAMILIES.values() for program in programs for note in pitches]
    waves = sources.render_notes(notes, note_seconds=1.0, gap_seconds=0.5, sample_rate=SAMPLE_RATE)
    clips, index = [], 0
    for family, (programs, pitches) in INSTRUMENT_FAMILIES.items():
        for program in programs:
            for note in pitches:
                wave = waves[index]
                index += 1
                if not np.any(wave):
                    continue
                wave = wave / np.max(np.abs(wave)) * 0.8
                target = out / "instruments" / family / f"gm{program:03d}_note{note}.wav"
                target.parent.mkdir(parents=True, exist_ok=True)
                write_wav(target, wave.astype(np.float32), SAMPLE_RATE)
                clips.append(dict(path=str(target.relative_to(out)), task="instruments", label=family, engine="fluidsynth",
                                  voice=f"FluidR3_GM program {program}", program=program, note=note, split="train",
                                  seconds=round(wave.size / SAMPLE_RATE, 3)))
    return clips


def _sonic_pi_backgrounds(out: Path) -> list[dict]:
    clips = []
    for path in sources.sonic_pi_samples("loop_*"):
        wave = load_audio(path, SAMPLE_RATE)
        if wave.size < SAMPLE_RATE // 2 or not np.any(wave):
            continue
        wave = wave / np.max(np.abs(wave)) * 0.8
        target = out / "backgrounds" / f"{path.stem}.wav"
        target.parent.mkdir(parents=True, exist_ok=True)
        write_wav(target, wave.astype(np.float32), SAMPLE_RATE)
        clips.append(dict(path=str(target.relative_to(out)), task="backgrounds", label=path.stem, engine="sonic-pi-samples",
                          voice=path.stem, source=str(path), split="train", seconds=round(wave.size / SAMPLE_RATE, 3)))
    return clips


def _drum_loop_backgrounds(out: Path, drum_clips: list[dict], seed: int, count: int = 2) -> list[dict]:
    hits = [load_audio(out / clip["path"], SAMPLE_RATE) for clip in drum_clips]
    clips = []
    for index in range(count):
        rng = _rng(seed, "drumloop", index)
        loop = np.zeros(4 * SAMPLE_RATE, np.float32)
        step = SAMPLE_RATE // 4
        for start in range(0, loop.size, step):
            hit = hits[int(rng.integers(len(hits)))] * rng.uniform(0.4, 1.0)
            length = min(hit.size, loop.size - start)
            loop[start : start + length] += hit[:length]
        loop = loop / np.max(np.abs(loop)) * 0.8
        target = out / "backgrounds" / f"drum_loop_{index}.wav"
        target.parent.mkdir(parents=True, exist_ok=True)
        write_wav(target, loop, SAMPLE_RATE)
        clips.append(dict(path=str(target.relative_to(out)), task="backgrounds", label=f"drum_loop_{index}",
                          engine="hydrogen-drumkits", voice="drum loop", split="train", seconds=4.0))
    return clips


def _mixtures(out: Path, clips: list[dict], speech: dict, backgrounds: list[dict], per_word: int, seed: int) -> list[dict]:
    loops = [(clip, load_audio(out / clip["path"], SAMPLE_RATE)) for clip in backgrounds]
    mixtures = []
    by_word: dict[str, list[dict]] = {}
    for clip in clips:
        if clip["task"] == "keywords" and clip["split"] == "heldout_voice":
            by_word.setdefault(clip["label"], []).append(clip)
    for word, candidates in sorted(by_word.items()):
        rng = _rng(seed, "mixture", word)
        for index in range(per_word):
            source = candidates[int(rng.integers(len(candidates)))]
            background_clip, loop = loops[int(rng.integers(len(loops)))]
            start = int(rng.integers(0, max(1, loop.size - SAMPLE_RATE)))
            background = np.resize(loop[start : start + SAMPLE_RATE], SAMPLE_RATE)
            if not np.any(background):
                continue
            snr_db = float(MIXTURE_SNRS_DB[int(rng.integers(len(MIXTURE_SNRS_DB)))])
            foreground = speech[source["path"]]
            mixture, scaled = sources.mix_at_snr(foreground, background, snr_db)
            peak = float(np.max(np.abs(mixture)))
            if peak > 0.99:  # keep the mixture in full scale; scaling all parts keeps the SNR exact
                mixture, foreground, scaled = mixture * (0.99 / peak), foreground * (0.99 / peak), scaled * (0.99 / peak)
            identifier = f"{word}_{index}"
            target = out / "mixtures" / word / f"{identifier}.wav"
            speech_path = out / "mixture_components" / f"{identifier}.speech.wav"
            background_path = out / "mixture_components" / f"{identifier}.background.wav"
            for path, wave in ((target, mixture), (speech_path, foreground), (background_path, scaled)):
                path.parent.mkdir(parents=True, exist_ok=True)
                write_wav(path, np.asarray(wave, np.float32), SAMPLE_RATE)
            mixtures.append(dict(path=str(target.relative_to(out)), task="mixtures", label=word, engine=source["engine"],
                                 voice=source["voice"], accent=source.get("accent"), variant=source.get("variant"),
                                 split="heldout_voice", seconds=1.0, snr_db=snr_db, speech=str(speech_path.relative_to(out)),
                                 background=str(background_path.relative_to(out)), speech_source=source["path"],
                                 background_source=background_clip["path"], background_start=start / SAMPLE_RATE))
    return mixtures


# ---------------------------------------------------------------------------------------------- reading


def read_demo(root: str | os.PathLike, task: str = "keywords", splits: tuple[str, ...] | None = None) -> ClipList:
    """Clips of one task from a built demo dataset, with the manifest's columns as metadata.

    Args:
        root: the ``build_demo_data`` output folder.
        task: ``keywords``, ``mixtures`` (keyword labels), ``instruments``, ``drums`` or ``backgrounds``.
        splits: keep only these ``split`` values (``train``, ``heldout_voice``, ``heldout_engine``); default all.

    Returns:
        :class:`ClipList` with int32 labels over the task's sorted class names (for ``keywords`` and
        ``mixtures``: ``KEYWORDS`` order restricted to the built words); metadata columns ``engine``,
        ``voice``, ``accent``, ``variant``, ``split`` (and ``snr_db``, ``speech``, ``background`` for mixtures).
    """
    root = Path(root)
    manifest_path = root / "manifest.json"
    if not manifest_path.is_file():
        raise ValueError(f"{str(manifest_path)!r} is missing; build the data with: tfsonify build-demo-data --out {root}")
    manifest = json.loads(manifest_path.read_text())
    entries = [clip for clip in manifest["clips"] if clip["task"] == task]
    if splits is not None:
        entries = [clip for clip in entries if clip["split"] in splits]
    if not entries:
        raise ValueError(f"no {task!r} clips{f' in splits {list(splits)}' if splits else ''} in {str(manifest_path)!r}")
    if task in ("keywords", "mixtures"):
        class_names = [w for w in KEYWORDS if w in manifest.get("keywords", KEYWORDS)]
    else:
        class_names = sorted({clip["label"] for clip in entries})
    columns = ["engine", "voice", "accent", "variant", "split"] + (["snr_db", "speech", "background"] if task == "mixtures" else [])
    return ClipList(paths=[root / clip["path"] for clip in entries],
                    labels=np.asarray([class_names.index(clip["label"]) for clip in entries], np.int32),
                    class_names=class_names,
                    metadata={column: [clip.get(column) for clip in entries] for column in columns})


def build_espeak_keywords(out_dir: str | os.PathLike, words=KEYWORDS, voices=ESPEAK_ACCENTS,
                          variants=KEYWORD_SET_VARIANTS, seed: int = 0) -> Path:
    """Write a folder-per-class keyword set spoken by espeak-ng: ``out/<word>/<voice>+<variant>_s<speed>_p<pitch>.wav``.

    Every clip is 1 s at 8 kHz with the word at a random offset. Voice names (accent + variant) are in the
    file names, so ``--holdout 'en-029|gbcwmd'`` holds whole accents out.
    """
    rng = np.random.default_rng(seed)
    out = Path(out_dir)
    count = 0
    for word in words:
        (out / word).mkdir(parents=True, exist_ok=True)
        for voice in voices:
            for variant in variants:
                speed, pitch = int(rng.integers(100, 180)), int(rng.integers(25, 75))
                wave = sources.speak(word, f"{voice}+{variant}", speed=speed, pitch=pitch)
                voiced = np.flatnonzero(np.abs(wave) > 0.02 * np.abs(wave).max())
                wave = wave[voiced[0] : voiced[-1] + 1][:SAMPLE_RATE] if voiced.size else wave[:SAMPLE_RATE]
                clip = np.zeros(SAMPLE_RATE, np.float32)
                offset = int(rng.integers(0, SAMPLE_RATE - wave.size + 1))
                clip[offset : offset + wave.size] = wave
                write_wav(out / word / f"{voice}+{variant}_s{speed}_p{pitch}.wav", clip, SAMPLE_RATE)
                count += 1
    print(f"wrote {count} clips ({len(words)} words x {len(voices)} accents x {len(variants)} variants) to {out}")
    return out


def ensure_demo_data(data_dir: Path) -> Path:
    """Build the demo dataset into ``data_dir`` unless a complete one (manifest.json) is already there."""
    if (data_dir / "manifest.json").is_file():
        print(f"using the demo dataset in {data_dir}/ (delete it to rebuild)", flush=True)
        return data_dir
    try:
        build_demo_data(data_dir)
    except RuntimeError as error:  # a missing Debian package: the message has the apt-get line
        raise ValueError(str(error)) from None
    return data_dir
