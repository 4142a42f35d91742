"""Every zoo model (``tests/zoo/models.py``) through every surface: each combination works, or is refused up
front with one line that says why (the message is asserted). This file: the checkpoint, the Sonifier, the CLI,
the analyses, the report, the explorer and sonify-dataset; ``test_artefacts.py``: SavedModel + serve, TFLite + the
edge runtime. Shared fixture and helpers: ``tests/zoo/battery.py``, fixture in ``conftest.py``.
"""
from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile

from zoo.battery import run, tag
from zoo.models import test_clip


# ------------------------------------------------------------------------------------------------ artefact
def test_checkpoint_carries_geometry_rate_and_labels(zoo):
    from tfsonify.models.metadata import class_names_of, metadata_of, read_archive_metadata, sample_rate_of

    stored = read_archive_metadata(zoo.path)
    assert stored is not None and metadata_of(zoo.model) == stored
    assert sample_rate_of(zoo.model) == zoo.sonifier.sample_rate == zoo.rate
    expected = zoo.entry.class_names
    assert class_names_of(zoo.model) == (None if expected is None else list(expected))
    walked = [(i.name, i.block, i.channels, i.receptive_field, i.stride, i.min_length) for i in zoo.sonifier.layers()]
    assert [(g.name, g.block, g.channels, g.receptive_field, g.stride, g.min_length) for g in stored.layers] == walked
    assert stored.input_length == zoo.entry.fixed


# ------------------------------------------------------------------------------------------------ Sonifier
def test_sonifier_sonify_top_k_and_stream(zoo):
    s, wave, layer = zoo.sonifier, zoo.wave, zoo.layer
    sound = s.sonify(wave, layer, feature=0)
    assert sound.shape == wave.shape and np.all(np.isfinite(sound))
    features, activations, sounds = s.sonify_top(wave, layer, 2)
    assert sounds.shape == (2, wave.size) and activations[0] >= activations[1]
    np.testing.assert_allclose(sounds[0], s.sonify(wave, layer, feature=int(features[0])), atol=1e-5)
    if not zoo.entry.windows:
        with pytest.raises(ValueError, match=re.escape(zoo.entry.stream_refusal)):
            s.stream(layer, [0], reference_peak=1.0)
        return
    stream = s.stream(layer, [int(features[0])], reference_peak=1.0)
    out = np.concatenate([stream.process(block) for block in np.array_split(wave, 7)] + [stream.flush()], axis=-1)
    assert out.shape[-1] == wave.size + stream.latency or out.shape[-1] >= wave.size
    assert np.all(np.isfinite(out))


def test_long_clips_equal_one_pass(zoo):
    """A clip four windows long: the engine's default path equals one pass over the whole clip (exact windows, or
    frames for CREPE, or one pass for a model that pads, where windows would differ at their edges)."""
    from tfsonify.engine import long_clips

    s, layer = zoo.sonifier, zoo.layer
    wave = np.concatenate([test_clip(zoo.rate, seconds=0.8, seed=seed) for seed in range(4)])
    path = long_clips.choose(s, wave.size, layer, 1.0)
    expected = {"crepe": long_clips.FRAMES}.get(zoo.entry.name, long_clips.WINDOWS if zoo.entry.windows else long_clips.ONE_PASS)
    assert path == expected
    features, scores, sounds = s.sonify_top(wave, layer, 2, window_seconds=1.0)
    if zoo.entry.fixed is None:
        reference = s.sonify_top(wave, layer, 2, window_seconds=None)
        assert features.tolist() == reference[0].tolist()
        np.testing.assert_allclose(scores, reference[1], atol=1e-5)
        np.testing.assert_allclose(sounds, reference[2], atol=1e-4)
    assert np.all(np.isfinite(sounds))


# ------------------------------------------------------------------------------------------------ CLI
def test_cli_sonify(zoo, tmp_path):
    out = tmp_path / "out"  # CREPE: framed as its tracker frames (engine/frames.py), as the API does
    assert run("sonify", zoo.wav, "--model", zoo.path, "--layer", zoo.layer, "--top", 2, "--out", out, "--no-plots") == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["sample_rate"] == zoo.rate and len(manifest["sonifications"]) == 2
    sound, rate = soundfile.read(out / manifest["sonifications"][0]["wav"], dtype="float32")
    assert rate == zoo.rate
    expected = zoo.sonifier.sonify(zoo.wave, zoo.layer, feature=manifest["sonifications"][0]["feature"])
    np.testing.assert_allclose(sound, expected, atol=1e-4)


def test_cli_listen(zoo, tmp_path, capsys):
    out = tmp_path / "live.wav"
    feature = int(zoo.sonifier.sonify_top(zoo.wave, zoo.layer, 1)[0][0])  # a live map (random weights leave dead ones)
    code = run("listen", "--model", zoo.path, "--layer", zoo.layer, "--feature", feature, "--input", zoo.wav, "--fast",
               "--out", out)
    if not zoo.entry.windows:
        assert code == 2 and zoo.entry.stream_refusal in capsys.readouterr().err and not out.exists()
        return
    assert code == 0
    sound, rate = soundfile.read(out, dtype="float32")
    assert rate == zoo.rate and sound.size == zoo.wave.size and np.any(sound)


def test_cli_listen_refuses_a_layer_the_model_lacks(zoo, tmp_path, capsys):
    assert run("listen", "--model", zoo.path, "--layer", "nope", "--feature", 0, "--input", zoo.wav, "--fast",
               "--out", tmp_path / "x.wav") == 2
    assert "'nope'" in capsys.readouterr().err and not (tmp_path / "x.wav").exists()


# ------------------------------------------------------------------------------------------------ analyses
def test_analyze_coherence_topk_invariance_relevance(zoo, tmp_path, capsys):
    layer = zoo.layer
    assert run("analyze", "coherence", zoo.clips, "--model", f"m={zoo.path}", "--layers", layer, "--out", tmp_path / "coh") == 0
    coherence = json.loads((tmp_path / "coh" / "coherence_m.json").read_text())
    assert coherence["sample_rate"] == zoo.rate and coherence["clips"] == [3]
    assert run("analyze", "topk", zoo.clips, "--model", zoo.path, "--layers", layer, "--k", 2, "--maps-per-layer", 1,
               "--no-plots", "--out", tmp_path / "topk") == 0
    assert len(list((tmp_path / "topk").glob(f"{tag(layer)}_f*_rank*"))) == 2
    capsys.readouterr()
    assert run("analyze", "invariance", zoo.wav, "--model", zoo.path, "--layer", layer, "--shifts", "1") == 0
    assert f"stride) {zoo.sonifier.geometry(layer)[1]} samples" in capsys.readouterr().out
    assert run("analyze", "relevance", zoo.wav, "--model", zoo.path, "--out", tmp_path / "rel") == 0
    assert json.loads((tmp_path / "rel" / "relevance.json").read_text())["layer"] is None
    assert soundfile.info(str(tmp_path / "rel" / "relevance.wav")).samplerate == zoo.rate


def test_analyze_residual(zoo, tmp_path, capsys):
    code = run("analyze", "residual", zoo.clips, "--model", zoo.path, "--layers", zoo.layer, "--out", tmp_path)
    if zoo.entry.fixed:
        assert code == 2
        assert f"takes inputs of exactly {zoo.entry.fixed} samples" in capsys.readouterr().err
        return
    assert code == 0
    result = json.loads((tmp_path / "residual.json").read_text())
    assert result["clips"] == 3 and result["metric"] == ("agreement" if zoo.entry.class_names else "cosine")


def test_analyze_evolution(zoo, tmp_path):
    from tfsonify.models.checkpoint import save_model

    first = tmp_path / "epoch-001.keras"
    save_model(zoo.entry.build(), first)  # same architecture, same rate record
    assert run("analyze", "evolution", zoo.clips, "--checkpoints", first, zoo.path, "--map", f"{zoo.layer}:0",
               "--out", tmp_path / "evo") == 0
    stem = f"{tag(zoo.layer)}_f0000"
    assert (tmp_path / "evo" / f"{stem}_evolution.png").is_file()
    assert soundfile.info(str(tmp_path / "evo" / f"{stem}_{zoo.path.stem}.wav")).samplerate == zoo.rate


def _demo_mixtures(root: Path, rate: int) -> Path:
    """A minimal demo dataset (manifest + WAVs) holding three mixtures of a tone 'speech' and a noise background."""
    from tfsonify.data.demo import KEYWORDS

    root.mkdir()
    clips = []
    for i in range(3):
        speech = 0.5 * test_clip(rate, seed=10 + i)
        background = np.random.default_rng(i).normal(0, 0.05, speech.size).astype("float32")
        for name, wave in (("s", speech), ("b", background), ("m", speech + background)):
            soundfile.write(root / f"{name}{i}.wav", wave, rate, subtype="FLOAT")
        clips.append({"task": "mixtures", "label": KEYWORDS[0], "path": f"m{i}.wav", "engine": "test", "voice": "v",
                      "accent": "a", "variant": "", "split": "heldout_voice", "snr_db": 20.0,
                      "speech": f"s{i}.wav", "background": f"b{i}.wav"})
    (root / "manifest.json").write_text(json.dumps({"clips": clips, "keywords": [KEYWORDS[0]]}))
    return root


def test_analyze_mixture(zoo, tmp_path):
    demo = _demo_mixtures(tmp_path / "demo", zoo.rate)
    assert run("analyze", "mixture", "--model", zoo.path, "--demo", demo, "--layers", zoo.layer, "--min-count", 1,
               "--candidates", 2, "--out", tmp_path) == 0
    result = json.loads((tmp_path / "mixture.json").read_text())
    assert result["mixtures"] == 3 and result["best"][str(zoo.layer)]


# ------------------------------------------------------------------------------------------------ report
def test_report(zoo, tmp_path):
    out = tmp_path / "report"
    assert run("report", zoo.path, zoo.clips, "--layers", zoo.layer, "--top", 1, "--out", out) == 0
    page = (out / "index.html").read_text()
    report = json.loads((out / "report.json").read_text())
    assert report["sample_rate"] == zoo.rate and f"{zoo.rate} Hz" in page
    assert soundfile.info(str(out / report["layers"][str(zoo.layer)]["maps"][0]["wav"])).samplerate == zoo.rate
    if zoo.entry.class_names:  # predictions by name, not "class 2"
        labels = {clip["prediction"]["label"] for clip in report["clips"]}
        assert labels <= set(zoo.entry.class_names) and any(name in page for name in labels)
    if zoo.entry.fixed:
        assert f"takes inputs of exactly {zoo.entry.fixed} samples" in page  # residual: the reason, not a crash
    else:
        assert report["residual"]["clips"] == 3


# ------------------------------------------------------------------------------------------------ explore
def test_explore_page_and_one_sonification(zoo):
    from tfsonify.explore import ClipLibrary, Explorer, ExplorerServer, ModelSession, build_app

    session = ModelSession(zoo.path)
    assert session.sample_rate == zoo.rate
    explorer = Explorer([session], ClipLibrary([zoo.clips], session.sample_rate, max_seconds=60.0))
    block = zoo.layer if isinstance(zoo.layer, int) else next(i.block for i in zoo.sonifier.layers() if i.name == zoo.layer)
    with ExplorerServer(build_app(explorer)) as url:
        with urllib.request.urlopen(url + "/", timeout=60) as response:
            assert response.status == 200 and b"<html" in response.read().lower()
        clip = json.loads(urllib.request.urlopen(url + "/api/clips", timeout=60).read())["clips"][0]
        base = f"{url}/api/models/0/clips/{clip['id']}"
        with urllib.request.urlopen(f"{base}/layers/{block}/maps/0/sonification.wav", timeout=300) as response:
            data = response.read()
        assert data[:4] == b"RIFF" and soundfile.info(__import__("io").BytesIO(data)).samplerate == zoo.rate
        prediction = json.loads(urllib.request.urlopen(f"{base}/prediction", timeout=120).read())["prediction"]
    if zoo.entry.class_names:
        assert prediction and prediction[0]["label"] in zoo.entry.class_names
    else:
        assert prediction is None


# ------------------------------------------------------------------------------------------------ sonify-dataset
@pytest.mark.parametrize("runner", [None, "DirectRunner"])
def test_sonify_dataset(zoo, tmp_path, runner):
    out = tmp_path / "ds"
    extra = ["--runner", runner] if runner else []
    clips = [str(zoo.clips / "*.wav")] if runner else [zoo.clips]
    assert run("sonify-dataset", *clips, "--model", zoo.path, "--layers", zoo.layer, "--out", out, *extra) == 0
    rows = [json.loads(line) for line in (out / "manifest-00000-of-00001.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and {row["layer"] for row in rows} == {zoo.layer}
    assert soundfile.info(str(out / rows[0]["wav"])).samplerate == zoo.rate
