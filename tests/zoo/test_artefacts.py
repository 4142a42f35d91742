"""The zoo battery's exported artefacts: every zoo model as a SavedModel served by ``tfsonify serve`` and asked by
``tfsonify request``, and as a TFLite file through LiteRT and ``python -m tfsonify.edge`` (``tests/zoo/battery.py``, fixture in ``conftest.py``).
"""
from __future__ import annotations

import json
import urllib.request

import numpy as np
import soundfile

from zoo.battery import exported_tflite, run
from zoo.models import test_clip


# ------------------------------------------------------------------------------------------------ serving
def test_savedmodel_serve_request(zoo, tmp_path):
    from tfsonify.export.savedmodel import read_metadata
    from tfsonify.serving.lifecycle import ModelRepository
    from tfsonify.serving.server import Server

    models = tmp_path / "models"
    assert run("export", "savedmodel", zoo.path, "--out", models / "zoo") == 0
    meta = read_metadata(models / "zoo" / "1")
    assert meta["sample_rate"] == zoo.rate and meta["model_metadata"]["sample_rate"] == zoo.rate
    assert meta["class_names"] == (None if zoo.entry.class_names is None else list(zoo.entry.class_names))
    block = zoo.layer if isinstance(zoo.layer, int) else meta["layer_names"].index(zoo.layer) + 1
    server = Server(ModelRepository(models, warmup=False), port=0, grpc_port=None, grace=1).start()
    try:
        url = f"http://127.0.0.1:{server.rest_port}/v1/models/zoo"
        # no --sample-rate: the server reports the model's record (rate, class and layer names) with its metadata
        assert run("request", url, zoo.wav, "--layer", block, "--top", 1, "--out", tmp_path / "req", "--no-plots") == 0
        manifest = json.loads((tmp_path / "req" / "manifest.json").read_text())
        assert manifest["sample_rate"] == zoo.rate
        # a SavedModel sonifies the clip in one pass (a fixed-frame model too: no framing in the graph)
        features = zoo.sonifier.sonify_top(zoo.wave, zoo.layer, 1, window_seconds=None)[0]
        assert [e["feature"] for e in manifest["sonifications"]] == [int(features[0])]
        if zoo.entry.class_names:
            instance = zoo.wave[:, None] if len(zoo.model.inputs[0].shape) == 3 else zoo.wave  # the model's input shape
            body = json.dumps({"signature_name": "classify", "instances": [instance.tolist()]}).encode()
            with urllib.request.urlopen(urllib.request.Request(url + ":predict", data=body), timeout=120) as response:
                labels = json.loads(response.read())["predictions"][0]["labels"]
            assert labels in zoo.entry.class_names
    finally:
        server.stop()


# ------------------------------------------------------------------------------------------------ TFLite / edge
def test_tflite_export_and_edge_runtime(zoo, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    from tfsonify.edge.metadata import layer_geometry, read_metadata, signature_suffix

    path = exported_tflite(zoo)
    record = read_metadata(path)  # TensorFlow-free reader
    length = zoo.entry.fixed or zoo.rate  # default: the model's frame, else 1 s at its rate
    assert record["sample_rate"] == zoo.rate and record["length"] == length
    geometry = layer_geometry(record, zoo.layer)
    assert (geometry["receptive_field"], geometry["stride"]) == zoo.sonifier.geometry(zoo.layer)
    assert record["class_names"] == (None if zoo.entry.class_names is None else list(zoo.entry.class_names))
    wave = test_clip(zoo.rate, seconds=length / zoo.rate + 0.01)[:length]
    runner = Interpreter(model_path=str(path)).get_signature_runner(f"top_k_{record['signatures'][str(zoo.layer)]}")
    outputs = runner(waveform=wave[None])
    features, _, sounds = zoo.sonifier.sonify_top(wave, zoo.layer, 2)
    assert outputs["features"][0].tolist() == [int(f) for f in features]
    np.testing.assert_allclose(outputs["sonifications"][0], sounds, atol=2e-4 * max(1.0, float(np.abs(sounds).max())))
    assert signature_suffix(zoo.layer) == record["signatures"][str(zoo.layer)]


def test_edge_runtime_cli_on_a_long_clip(zoo, tmp_path, capsys):
    """``python -m tfsonify.edge`` (its main, in process) on a clip 2.5 model lengths long: exact windows equal one
    pass (CNN12, the model without scaling); a model that pads, or CREPE's fixed frame, is refused in one line with
    nothing written; one model length always runs."""
    from tfsonify.edge import demo as edge_demo
    from tfsonify.edge.model import EdgeModel

    path = exported_tflite(zoo)
    edge = EdgeModel(path)
    assert edge.sample_rate == zoo.rate and edge.layers == [zoo.layer]
    length = int(edge.length)
    wave = test_clip(zoo.rate, seconds=2.5 * length / zoo.rate, seed=4)
    clip = tmp_path / "long.wav"
    soundfile.write(clip, wave, zoo.rate, subtype="FLOAT")
    out = tmp_path / "edge"
    code = edge_demo.main([str(path), str(clip), "--layer", str(zoo.layer), "--top", "2", "--out", str(out)])
    err = capsys.readouterr().err
    if zoo.entry.fixed is not None:
        assert code == 2 and f"takes fixed {zoo.entry.fixed}-sample frames" in err and not out.exists()
    elif not zoo.entry.windows:
        assert code == 2 and "('same' padding) changes the samples at a window's edges" in err and not out.exists()
        assert "Traceback" not in err
    else:
        assert code == 0, err
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["sample_rate"] == zoo.rate and manifest["mode"].endswith("exact overlapping windows")
        features, _, sounds = zoo.sonifier.sonify_top(wave, zoo.layer, 2, window_seconds=None)
        assert [e["feature"] for e in manifest["sonifications"]] == [int(f) for f in features]
        written, rate = soundfile.read(out / manifest["sonifications"][0]["wav"], dtype="float32")
        assert rate == zoo.rate
        np.testing.assert_allclose(written, sounds[0], atol=1e-4)
    # exactly one model input: always runs, equal to the Sonifier on that input (the clip of the export test above:
    # on random weights some clips hold near-ties of a pool that TFLite and TensorFlow break differently)
    wave = test_clip(zoo.rate, seconds=length / zoo.rate + 0.01)[:length]
    one = tmp_path / "one.wav"
    soundfile.write(one, wave, zoo.rate, subtype="FLOAT")
    assert edge_demo.main([str(path), str(one), "--layer", str(zoo.layer), "--top", "1", "--out", str(tmp_path / "o1")]) == 0
    manifest = json.loads((tmp_path / "o1" / "manifest.json").read_text())
    features, _, sounds = zoo.sonifier.sonify_top(wave, zoo.layer, 1)
    assert manifest["sonifications"][0]["feature"] == int(features[0])
    written, _ = soundfile.read(tmp_path / "o1" / manifest["sonifications"][0]["wav"], dtype="float32")
    np.testing.assert_allclose(written, sounds[0], atol=2e-4 * max(1.0, float(np.abs(sounds).max())))
    if zoo.entry.class_names:
        assert manifest["class_names"] == list(zoo.entry.class_names)
