"""Demo dataset builder (small subset: a few espeak-ng words, a few drum one-shots) and the new audio sources."""
import json
import shutil

import numpy as np
import pytest
import soundfile

from tfsonify.data import demo, sources
from tfsonify.data.pipeline import decode_clips

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed (scripts/setup.sh)")


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory):
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed (scripts/setup.sh installs it)")
    out = tmp_path_factory.mktemp("demo")
    return out, demo.build_demo_data(out, small=True, seed=0)


def test_small_build_layout_and_manifest(small_demo):
    out, manifest = small_demo
    assert json.loads((out / "manifest.json").read_text()) == manifest
    keywords = [c for c in manifest["clips"] if c["task"] == "keywords"]
    # 3 words x 2 accents x 3 variants, one take each
    assert len(keywords) == 18 and {c["label"] for c in keywords} == {"yes", "no", "up"}
    for clip in keywords:
        assert clip["engine"] == "espeak-ng" and clip["voice"] == f"{clip['accent']}+{clip['variant']}"
        assert (clip["split"] == "heldout_voice") == (clip["variant"] in demo.HELD_OUT_VARIANTS)
        path = out / clip["path"]
        assert path.parent.name == clip["label"] and path.parent.parent.name == "keywords"
        wave, rate = soundfile.read(str(path), dtype="float32")
        assert rate == 8000 and wave.shape == (8000,)
        assert 0.29 <= np.abs(wave).max() <= 0.91 and 0.1 < clip["speech_seconds"] <= 1.0
    drums = [c for c in manifest["clips"] if c["task"] == "drums"]
    assert sorted(c["label"] for c in drums) == ["kick", "kick", "snare", "snare"]
    assert all((out / c["path"]).is_file() and c["source"].endswith(".flac") for c in drums)
    assert manifest["counts"]["keywords"] == {"train": 12, "heldout_voice": 6}


def test_voice_variants_really_differ(small_demo):
    out, manifest = small_demo
    yes = {c["voice"]: soundfile.read(str(out / c["path"]))[0] for c in manifest["clips"]
           if c["task"] == "keywords" and c["label"] == "yes"}
    assert len(yes) == 6
    voices = list(yes)
    for i in range(len(voices)):
        for j in range(i + 1, len(voices)):
            assert not np.allclose(yes[voices[i]], yes[voices[j]])


def test_mixtures_are_speech_plus_background_at_the_recorded_snr(small_demo):
    out, manifest = small_demo
    mixtures = [c for c in manifest["clips"] if c["task"] == "mixtures"]
    assert len(mixtures) == 3
    for clip in mixtures:
        mixture = soundfile.read(str(out / clip["path"]), dtype="float32")[0]
        speech = soundfile.read(str(out / clip["speech"]), dtype="float32")[0]
        background = soundfile.read(str(out / clip["background"]), dtype="float32")[0]
        np.testing.assert_allclose(mixture, speech + background, atol=1e-6)
        snr = 10 * np.log10(np.mean(speech**2) / np.mean(background**2))
        assert abs(snr - clip["snr_db"]) < 0.01 and clip["snr_db"] in demo.MIXTURE_SNRS_DB
        assert np.abs(mixture).max() <= 0.99 + 1e-6
        assert clip["split"] == "heldout_voice" and clip["variant"] in demo.HELD_OUT_VARIANTS


def test_read_demo_feeds_the_pipeline(small_demo):
    out, _ = small_demo
    train = demo.read_demo(out, "keywords", splits=("train",))
    held = demo.read_demo(out, "keywords", splits=("heldout_voice",))
    assert train.class_names == ["yes", "no", "up"] and len(train) == 12 and len(held) == 6
    assert set(held.metadata["variant"]) == {demo.HELD_OUT_VARIANTS[0]}
    assert not set(train.metadata["voice"]) & set(held.metadata["voice"])
    decoded = decode_clips(train, verbose=False)
    assert decoded.lengths.tolist() == [8000] * 12
    mixtures = demo.read_demo(out, "mixtures")
    assert mixtures.metadata["snr_db"] and all(s in demo.MIXTURE_SNRS_DB for s in mixtures.metadata["snr_db"])
    with pytest.raises(ValueError, match="no 'instruments' clips"):
        demo.read_demo(out, "instruments")
    with pytest.raises(ValueError, match="build-demo-data"):
        demo.read_demo(out / "nowhere")


def test_missing_packages_print_the_apt_line(monkeypatch, tmp_path, capsys):
    checks = dict(demo._PACKAGE_CHECKS)
    checks["espeak-ng"] = ("espeak-ng-not-here", None)
    checks["hydrogen-drumkits"] = (None, str(tmp_path / "no-drumkits"))
    monkeypatch.setattr(demo, "_PACKAGE_CHECKS", checks)
    assert demo.missing_packages(small=True) == {"espeak-ng": ["espeak-ng"], "drums": ["hydrogen-drumkits"]}
    with pytest.raises(RuntimeError, match="sudo apt-get install -y espeak-ng"):
        demo.build_demo_data(tmp_path / "out", small=True)
    assert "sudo apt-get install -y espeak-ng hydrogen-drumkits" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown keywords"):
        monkeypatch.setattr(demo, "_PACKAGE_CHECKS", dict(demo._PACKAGE_CHECKS, **{"espeak-ng": ("sh", None)}))
        demo.build_demo_data(tmp_path / "out", small=True, words=("banana",))


@needs_espeak
def test_cli_build_demo_data_small(tmp_path, capsys):
    from tfsonify.cli import main

    assert main(["build-demo-data", "--out", str(tmp_path / "d"), "--small", "--seed", "1"]) == 0
    printed, progress = capsys.readouterr()
    steps = [line for line in progress.splitlines() if line.startswith("demo data: ")]
    assert steps[0].startswith("demo data: synthesising keyword clips (") and steps[0].endswith(": 1/18")
    assert steps[1].startswith("demo data: synthesising keyword clips (") and ": 18/18 - done in " in steps[1]
    assert steps[2].startswith("demo data: drum one-shots... done (") and steps[-1].startswith("demo data: mixtures... done (")
    assert "cached" not in progress
    assert "keywords" in printed and "heldout_voice: 6" in printed and "manifest" in printed
    assert (tmp_path / "d" / "manifest.json").is_file()


@pytest.mark.skipif(shutil.which("flite") is None, reason="flite not installed (scripts/setup.sh)")
def test_flite_voices_speak_and_differ():
    waves = {voice: sources.flite_speak("stop", voice) for voice in sources.FLITE_VOICES}
    for wave in waves.values():
        assert wave.dtype == np.float32 and 0.2 * 8000 < wave.size < 1.5 * 8000 and np.abs(wave).max() > 0.05
    slow = sources.flite_speak("stop", "kal", duration_stretch=1.5)
    assert slow.size > waves["kal"].size * 1.2


@pytest.mark.skipif(not sources.pico_available(), reason="py-nanotts not installed (pip install py-nanotts)")
def test_pico_voices_speak_in_a_child_process():
    waves = sources.pico_speak_many([("go", "en-US", 1.0, 1.0), ("go", "en-GB", 1.0, 1.0), ("go", "en-US", 0.6, 1.0)])
    assert all(w.dtype == np.float32 and w.size > 1000 and np.abs(w).max() > 0.05 for w in waves)
    assert waves[2].size > waves[0].size  # slower


@pytest.mark.skipif(shutil.which("fluidsynth") is None or not sources.Path(sources.FLUID_SOUNDFONT).exists(),
                    reason="fluidsynth / fluid-soundfont-gm not installed (scripts/setup.sh)")
def test_fluidsynth_renders_notes_at_their_pitch():
    clips = sources.render_notes([(73, 69, 1.0), (73, 81, 1.0)], note_seconds=0.5, gap_seconds=0.2)
    assert [c.shape for c in clips] == [(5600,), (5600,)]
    for clip, expected in zip(clips, (440.0, 880.0)):  # flute A4 and A5
        spectrum = np.abs(np.fft.rfft(clip[:4000] * np.hanning(4000)))
        assert abs(np.argmax(spectrum) * 8000 / 4000 - expected) < 6
    with pytest.raises(ValueError, match="0-127"):
        sources.render_notes([(0, 200, 1.0)])


# --- engines and leave-one-engine-out ---------------------------------------------------------------------


def test_engine_choice_errors_list_the_available_engines(monkeypatch, tmp_path):
    available = demo.engine_voices()
    with pytest.raises(ValueError, match="unknown speech engine 'sam'.*available here: " + ", ".join(available)):
        demo.check_engines(("espeak-ng", "sam"))
    monkeypatch.setattr(demo, "engine_voices", lambda small=False: {"espeak-ng": demo.ESPEAK_ACCENTS})
    with pytest.raises(ValueError, match="'festival' is not installed.*available here: espeak-ng"):
        demo.check_engines(("espeak-ng", "festival"))
    # holding out the only engine: an error before anything is synthesised (nothing is written)
    with pytest.raises(ValueError, match="leaves no engine to train on"):
        demo.build_demo_data(tmp_path / "none", engines=("espeak-ng",), held_out_engine="espeak-ng")
    assert not (tmp_path / "none" / "keywords").exists()
    with pytest.raises(ValueError, match="not among the engines built"):
        demo.check_engines(("espeak-ng",), "pico")


def test_missing_optional_engines_are_skipped_with_one_line(monkeypatch, capsys):
    monkeypatch.setattr(demo, "engine_voices", lambda small=False: {"espeak-ng": demo.ESPEAK_ACCENTS, "flite": ("kal",)})
    engines, held = demo.check_engines()
    assert engines == ("espeak-ng", "flite") and held == "flite"
    lines = [line for line in capsys.readouterr().err.splitlines() if "skipped" in line]
    assert sorted(line.split()[1] for line in lines) == sorted(["mbrola", "festival", "rhvoice", "pico"])


@pytest.mark.skipif(shutil.which("festival") is None or not sources.festival_voices() or shutil.which("espeak-ng") is None,
                    reason="festival + a festvox voice and espeak-ng are needed (scripts/setup.sh installs them)")
def test_small_build_with_festival_and_leave_one_engine_out(tmp_path):
    from tfsonify.train.demo import keyword_splits

    manifest = demo.build_demo_data(tmp_path, small=True, engines=("espeak-ng", "festival"), held_out_engine="festival")
    festival = [c for c in manifest["clips"] if c["task"] == "keywords" and c["engine"] == "festival"]
    assert len(festival) == 3 and {c["split"] for c in festival} == {"heldout_engine"}
    for clip in festival:
        wave, rate = soundfile.read(str(tmp_path / clip["path"]), dtype="float32")
        assert rate == 8000 and wave.shape == (8000,) and np.abs(wave).max() > 0.29
    decoded = decode_clips(demo.read_demo(tmp_path, "keywords"), verbose=False)
    splits, held = keyword_splits(decoded, "auto")
    assert held == "festival" and len(splits["heldout_engine"]) == 3 and len(splits["train"]) == 12
    splits, held = keyword_splits(decoded, "espeak-ng")  # the other way round, without rebuilding
    assert set(splits["train"].metadata["engine"]) == {"festival"} and len(splits["heldout_engine"]) == 18  # all of espeak-ng
    assert len(splits["heldout_voice"]) == 0
    with pytest.raises(ValueError, match="not in the demo dataset; its engines: espeak-ng, festival"):
        keyword_splits(decoded, "pico")
