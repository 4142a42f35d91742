"""Paths in manifests are relative to the manifest's folder, for every writer (sonify, the demo's sonifications and
its results.json; the edge runtime uses the same writer, checked from the wheel in tests/test_wheel.py), and
``read_manifest`` resolves them from any working directory, also after the folder moved with what it names."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tfsonify.io.manifest import read_manifest, relative_path, stored_paths, write_manifest


def test_sonify_stores_model_and_source_relative_to_the_manifest(tmp_path, monkeypatch, model_file):
    from tfsonify.cli import main

    tree = tmp_path / "project"
    (tree / "models").mkdir(parents=True)
    shutil.copy(model_file, tree / "models" / "m.keras")
    (tree / "clips").mkdir()
    rng = np.random.default_rng(0)
    soundfile.write(tree / "clips" / "a.wav", rng.normal(0, 0.2, 4000).astype("float32"), 8000, subtype="FLOAT")
    (tree / "work").mkdir()
    monkeypatch.chdir(tree / "work")  # every path on the command line relative to this working directory
    assert main(["sonify", "../clips/a.wav", "--model", "../models/m.keras", "--layer", "2", "--out", "runs/one",
                 "--no-plots", "--no-progress"]) == 0
    stored = json.loads((tree / "work" / "runs" / "one" / "manifest.json").read_text())
    assert stored["model"] == "../../../models/m.keras" and stored["source"] == "../../../clips/a.wav"
    assert stored["input"] == "input.wav" and "/" not in stored["sonifications"][0]["wav"]

    moved = tmp_path / "elsewhere"
    shutil.move(str(tree), str(moved))  # the whole tree moves; read from yet another working directory
    monkeypatch.chdir(tmp_path)
    manifest = read_manifest(moved / "work" / "runs" / "one")
    assert manifest["model"] == str((moved / "models" / "m.keras").resolve())
    assert manifest["source"] == str((moved / "clips" / "a.wav").resolve())
    assert Path(manifest["input"]).is_file() and Path(manifest["sonifications"][0]["wav"]).is_file()


def test_descriptions_and_urls_are_kept_and_reading_needs_a_manifest(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model.keras").write_text("x")
    out = tmp_path / "deep" / "out"
    out.mkdir(parents=True)
    write_manifest(out, [], 8000, source="microphone", extra={"model": "gs://bucket/m.keras", "mixture": "model.keras",
                                                               "runtime": "litert"})
    stored = json.loads((out / "manifest.json").read_text())
    assert stored["source"] == "microphone" and stored["model"] == "gs://bucket/m.keras"
    assert stored["mixture"] == "../../model.keras" and stored["runtime"] == "litert"
    manifest = read_manifest(out)
    assert manifest["source"] == "microphone" and manifest["mixture"] == str((tmp_path / "model.keras").resolve())
    assert stored_paths(out, {"model": str(tmp_path / "model.keras")}) == {"model": "../../model.keras"}
    assert relative_path(out / "input.wav", out) == "input.wav"
    with pytest.raises(ValueError, match="manifest.json' does not exist"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{")
    with pytest.raises(ValueError, match="is not JSON"):
        read_manifest(tmp_path)


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed (scripts/setup.sh)")
def test_demo_sonifications_and_results_name_paths_from_their_own_folders(tmp_path, monkeypatch):
    from tfsonify.commands.demo import sonify_mixture
    from tfsonify.data.demo import build_demo_data
    from tiny import tiny_cnn12

    monkeypatch.chdir(tmp_path)
    out = Path("demo_output")  # relative, as `tfsonify demo --out demo_output` gives it
    data = out / "data"
    build_demo_data(data, small=True, seed=0)
    model = tiny_cnn12(4, num_classes=3)
    model.save(out / "model.keras")
    entries = sonify_mixture(model, data, out, top=1)
    assert entries
    for entry in entries:
        folder = out / entry["folder"]
        assert entry["folder"] == f"sonifications/{entry['role']}" and entry["model"] == "model.keras"
        assert (out / entry["mixture"]).is_file() and entry["mixture"].startswith("data/mixtures/")
        stored = json.loads((folder / "manifest.json").read_text())
        assert stored["model"] == "../../model.keras" and "folder" not in stored
        assert stored["mixture"] == stored["source"] == f"../../{entry['mixture']}"
        assert stored["components"] == {"speech": "component_speech.wav", "background": "component_background.wav"}
        manifest = read_manifest(folder)
        assert manifest["model"] == str((out / "model.keras").resolve())
        assert all(os.path.isfile(s["wav"]) for s in manifest["sonifications"])
