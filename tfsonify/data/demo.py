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

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from tfsonify.data import sources
from tfsonify.data.demo_sounds import (DRUM_KINDS, KEYWORDS, MIXTURE_SNRS_DB, SAMPLE_RATE,  # noqa: F401 (public here)
                                       _drum_loop_backgrounds, _drums, _instruments, _mixtures, _rng, _safe,
                                       _sonic_pi_backgrounds)
from tfsonify.data.pipeline import ClipList
from tfsonify.io.audio import write_wav
from tfsonify.progress import iterate, progress as step_timer

__all__ = ["build_demo_data", "build_espeak_keywords", "ensure_demo_data", "read_demo", "missing_packages", "apt_line", "KEYWORDS", "HELD_OUT_VARIANTS",
           "HELD_OUT_FLITE"]

#: espeak-ng accents that honour a ``+variant`` suffix (``en-gb+m3`` sounds exactly like ``en``; measured).
ESPEAK_ACCENTS = ("en", "en-us", "en-029", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd")
ESPEAK_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5")
#: Voice variants never used for training (all accents): the "unseen voices" evaluation.
HELD_OUT_VARIANTS = ("m3", "f4")
#: espeak-ng variants of :func:`build_espeak_keywords`' small keyword set (every accent of ESPEAK_ACCENTS).
KEYWORD_SET_VARIANTS = ("m1", "m3", "m5", "m7", "f1", "f2", "f3", "f4", "croak", "whisper")
#: A flite voice to hold out with the variants (None: every flite voice is used for training).
HELD_OUT_FLITE: str | None = None
#: Speech engines, in build order. ``espeak-ng`` is required; the others are optional and skipped (one line each)
#: when their Debian package / PyPI wheel is missing. ``mbrola`` is espeak-ng driving MBROLA diphone voices.
ENGINES = ("espeak-ng", "mbrola", "flite", "festival", "rhvoice", "pico")
#: How each engine is installed (printed when it is skipped or asked for but missing).
ENGINE_INSTALL = {
    "espeak-ng": "apt-get install espeak-ng",
    "mbrola": "apt-get install mbrola mbrola-us1 mbrola-us2 mbrola-us3 mbrola-en1 (Debian contrib/non-free)",
    "flite": "apt-get install flite",
    "festival": "apt-get install festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts",
    "rhvoice": "apt-get install rhvoice rhvoice-english (not in Debian 12 main)",
    "pico": "python3 -m pip install py-nanotts",
}
#: The engine held out of training by default (``"auto"``): the first of these that is built.
DEFAULT_HELD_OUT_ENGINES = ("pico", "flite")
#: Keyword clips per word for every engine but espeak-ng (split over its voices), per ``takes`` unit:
#: ``takes=2`` gives 60 per engine and word (espeak-ng: 7 accents x 12 variants x 2 = 168).
TAKES_PER_ENGINE_UNIT = 30
#: Mixtures per keyword in the full build: every SNR of MIXTURE_SNRS_DB three times (30 mixtures at 0 dB).
MIXTURES_PER_WORD = 12

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
    components = ["espeak-ng", "drums"] + ([] if small else ["instruments", "backgrounds"])
    missing = {c: [p for p in COMPONENT_PACKAGES[c] if not _installed(p)] for c in components}
    return {c: packages for c, packages in missing.items() if packages}


def apt_line(packages) -> str:
    """The exact install command for ``packages``."""
    return "sudo apt-get install -y " + " ".join(sorted(set(packages)))


def engine_voices(small: bool = False) -> dict[str, tuple[str, ...]]:
    """``{engine: voices}`` for every engine of :data:`ENGINES` installed here (an engine with no voice is absent)."""
    found = {
        "espeak-ng": ESPEAK_ACCENTS if shutil.which("espeak-ng") else (),
        "mbrola": sources.mbrola_voices(),
        "flite": tuple(sources.FLITE_VOICES) if shutil.which("flite") else (),
        "festival": sources.festival_voices(),
        "rhvoice": sources.rhvoice_voices(),
        "pico": tuple(sources.PICO_VOICES) if sources.pico_available() else (),
    }
    return {engine: voices for engine, voices in found.items() if voices}


def check_engines(engines=None, held_out_engine: str | None = "auto",
                  quiet: bool = False) -> tuple[tuple[str, ...], str | None]:
    """Validate an engine selection before anything is synthesised; return ``(engines, held_out_engine)``.

    Args:
        engines: engine names (default: every installed engine; the missing optional ones are reported with
            one line each on stderr, unless ``quiet``: a check before the build, which says it again).
        held_out_engine: an engine of ``engines`` never trained on, ``"auto"`` (the first of
            :data:`DEFAULT_HELD_OUT_ENGINES` that is built) or None (none held out).

    Raises:
        ValueError: an unknown or uninstalled engine (the message lists the available ones), a held-out engine
            that is not built, or a held-out engine that would leave no training engine.
    """
    available = engine_voices()
    listing = ", ".join(available) or "none"
    if engines is None:
        for engine in ENGINES:
            if engine not in available and not quiet:
                _note(f"build-demo-data: {engine} skipped: not installed ({ENGINE_INSTALL[engine]})")
        engines = tuple(e for e in ENGINES if e in available)
    else:
        engines = tuple(dict.fromkeys(engines))
        for engine in engines:
            if engine not in ENGINES:
                raise ValueError(f"unknown speech engine {engine!r}; available here: {listing} (known: {', '.join(ENGINES)})")
            if engine not in available:
                raise ValueError(f"speech engine {engine!r} is not installed ({ENGINE_INSTALL[engine]}); "
                                 f"available here: {listing}")
    if "espeak-ng" not in available:
        raise RuntimeError(f"espeak-ng is required for the keyword task; install it with: {apt_line(['espeak-ng'])}")
    if held_out_engine == "auto":
        held_out_engine = next((e for e in DEFAULT_HELD_OUT_ENGINES if e in engines and len(engines) > 1), None)
    if held_out_engine is not None:
        check_held_out(held_out_engine, engines, "the engines built")
    return engines, held_out_engine


def check_held_out(held_out_engine: str, engines, where: str) -> None:
    """``ValueError`` (one line) unless ``held_out_engine`` is one of ``engines`` and leaves another to train on;
    ``where`` names the engines in the message ("the engines built", "the demo dataset in DIR")."""
    if held_out_engine not in engines:
        raise ValueError(f"held-out engine {held_out_engine!r} is not among {where} ({', '.join(engines)})")
    if len(engines) < 2:
        raise ValueError(f"holding out {held_out_engine!r} leaves no engine to train on ({where}: "
                         f"{', '.join(engines)}); add another engine or hold none out")


def _note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


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


def _keyword_jobs(words, accents, variants, takes, voices: dict, per_engine: int, seed):
    """One job per clip: espeak-ng accents x variants x ``takes``; every other engine in ``voices`` gets
    ``per_engine`` clips per word spread over its voices (at least one take each)."""
    jobs = []
    for word in words:
        if "espeak-ng" in voices:
            for accent in accents:
                for variant in variants:
                    for take in range(takes):
                        rng = _rng(seed, "espeak", word, accent, variant, take)
                        jobs.append(dict(engine="espeak-ng", word=word, voice=f"{accent}+{variant}", accent=accent,
                                         variant=variant, take=take, speed=int(rng.integers(120, 191)),
                                         pitch=int(rng.integers(25, 76))))
        for engine in ENGINES[1:]:
            engine_voices_ = voices.get(engine, ())
            if not engine_voices_:
                continue
            voice_takes = max(1, -(-per_engine // len(engine_voices_)))
            for voice in engine_voices_:
                for take in range(voice_takes):
                    rng = _rng(seed, engine, word, voice, take)
                    if engine == "mbrola":  # espeak-ng units: words/min and 0-99
                        speed, pitch = int(rng.integers(120, 191)), int(rng.integers(25, 76))
                    else:  # rate (duration) and pitch multipliers
                        speed, pitch = round(float(rng.uniform(0.8, 1.25)), 3), round(float(rng.uniform(0.85, 1.2)), 3)
                    accent = voice if engine == "pico" else "en"
                    jobs.append(dict(engine=engine, word=word, voice=voice, accent=accent, variant=voice, take=take,
                                     speed=speed, pitch=pitch))
    return jobs


_FLITE_F0 = {"kal": 100.0, "kal16": 100.0, "awb": 110.0, "rms": 100.0, "slt": 170.0}  # mean F0 (Hz), jittered by ``pitch``


def _synthesise(job) -> np.ndarray:
    """One clip of a subprocess engine (espeak-ng, MBROLA through espeak-ng, flite, RHVoice)."""
    if job["engine"] in ("espeak-ng", "mbrola"):
        return sources.speak(job["word"], voice=job["voice"], speed=job["speed"], pitch=job["pitch"], sample_rate=SAMPLE_RATE)
    if job["engine"] == "flite":
        return sources.flite_speak(job["word"], voice=job["voice"], duration_stretch=1.0 / job["speed"],
                                   f0_mean=_FLITE_F0.get(job["voice"], 110.0) * job["pitch"], sample_rate=SAMPLE_RATE)
    if job["engine"] == "rhvoice":
        return sources.rhvoice_speak(job["word"], voice=job["voice"], rate=job["speed"], pitch=job["pitch"],
                                     sample_rate=SAMPLE_RATE)
    raise ValueError(f"unknown engine {job['engine']!r}")


def keyword_split(engine: str, variant: str | None, voice: str | None, held_out_engine: str | None) -> str:
    """Where a keyword clip belongs when ``held_out_engine`` is never trained on.

    ``heldout_engine``: every clip of ``held_out_engine``; ``heldout_voice``: espeak-ng variants
    :data:`HELD_OUT_VARIANTS` (every accent) and the flite voice :data:`HELD_OUT_FLITE` if set; else ``train``.
    """
    if engine == held_out_engine:
        return "heldout_engine"
    if (engine == "espeak-ng" and variant in HELD_OUT_VARIANTS) or \
            (engine == "flite" and HELD_OUT_FLITE is not None and voice == HELD_OUT_FLITE):
        return "heldout_voice"
    return "train"


def _keyword_split(job, held_out_engine: str | None) -> str:
    return keyword_split(job["engine"], job["variant"], job["voice"], held_out_engine)


# ---------------------------------------------------------------------------------------------- builder


def build_demo_data(out: str | os.PathLike, small: bool = False, seed: int = 0, workers: int | None = None,
                    words: tuple[str, ...] | None = None, takes: int = 2, engines: tuple[str, ...] | None = None,
                    held_out_engine: str | None = "auto", progress: bool = False) -> dict:
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
        progress: show progress on stderr (:mod:`tfsonify.progress`): the keyword synthesis as it goes (a bar on a
            terminal, a line every 10 s otherwise), then a timed line per later step.

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
    if takes < 1:
        raise ValueError(f"takes must be >= 1; received {takes}")
    if small:
        accents, variants, takes = ESPEAK_ACCENTS[:2], ("m1", "f1", HELD_OUT_VARIANTS[0]), 1
        engines, held_out_engine = check_engines(engines or ("espeak-ng",), held_out_engine if engines else None)
    else:
        accents, variants = ESPEAK_ACCENTS, ESPEAK_VARIANTS
        engines, held_out_engine = check_engines(engines, held_out_engine)
    available = engine_voices()
    if not small:
        skipped.update({engine: f"not installed ({ENGINE_INSTALL[engine]})" for engine in ENGINES if engine not in available})
    voices = {engine: (accents if engine == "espeak-ng" else available[engine]) for engine in engines}
    if small:  # one voice per extra engine, one take each: enough to test the engine paths quickly
        voices = {engine: (v if engine == "espeak-ng" else v[:1]) for engine, v in voices.items()}
    jobs = _keyword_jobs(words, accents, variants, takes, voices, 1 if small else TAKES_PER_ENGINE_UNIT * takes, seed)
    clips: list[dict] = []
    failures: list[str] = []

    # Keywords: subprocess engines in threads; Festival one batch run per voice; Pico in one child process.
    def make(job):
        try:
            return job, _synthesise(job), None
        except (RuntimeError, OSError, ValueError, subprocess.SubprocessError) as error:
            return job, None, str(error)

    batch_engines = ("festival", "pico")
    local_jobs = [j for j in jobs if j["engine"] not in batch_engines]
    results = []

    def festival_batch(voice):
        chosen = [j for j in jobs if j["engine"] == "festival" and j["voice"] == voice]
        try:
            waves = sources.festival_speak_many([(j["word"], j["voice"], 1.0 / j["speed"]) for j in chosen], SAMPLE_RATE)
            return [(job, wave, None) for job, wave in zip(chosen, waves)]
        except (RuntimeError, OSError, ValueError, subprocess.SubprocessError) as error:
            return [(job, None, str(error)) for job in chosen]

    step = (lambda what: step_timer(f"demo data: {what}")) if progress else (lambda what: contextlib.nullcontext())
    with ThreadPoolExecutor(max_workers=workers) as pool:
        festival_futures = [pool.submit(festival_batch, voice) for voice in voices.get("festival", ())]
        results += list(iterate(pool.map(make, local_jobs), f"demo data: synthesising keyword clips ({workers} threads)",
                                total=len(local_jobs), enabled=progress, interval=10.0))
        with step(f"Festival, {len(festival_futures)} voice(s)") if festival_futures else contextlib.nullcontext():
            for future in festival_futures:
                results += future.result()
    pico_jobs = [j for j in jobs if j["engine"] == "pico"]
    if pico_jobs:
        try:
            with step(f"SVOX Pico, {len(pico_jobs)} clip(s)"):
                waves = sources.pico_speak_many([(j["word"], j["voice"], j["speed"], j["pitch"]) for j in pico_jobs],
                                                SAMPLE_RATE)
            results += [(job, wave, None) for job, wave in zip(pico_jobs, waves)]
        except RuntimeError as error:
            skipped["pico"] = str(error)
            _note(f"build-demo-data: SVOX Pico failed and is skipped: {error}")
            engines = tuple(e for e in engines if e != "pico")
            if held_out_engine == "pico":
                held_out_engine = next((e for e in DEFAULT_HELD_OUT_ENGINES if e in engines), None)
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
        with step("drum one-shots"):
            drum_clips = _drums(out, kinds=("kick", "snare") if small else tuple(DRUM_KINDS),
                                per_kind=2 if small else 16, seed=seed, failures=failures)
        clips += drum_clips
    else:
        _note(f"build-demo-data: drums skipped ({skipped['drums']})")

    # Instruments (fluidsynth + fluid-soundfont-gm).
    if not small:
        if "instruments" not in missing:
            with step("instrument clips (fluidsynth)"):
                clips += _instruments(out)
        else:
            _note(f"build-demo-data: instruments skipped ({skipped['instruments']})")

    # Backgrounds: sonic-pi loops; drum loops made from the one-shots when sonic-pi is not used.
    backgrounds = []
    if not small and "backgrounds" not in missing:
        with step("background loops"):
            backgrounds = _sonic_pi_backgrounds(out)
    elif drum_clips:
        backgrounds = _drum_loop_backgrounds(out, drum_clips, seed)
        if not small:
            _note(f"build-demo-data: sonic-pi loops skipped ({skipped['backgrounds']}); using drum loops")
    clips += backgrounds

    # Augmentation backgrounds (noise and music mixed into training clips): sonic-pi one-shots and textures
    # that are not loops, so the mixtures' loops below stay unheard in training.
    if not small and "backgrounds" not in missing:
        clips += _sonic_pi_backgrounds(out, pattern="[!l]*", task="augment_backgrounds")

    # Mixtures: held-out-voice speech over a background crop at a known SNR, with components.
    if backgrounds:
        with step("mixtures"):
            clips += _mixtures(out, clips, keyword_speech, backgrounds, per_word=1 if small else MIXTURES_PER_WORD,
                               seed=seed)

    if failures:
        _note(f"build-demo-data: {len(failures)} clip(s) failed and were left out: " + "; ".join(failures[:5]))
    counts = {}
    for clip in clips:
        counts.setdefault(clip["task"], {}).setdefault(clip["split"], 0)
        counts[clip["task"]][clip["split"]] += 1
    built = {engine: sorted({c["voice"] for c in clips if c["task"] == "keywords" and c["engine"] == engine})
             for engine in engines}
    manifest = dict(
        sample_rate=SAMPLE_RATE, seed=seed, small=small, keywords=list(words),
        held_out=dict(voice_variants=list(HELD_OUT_VARIANTS), flite_voice=HELD_OUT_FLITE, engine=held_out_engine),
        engines=dict(espeak_accents=list(accents), espeak_variants=list(variants),
                     **{engine.replace("-", "_"): voices_ for engine, voices_ in built.items() if engine != "espeak-ng"}),
        speech_engines={engine: voices_ for engine, voices_ in built.items() if voices_},
        skipped=skipped, failures=failures, counts=counts,
        build_seconds=round(time.perf_counter() - started, 1), clips=clips)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


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


def ensure_demo_data(data_dir: Path, engines: tuple[str, ...] | None = None, held_out_engine: str | None = "auto") -> Path:
    """Build the demo dataset into ``data_dir`` unless a complete one (manifest.json) is already there.

    ``engines`` and ``held_out_engine`` (see :func:`check_engines`) are used only when it is built.
    """
    if (data_dir / "manifest.json").is_file():
        print(f"using the demo dataset in {data_dir}/ (delete it to rebuild)", flush=True)
        return data_dir
    print(f"building the demo dataset in {data_dir}/ (kept there for the next runs)", flush=True)
    try:
        build_demo_data(data_dir, engines=engines, held_out_engine=held_out_engine, progress=True)
    except RuntimeError as error:  # a missing Debian package: the message has the apt-get line
        raise ValueError(str(error)) from None
    return data_dir
