"""SavedModel export: TF Serving layout, signatures, parity with the Python Sonifier, atomic versions."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tiny import tiny_cnn12

_CACHE: dict = {}


def headed_model():
    """CNN12 at 1/16 width with a 3-class head and random biases (fixed seeds)."""
    return tiny_cnn12(4321, num_classes=3, bias_seed=1)


def exported_model(tmp_path_factory) -> dict:
    """Export once per session through the CLI (``tfsonify export savedmodel``); shared with the serving tests."""
    if "exported" not in _CACHE:
        from tfsonify import cli

        root = tmp_path_factory.mktemp("deploy")
        model = headed_model()
        keras_path = root / "model.keras"
        model.save(keras_path)
        assert cli.main(["export", "savedmodel", str(keras_path), "--out", str(root / "models" / "cnn")]) == 0
        _CACHE["exported"] = {"root": root, "model": model, "keras_path": keras_path,
                              "models_dir": root / "models", "version_dir": root / "models" / "cnn" / "1"}
    return _CACHE["exported"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return exported_model(tmp_path_factory)


@pytest.fixture(scope="module")
def loaded(exported):
    import tensorflow as tf

    return tf.saved_model.load(str(exported["version_dir"]))


@pytest.fixture(scope="module")
def waves():
    rng = np.random.default_rng(3)
    t = np.arange(4000) / 8000.0
    a = (0.5 * np.sin(2 * np.pi * 440 * t) + rng.normal(0, 0.1, t.size)).astype("float32")
    b = (rng.normal(0, 0.7, t.size) * np.hanning(t.size)).astype("float32")
    return np.stack([a, b])


def _signature_defs(version_dir: Path):
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((version_dir / "saved_model.pb").read_bytes())
    return proto.meta_graphs[0].signature_def


def _describe(tensor_infos) -> dict:
    from tensorflow.core.framework import types_pb2

    return {name: (types_pb2.DataType.Name(info.dtype), [d.size for d in info.tensor_shape.dim])
            for name, info in tensor_infos.items()}


def test_layout_and_signature_defs(exported):
    """saved_model_cli-equivalent inspection: names, dtypes and shapes of every signature."""
    version_dir = exported["version_dir"]
    assert (version_dir / "saved_model.pb").is_file() and (version_dir / "variables").is_dir()
    defs = _signature_defs(version_dir)
    assert sorted(name for name in defs if not name.startswith("__")) == ["classify", "serving_default", "sonify", "sonify_top_k",
                                                                          "sonify_top_k_wav", "sonify_wav"]
    wave = ("DT_FLOAT", [-1, -1])
    rows = ("DT_INT32", [-1])
    assert _describe(defs["serving_default"].inputs) == {"waveform": wave}
    assert _describe(defs["serving_default"].outputs) == {"embedding": ("DT_FLOAT", [-1, 512]), "scores": ("DT_FLOAT", [-1, 3])}
    assert _describe(defs["classify"].outputs) == {"scores": ("DT_FLOAT", [-1, 3]), "classes": ("DT_INT32", [-1])}
    assert _describe(defs["sonify"].inputs) == {"waveform": wave, "layer": rows, "feature": rows}
    assert _describe(defs["sonify"].outputs) == {"sonification": ("DT_FLOAT", [-1, -1])}
    assert _describe(defs["sonify_top_k"].inputs) == {"waveform": wave, "layer": rows, "k": rows}
    assert _describe(defs["sonify_top_k"].outputs) == {"features": ("DT_INT32", [-1, -1]),
                                                       "activations": ("DT_FLOAT", [-1, -1]),
                                                       "sonifications": ("DT_FLOAT", [-1, -1, -1])}
    assert _describe(defs["sonify_wav"].inputs) == {"wav_bytes": ("DT_STRING", [-1]), "layer": rows, "feature": rows}
    assert _describe(defs["sonify_wav"].outputs) == {"sonification_bytes": ("DT_STRING", [-1]),
                                                     "sonification_peak": ("DT_FLOAT", [-1])}
    assert _describe(defs["sonify_top_k_wav"].inputs) == {"wav_bytes": ("DT_STRING", [-1]), "layer": rows, "k": rows}
    assert _describe(defs["sonify_top_k_wav"].outputs) == {"features": ("DT_INT32", [-1, -1]),
                                                           "activations": ("DT_FLOAT", [-1, -1]),
                                                           "sonifications_bytes": ("DT_STRING", [-1, -1]),
                                                           "sonification_peaks": ("DT_FLOAT", [-1, -1])}
    for name in ("serving_default", "classify", "sonify", "sonify_top_k", "sonify_wav", "sonify_top_k_wav"):
        assert defs[name].method_name == "tensorflow/serving/predict"


def test_weights_are_stored_once(exported):
    import tensorflow as tf

    stored = tf.train.list_variables(str(exported["version_dir"] / "variables" / "variables"))
    weights = sum(int(np.prod(shape)) for name, shape in stored if "OBJECT_GRAPH" not in name and shape)
    assert weights == exported["model"].count_params()


def test_serving_default_and_classify_match_keras(exported, loaded, waves):
    import tensorflow as tf

    model = exported["model"]
    out = loaded.signatures["serving_default"](waveform=tf.constant(waves))
    np.testing.assert_allclose(out["embedding"].numpy(), model.encoder()(waves).numpy(), atol=1e-5)
    np.testing.assert_allclose(out["scores"].numpy(), model(waves).numpy(), atol=1e-5)
    classified = loaded.signatures["classify"](waveform=tf.constant(waves))
    np.testing.assert_array_equal(classified["classes"].numpy(), np.argmax(model(waves).numpy(), axis=-1))


def test_sonify_matches_sonifier_with_mixed_layers(exported, loaded, waves):
    import tensorflow as tf

    import tfsonify

    sonifier = tfsonify.Sonifier(exported["model"])
    batch = np.concatenate([waves, waves[::-1]])
    layers = np.array([1, 6, 11, 6], np.int32)
    # each row's most active map plus a fixed one, so the rows are not silent (random weights leave dead maps)
    features = np.array([sonifier.top_features(batch[r], int(layers[r]), 1)[0][0] for r in range(4)], np.int32)
    features[3] = 0
    out = loaded.signatures["sonify"](waveform=tf.constant(batch), layer=tf.constant(layers), feature=tf.constant(features))
    sound = out["sonification"].numpy()
    assert sound.shape == batch.shape
    for row in range(4):
        expected = sonifier.sonify(batch[row], int(layers[row]), feature=int(features[row]))
        np.testing.assert_allclose(sound[row], expected, atol=1e-5)
    assert np.all(np.abs(sound[:3]).max(axis=1) > 0)


def test_sonify_top_k_matches_sonifier_and_pads(exported, loaded, waves):
    import tensorflow as tf

    import tfsonify

    sonifier = tfsonify.Sonifier(exported["model"])
    out = loaded.signatures["sonify_top_k"](waveform=tf.constant(waves), layer=tf.constant([5, 9], tf.int32),
                                            k=tf.constant([3, 2], tf.int32))
    features, activations, sounds = (out[key].numpy() for key in ("features", "activations", "sonifications"))
    assert features.shape == (2, 3) and sounds.shape == (2, 3, waves.shape[1])
    for row, (layer, k) in enumerate([(5, 3), (9, 2)]):
        f, a, s = sonifier.sonify_top(waves[row], layer, k)
        np.testing.assert_array_equal(features[row, :k], f)
        np.testing.assert_allclose(activations[row, :k], a, atol=1e-5)
        np.testing.assert_allclose(sounds[row, :k], s, atol=1e-5)
    # row 1 asked for k=2: its third slot is padding
    assert features[1, 2] == -1 and activations[1, 2] == 0 and not np.any(sounds[1, 2])


@pytest.mark.parametrize("signature, layer, other, message", [
    ("sonify", [1, 1], [0, 4], "feature must be < the number of maps"),
    ("sonify", [1, 1], [0, -1], "feature must be >= 0"),
    ("sonify", [0, 1], [0, 0], "layer must be in 1..11"),
    ("sonify", [1, 12], [0, 0], "layer must be in 1..11"),
    ("sonify", [0, 1], [0, 99], "layer must be in 1..11"),  # the layer check wins over the feature check
    ("sonify", [1], [0, 0], "layer must have one entry per clip"),
    ("sonify", [1, 1], [0], "feature must have one entry per clip"),
    ("sonify_top_k", [1, 1], [1, 0], "k must be >= 1"),
    ("sonify_top_k", [1, 1], [1, 5], "k must be <= the number of maps"),
    ("sonify_top_k", [0, 1], [1, 1], "layer must be in 1..11"),
    ("sonify_top_k", [1, 12], [99, 1], "layer must be in 1..11"),
    ("sonify_top_k", [1, 1, 1], [1, 1], "layer must have one entry per clip"),
    ("sonify_top_k", [1, 1], [1], "k must have one entry per clip"),
])
def test_graph_rejects_out_of_range_rows(loaded, waves, signature, layer, other, message):
    """Every bad row gets its own message, whatever the runtime's op order (issue 11: checks run in sequence)."""
    import tensorflow as tf

    other_name = "feature" if signature == "sonify" else "k"
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        loaded.signatures[signature](waveform=tf.constant(waves), layer=tf.constant(layer, tf.int32),
                                     **{other_name: tf.constant(other, tf.int32)})


def test_each_signature_is_traced_once(tmp_path, monkeypatch):
    """ExportArchive lists variables outside tf.saved_model.save's context and save looks the functions up inside
    it (another cache key): without trace_endpoints_once every signature graph was built twice."""
    from tfsonify.engine.sonifier import Sonifier
    from tfsonify.export.savedmodel import export_saved_model, exported_layers

    calls = []
    original = Sonifier.sonify_top_graph
    monkeypatch.setattr(Sonifier, "sonify_top_graph", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    model = tiny_cnn12(5)
    export_saved_model(model, tmp_path / "cnn", sample_rate=8000)
    layers = len(exported_layers(Sonifier(model, sample_rate=8000)))
    assert len(calls) == layers  # sonify_top_k once; sonify_top_k_wav calls its function (no trace of its own)


def test_versions_are_atomic_and_numbered(tmp_path, exported):
    from tfsonify.export.savedmodel import export_saved_model, next_version

    model_dir = tmp_path / "cnn"
    assert next_version(model_dir) == 1

    def interrupt(staged):
        assert (staged / "saved_model.pb").is_file()  # fully written, not yet visible
        assert not any(p.name.isdigit() for p in model_dir.iterdir())
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        export_saved_model(exported["model"], model_dir, _before_rename=interrupt)
    assert list(model_dir.iterdir()) == []  # no numbered folder, no temporary left over
    (model_dir / "1").mkdir()
    (model_dir / "1" / "saved_model.pb").write_bytes(b"")
    assert next_version(model_dir) == 2
    with pytest.raises(ValueError, match="exists already"):
        export_saved_model(exported["model"], model_dir, version=1)
    with pytest.raises(ValueError, match="positive integer"):
        export_saved_model(exported["model"], model_dir, version=0)


def test_server_configs_parse(exported):
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    text_format.Parse((exported["models_dir"] / "models.config").read_text(), config)
    entry = config.model_config_list.config[0]
    assert (entry.name, entry.base_path, entry.model_platform) == ("cnn", "cnn", "tensorflow")
    assert entry.model_version_policy.latest.num_versions == 1
    batching = (exported["models_dir"] / "batching.config").read_text()
    for field in ("max_batch_size", "batch_timeout_micros", "num_batch_threads", "max_enqueued_batches"):
        assert f"{field} {{ value: " in batching
    assert "pad_variable_length_inputs: false" in batching
    repo_config = Path(__file__).resolve().parents[1] / "export" / "models.config"
    text_format.Parse(repo_config.read_text(), model_server_config_pb2.ModelServerConfig())


def test_cli_rejects_missing_model(tmp_path, capsys):
    from tfsonify import cli

    assert cli.main(["export", "savedmodel", str(tmp_path / "nope.keras"), "--out", str(tmp_path / "m")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "m" / "1")


def test_tf_serving_warmup_requests_parse_and_run(exported, loaded):
    """assets.extra/tf_serving_warmup_requests: one valid PredictRequest per signature."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    from tfsonify.export.savedmodel import WARMUP_FILE

    signatures = []
    for record in tf.data.TFRecordDataset(str(exported["version_dir"] / WARMUP_FILE)):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        request = log.predict_log.request
        inputs = {name: tf.constant(tf.make_ndarray(proto)) for name, proto in request.inputs.items()}
        outputs = loaded.signatures[request.model_spec.signature_name](**inputs)
        assert all(np.all(np.isfinite(value.numpy())) for value in outputs.values() if value.dtype != tf.string)
        signatures.append(request.model_spec.signature_name)
    assert sorted(signatures) == ["classify", "serving_default", "sonify", "sonify_top_k", "sonify_top_k_wav", "sonify_wav"]


# --- any supported model: layer ids are its conv blocks, names in the metadata -------------------------------------
def generic_model():
    import keras

    L = keras.layers
    keras.utils.set_random_seed(11)
    x = keras.Input((None,), name="wave")
    h = L.Reshape((-1, 1))(x)
    h = L.Conv1D(4, 5, strides=2, activation="relu", name="front")(h)
    h = L.MaxPooling1D(3, 2, name="overlap")(h)
    h = L.Conv1D(5, 3, padding="same", activation="relu", name="mid")(h)
    h = L.BatchNormalization(name="mid_bn")(h)
    h = L.Conv1D(3, 3, dilation_rate=2, activation="relu", name="top")(h)
    model = keras.Model(x, L.Dense(2, name="out")(L.GlobalAveragePooling1D()(h)), name="user_cnn")
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if getattr(layer, "bias", None) is not None:
            layer.bias.assign(rng.normal(0.0, 0.05, layer.bias.shape).astype("float32"))
    return model


@pytest.fixture(scope="module")
def generic_export(tmp_path_factory):
    import tensorflow as tf

    from tfsonify.export.savedmodel import export_saved_model

    model = generic_model()
    version_dir = export_saved_model(model, tmp_path_factory.mktemp("generic") / "user", sample_rate=16000)
    return model, version_dir, tf.saved_model.load(str(version_dir))


def test_generic_model_export_matches_the_sonifier(generic_export):
    import tensorflow as tf

    import tfsonify
    from tfsonify.export.savedmodel import read_metadata

    model, version_dir, loaded = generic_export
    sonifier = tfsonify.Sonifier(model, sample_rate=16000)
    meta = read_metadata(version_dir)
    assert meta["layer_names"] == ["overlap", "mid_bn", "top"] and meta["num_layers"] == 3
    assert meta["num_features"] == [4, 5, 3] and meta["sample_rate"] == 16000 and meta["embedding_dim"] is None
    assert meta["min_length"] == [sonifier.min_length(name) for name in meta["layer_names"]]
    waves = np.random.default_rng(2).normal(0, 0.4, (3, 300)).astype("float32")
    np.testing.assert_allclose(loaded.signatures["serving_default"](waveform=tf.constant(waves))["output"].numpy(),
                               model(waves).numpy(), atol=1e-5)
    layers, features = np.array([3, 1, 2], np.int32), np.array([2, 0, 4], np.int32)
    sound = loaded.signatures["sonify"](waveform=tf.constant(waves), layer=tf.constant(layers),
                                        feature=tf.constant(features))["sonification"].numpy()
    for row in range(3):
        expected = sonifier.sonify(waves[row], meta["layer_names"][layers[row] - 1], feature=int(features[row]))
        np.testing.assert_allclose(sound[row], expected, atol=1e-5)
    assert np.abs(sound).max() > 0
    out = loaded.signatures["sonify_top_k"](waveform=tf.constant(waves[:2]), layer=tf.constant([2, 3], tf.int32),
                                            k=tf.constant([2, 2], tf.int32))
    for row, layer in enumerate([2, 3]):
        f, a, s = sonifier.sonify_top(waves[row], layer, 2)  # integer layer = block, as the exported ids
        np.testing.assert_array_equal(out["features"].numpy()[row], f)
        np.testing.assert_allclose(out["sonifications"].numpy()[row], s, atol=1e-5)
    for layer, other, message in [([0, 1, 1], [0, 0, 0], "layer must be in 1..3"),
                                  ([1, 4, 1], [0, 99, 0], "layer must be in 1..3"),
                                  ([1, 1, 1], [0, 4, 0], "feature must be < the number of maps")]:
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            loaded.signatures["sonify"](waveform=tf.constant(waves), layer=tf.constant(layer, tf.int32),
                                        feature=tf.constant(other, tf.int32))


@pytest.mark.slow  # 487k weights, six blocks: minutes on a loaded 2-core machine
def test_crepe_tiny_export_through_the_cli(tmp_path):
    import tensorflow as tf

    import tfsonify
    from tfsonify import cli
    from tfsonify.export.savedmodel import read_metadata
    from tfsonify.models.crepe import pretrained_crepe

    model = pretrained_crepe("tiny")
    model.save(tmp_path / "crepe-tiny.keras")
    assert cli.main(["export", "savedmodel", str(tmp_path / "crepe-tiny.keras"), "--out", str(tmp_path / "crepe")]) == 0
    version_dir = tmp_path / "crepe" / "1"
    meta = read_metadata(version_dir)
    assert meta["layer_names"] == [f"conv{i}_pool" for i in range(1, 7)]
    assert meta["sample_rate"] == 16000 and meta["input_length"] == 1024
    loaded = tf.saved_model.load(str(version_dir))
    t = np.arange(1024) / 16000.0
    frame = (0.5 * np.sin(2 * np.pi * 330.0 * t)).astype("float32")[None]
    np.testing.assert_allclose(loaded.signatures["serving_default"](waveform=tf.constant(frame))["output"].numpy(),
                               model(frame).numpy(), atol=1e-5)
    sonifier = tfsonify.Sonifier(model)
    out = loaded.signatures["sonify"](waveform=tf.constant(frame), layer=tf.constant([4], tf.int32),
                                      feature=tf.constant([3], tf.int32))["sonification"].numpy()
    np.testing.assert_allclose(out[0], sonifier.sonify(frame[0], "conv4_pool", feature=3), atol=1e-5)
