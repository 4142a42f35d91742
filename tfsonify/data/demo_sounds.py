"""The demo's sounds besides speech: drum one-shots (hydrogen kits), instrument notes (fluidsynth), background loops
(sonic-pi, or drum loops built from the one-shots) and the keyword-over-background mixtures at known SNRs.

Used by :func:`tfsonify.data.demo.build_demo_data`; every clip is written as a float32 WAV at :data:`SAMPLE_RATE`
and listed with its task, split and source, reproducibly from ``seed``.
"""
from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from tfsonify.data import sources
from tfsonify.io.audio import load_audio, write_wav

SAMPLE_RATE = 8000  # the demo data's rate: CNN12's (tfsonify.models.cnn12.SAMPLE_RATE)
KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
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


def _rng(seed: int, *keys) -> np.random.Generator:
    return np.random.default_rng([seed] + [zlib.crc32(str(key).encode()) for key in keys])


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "-" for c in name)


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


def _sonic_pi_backgrounds(out: Path, pattern: str = "loop_*", task: str = "backgrounds") -> list[dict]:
    clips = []
    for path in sources.sonic_pi_samples(pattern):
        wave = load_audio(path, SAMPLE_RATE)
        if wave.size < SAMPLE_RATE // 2 or not np.any(wave):
            continue
        wave = wave / np.max(np.abs(wave)) * 0.8
        target = out / task / f"{path.stem}.wav"
        target.parent.mkdir(parents=True, exist_ok=True)
        write_wav(target, wave.astype(np.float32), SAMPLE_RATE)
        clips.append(dict(path=str(target.relative_to(out)), task=task, label=path.stem, engine="sonic-pi-samples",
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
            snr_db = float(MIXTURE_SNRS_DB[(index + KEYWORDS.index(word)) % len(MIXTURE_SNRS_DB)])  # balanced SNRs
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
