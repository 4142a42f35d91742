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
    err = capsys.readouterr().err
    assert "layer 'conv1' has 8 maps, the final checkpoint's 'conv1' 4; all checkpoints must come from one architecture" in err
    assert run("report", w / "a.keras", w / "clips", "--layers", "11", "--top", "1", "--out", w / "rep") == 0
    assert (w / "rep" / "index.html").is_file()
    assert run("analyze", "coherence", w / "missing", "--model", w / "a.keras", "--out", w / "x") == 2
    assert run("analyze", "relevance", w / "clips" / "c1.wav", "--model", w / "a.keras", "--unit", "2", "--out", w / "rel") == 0
    relevance = json.loads((w / "rel" / "relevance.json").read_text())
    assert relevance["unit"] == 2 and len(relevance["peak_frequencies_hz"]) == 5 and (w / "rel" / "relevance.png").is_file()


def user_model():
    """A small user-built Keras CNN (not CNN12): strided conv, overlapping pool, BN, Conv2D-free 1-D stack, GAP head."""
    import keras

    L = keras.layers
    keras.utils.set_random_seed(21)
    x = keras.Input((None,), name="wave")
    h = L.Reshape((-1, 1))(x)
    h = L.Conv1D(6, 9, strides=2, activation="relu", name="front")(h)
    h = L.MaxPooling1D(3, 2, name="front_pool")(h)
    h = L.Conv1D(6, 5, activation="relu", name="mid")(h)
    h = L.BatchNormalization(name="mid_bn")(h)
    h = L.MaxPooling1D(2, name="mid_pool")(h)
    h = L.Conv1D(5, 3, activation="relu", name="top")(h)
    out = L.Dense(3, activation="softmax", name="scores")(L.GlobalAveragePooling1D()(h))
    return keras.Model(x, out, name="user_cnn")


def test_analyses_and_report_on_a_user_model(workspace, capsys):
    """coherence, topk, invariance, relevance and the report accept any supported model, layers by name or index."""
    import tfsonify

    w = workspace
    model = user_model()
    model.save(w / "user.keras")
    sonifier = tfsonify.Sonifier(model)
    assert [info.name for info in sonifier.layers() if info.block] == ["front_pool", "mid_pool", "top"]
    assert run("analyze", "coherence", w / "clips", "--model", f"user={w / 'user.keras'}", "--layers", "mid_pool,3",
               "--out", w / "ucoh") == 0
    data = json.loads((w / "ucoh" / "coherence_user.json").read_text())
    assert data["layers"] == ["mid_pool", 3] and data["clips"] == [4, 4]  # short.wav (400 samples) is long enough
    assert run("analyze", "topk", w / "clips", "--model", w / "user.keras", "--layers", "front_pool,top", "--k", "2",
               "--maps-per-layer", "1", "--no-plots", "--out", w / "utopk") == 0
    summary = json.loads((w / "utopk" / "topk.json").read_text())
    assert set(summary["layers"]) == {"front_pool", "top"} and len(list((w / "utopk").glob("front_pool_f*_rank*"))) == 2
    stride = sonifier.geometry("mid_pool")[1]
    assert stride == 8
    capsys.readouterr()
    assert run("analyze", "invariance", w / "clips" / "c0.wav", "--model", w / "user.keras", "--layer", "mid_pool") == 0
    lines = capsys.readouterr().out.splitlines()
    assert "stride) 8 samples" in lines[0]
    aligned = [line.split() for line in lines if line.strip().startswith(("8 ", "16 "))]
    assert len(aligned) == 2 and all(row[1] == "True" and float(row[3]) < 1e-5 for row in aligned)
    misaligned = [line.split() for line in lines if line.strip().startswith("9 ")]
    assert misaligned[0][1] == "False"
    assert run("analyze", "relevance", w / "clips" / "c1.wav", "--model", w / "user.keras", "--out", w / "urel") == 0
    relevance = json.loads((w / "urel" / "relevance.json").read_text())
    assert relevance["layer"] is None and 0 <= relevance["unit"] < 3 and (w / "urel" / "relevance.wav").is_file()
    assert run("analyze", "relevance", w / "clips" / "c1.wav", "--model", w / "user.keras", "--layer", "mid",
               "--unit", "2", "--out", w / "urel2") == 0
    assert json.loads((w / "urel2" / "relevance.json").read_text())["layer"] == "mid"
    assert run("report", w / "user.keras", w / "clips", "--layers", "2,top", "--top", "1",
               "--out", w / "ureport") == 0
    page = (w / "ureport" / "index.html").read_text()
    assert "Block 2" in page and "Layer top" in page and "Residual experiment" in page
    report = json.loads((w / "ureport" / "report.json").read_text())
    assert report["residual"]["metric"] == "cosine" and report["residual"]["layers"] == [2, "top"]  # no head known
    assert set(report["layers"]) == {"2", "top"} and len(report["layers"]["top"]["maps"]) == 4
    for name in report["layers"]["top"]["maps"]:
        assert (w / "ureport" / name["wav"]).is_file()
    capsys.readouterr()
    assert run("analyze", "coherence", w / "clips", "--model", w / "user.keras", "--layers", "nope", "--out", w / "bad") != 0
    assert "layer 'nope' is not a sonifiable layer of model 'user_cnn'" in capsys.readouterr().err
