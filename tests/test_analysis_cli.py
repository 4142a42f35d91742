"""``tfsonify analyze ...`` and ``tfsonify report``: end-to-end on a tiny saved model and WAV files."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    import keras

    import tfsonify

    root = tmp_path_factory.mktemp("analyze")
    keras.utils.set_random_seed(4)
    tfsonify.CNN12(width_multiplier=0.0625, num_classes=3).save(root / "a.keras")
    tfsonify.CNN12(width_multiplier=0.0625, num_classes=3).save(root / "b.keras")
    tfsonify.CNN12(width_multiplier=0.125, num_classes=3).save(root / "wide.keras")
    rng = np.random.default_rng(0)
    t = np.arange(2600) / 8000.0
    (root / "clips").mkdir()
    for i in range(3):
        wave = 0.4 * np.sin(2 * np.pi * (300 + 500 * i) * t) + rng.normal(0, 0.1, t.size)
        soundfile.write(root / "clips" / f"c{i}.wav", wave.astype("float32"), 8000)
    soundfile.write(root / "clips" / "short.wav", rng.normal(0, 0.1, 400).astype("float32"), 8000)
    return root


def run(*argv) -> int:
    from tfsonify.cli import main

    return main([str(a) for a in argv])


def test_coherence_residual_invariance(workspace, capsys):
    w = workspace
    assert run("analyze", "coherence", w / "clips", "--model", f"sup={w / 'a.keras'}", "--model", f"con={w / 'b.keras'}",
               "--layers", "1,11", "--out", w / "coh") == 0
    data = json.loads((w / "coh" / "coherence_sup.json").read_text())
    assert data["layers"] == [1, 11] and data["clips"] == [4, 3] and data["skipped"] == [0, 1]
    assert (w / "coh" / "coherence.png").is_file()
    assert run("analyze", "residual", w / "clips", "--model", w / "a.keras", "--layers", "2,11", "--out", w / "res") == 0
    residual = json.loads((w / "res" / "residual.json").read_text())
    assert residual["metric"] == "agreement" and residual["skipped"] == 1 and len(residual["control"]) == 2
    assert run("analyze", "invariance", w / "clips" / "c0.wav", "--model", w / "a.keras", "--layer", "3") == 0
    lines = capsys.readouterr().out.splitlines()
    aligned = [line.split() for line in lines if line.strip().startswith(("8 ", "16 "))]
    assert len(aligned) == 2 and all(row[1] == "True" and float(row[3]) < 1e-5 for row in aligned)


def test_topk_evolution_report_and_errors(workspace, capsys):
    w = workspace
    assert run("analyze", "topk", w / "clips", "--model", w / "a.keras", "--layers", "4,11", "--k", "2",
               "--maps-per-layer", "1", "--no-plots", "--out", w / "topk") == 0
    summary = json.loads((w / "topk" / "topk.json").read_text())
    assert summary["layers"]["11"]["skipped"] == 1 and len(list((w / "topk").glob("L11_f*_rank*"))) == 2
    assert run("analyze", "evolution", w / "clips", "--checkpoints", w / "b.keras", w / "a.keras", "--map", "2:1",
               "--out", w / "evo") == 0
    assert (w / "evo" / "L02_f0001_evolution.png").is_file()
    capsys.readouterr()
    assert run("analyze", "topk", w / "clips", "--model", w / "a.keras", "--layers", "11", "--k", "4", "--out", w / "t2") == 2
    assert "3 usable clip(s) for block 11 but k=4" in capsys.readouterr().err
    assert run("analyze", "evolution", w / "clips", "--checkpoints", w / "wide.keras", w / "a.keras", "--map", "2:1",
               "--out", w / "evo2") == 2
    assert "all checkpoints must come from one model width" in capsys.readouterr().err
    assert run("report", w / "a.keras", w / "clips", "--layers", "11", "--top", "1", "--out", w / "rep") == 0
    assert (w / "rep" / "index.html").is_file()
    assert run("analyze", "coherence", w / "missing", "--model", w / "a.keras", "--out", w / "x") == 2
    assert run("analyze", "relevance", w / "clips" / "c1.wav", "--model", w / "a.keras", "--unit", "2", "--out", w / "rel") == 0
    relevance = json.loads((w / "rel" / "relevance.json").read_text())
    assert relevance["unit"] == 2 and len(relevance["peak_frequencies_hz"]) == 5 and (w / "rel" / "relevance.png").is_file()
