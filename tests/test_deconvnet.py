"""The graph-walking deconvnet on small user-style Keras models: every supported layer type against the
gradient formulation (tests/oracle.py), forward equal to Keras, geometry, XLA, and rejected models."""
import keras
import numpy as np
import pytest
import tensorflow as tf

import tfsonify
from oracle import keras_gradient_sonification
from tiny import randomise_weights
from tfsonify.engine.walk import DeconvNet

L = keras.layers


@keras.saving.register_keras_serializable(package="tfsonify_tests")
class FrameStandardization(L.Layer):
    """Per-frame zero mean, unit standard deviation (CREPE's input scaling), marked as input scaling."""

    sonify_input_scaling = True

    def call(self, inputs):
        centred = inputs - tf.reduce_mean(inputs, axis=-1, keepdims=True)
        return centred / tf.maximum(tf.math.reduce_std(centred, axis=-1, keepdims=True), 1e-8)


def convs_model():
    """Strided, dilated; same, causal and valid padding; fused and separate ReLU; a conv without bias."""
    x = keras.Input((None,))
    h = L.Reshape((-1, 1))(x)
    h = L.Conv1D(4, 5, strides=2, padding="same", activation="relu", name="same_s2")(h)
    h = L.Conv1D(5, 3, dilation_rate=2, padding="causal", activation="relu", name="causal_d2")(h)
    h = L.Conv1D(4, 4, strides=3, padding="valid", use_bias=False, name="valid_s3")(h)
    h = L.ReLU(name="relu")(h)
    h = L.Conv1D(3, 3, dilation_rate=3, padding="same", activation="relu", name="same_d3")(h)
    h = L.Conv1D(3, 4, strides=2, padding="same", activation="relu", name="same_s2_even")(h)
    out = L.Dense(2)(L.GlobalAveragePooling1D()(h))
    return keras.Model(x, out, name="convs")


def pools_model():
    """Overlapping, same-padded and gapped max pools, average pools (valid and same)."""
    x = keras.Input((None, 1))
    h = L.Conv1D(4, 3, activation="relu", name="c1")(x)
    h = L.MaxPooling1D(3, 2, name="overlap")(h)
    h = L.Conv1D(5, 3, padding="same", activation="relu", name="c2")(h)
    h = L.MaxPooling1D(3, 2, padding="same", name="overlap_same")(h)
    h = L.Conv1D(4, 3, activation="relu", name="c3")(h)
    h = L.MaxPooling1D(2, 3, name="gapped")(h)
    h = L.MaxPooling1D(4, 4, padding="same", name="pool4_same")(h)
    h = L.Conv1D(4, 2, activation="relu", name="c4")(h)
    h = L.AveragePooling1D(3, 2, padding="same", name="avg_same")(h)
    h = L.AveragePooling1D(2, name="avg")(h)
    return keras.Model(x, L.GlobalMaxPooling1D()(h), name="pools")


def affine_model():
    """Rescaling, BatchNormalization, Activation, Dropout, SpatialDropout1D, ZeroPadding1D, Cropping1D."""
    x = keras.Input((None, 1))
    h = L.Rescaling(0.5, offset=0.1, name="rescale")(x)
    h = L.Conv1D(4, 5, use_bias=False, name="c1")(h)
    h = L.BatchNormalization(name="bn1")(h)
    h = L.Activation("relu", name="act")(h)
    h = L.Dropout(0.3, name="drop")(h)
    h = L.SpatialDropout1D(0.3, name="sdrop")(h)
    h = L.Conv1D(4, 3, name="c2")(h)
    h = L.BatchNormalization(name="bn2")(h)
    h = L.ReLU(name="relu2")(h)
    h = L.ZeroPadding1D((2, 3), name="pad")(h)
    h = L.Conv1D(3, 3, activation="relu", name="c3")(h)
    h = L.Cropping1D((1, 2), name="crop")(h)
    h = L.Rescaling([0.5, 2.0, -1.0], name="per_channel")(h)
    return keras.Model(x, L.GlobalAveragePooling1D()(h), name="affine")


def residual_model():
    """A residual Add of two paths, a ReLU after it, a pool and a conv on top."""
    x = keras.Input((None,))
    h = L.Reshape((-1, 1))(x)
    h = L.Conv1D(4, 3, padding="same", activation="relu", name="stem")(h)
    branch = L.Conv1D(4, 3, padding="same", activation="relu", name="branch1")(h)
    branch = L.Conv1D(4, 3, padding="same", name="branch2")(branch)
    h = L.Add(name="add")([h, branch])
    h = L.ReLU(name="post")(h)
    h = L.MaxPooling1D(2, name="pool")(h)
    h = L.Conv1D(3, 3, activation="relu", name="top")(h)
    return keras.Model(x, L.GlobalAveragePooling1D()(h), name="residual")


def conv2d_model():
    """Conv2D and pools used as 1-D on [1, time, channels] (time on the second spatial axis)."""
    x = keras.Input((None,))
    h = L.Reshape((1, -1, 1))(x)
    h = L.Conv2D(4, (1, 5), strides=(1, 2), activation="relu", name="c1")(h)
    h = L.MaxPooling2D((1, 3), (1, 2), name="p1")(h)
    h = L.ZeroPadding2D(((0, 0), (2, 1)), name="pad")(h)
    h = L.Conv2D(3, (1, 3), padding="same", activation="relu", name="c2")(h)
    h = L.AveragePooling2D((1, 2), name="p2")(h)
    return keras.Model(x, L.GlobalAveragePooling2D()(h), name="conv2d")


def sequential_model():
    return keras.Sequential([keras.Input((None, 1)), L.Conv1D(4, 5, strides=2, activation="relu", name="c1"),
                             L.MaxPooling1D(2, name="p1"), L.Conv1D(3, 3, activation="relu", name="c2")], name="seq")


CREPE_FILTERS = (8, 4, 4, 4, 6, 8)


def crepe_layout_model(filters=CREPE_FILTERS):
    """CREPE's exact layout (Kim et al., 2018) with small filter counts, random weights."""
    x = keras.Input((1024,), name="frame")
    h = FrameStandardization(name="standardize")(x)
    h = L.Reshape((1024, 1, 1), name="to_2d")(h)
    for index, (width, kernel, stride) in enumerate(zip(filters, (512,) + (64,) * 5, (4,) + (1,) * 5), start=1):
        left, right = ((254, 254) if index == 1 else (31, 32))
        h = L.ZeroPadding2D(((left, right), (0, 0)), name=f"conv{index}_pad")(h)
        h = L.Conv2D(width, (kernel, 1), strides=(stride, 1), padding="valid", activation="relu", name=f"conv{index}")(h)
        h = L.BatchNormalization(name=f"conv{index}_bn")(h)
        h = L.MaxPooling2D((2, 1), (2, 1), padding="valid", name=f"conv{index}_maxpool")(h)
        h = L.Dropout(0.25, name=f"conv{index}_dropout")(h)
    h = L.Permute((2, 1, 3), name="transpose")(h)
    h = L.Flatten(name="flatten")(h)
    out = L.Dense(360, activation="sigmoid", name="classifier")(h)
    model = keras.Model(x, out, name="crepe_like")
    model.sample_rate = 16000
    return model


BUILDERS = {"convs": convs_model, "pools": pools_model, "affine": affine_model, "residual": residual_model,
            "conv2d": conv2d_model, "sequential": sequential_model, "crepe": crepe_layout_model}
LENGTHS = {"crepe": 1024}
START = {"crepe": "standardize"}


@pytest.fixture(scope="module")
def models():
    built = {}
    for seed, (name, build) in enumerate(BUILDERS.items()):
        keras.utils.set_random_seed(seed)
        built[name] = randomise_weights(build(), seed)
    return built


def _clips(length, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(length) / 8000.0
    tone = np.sin(2 * np.pi * 440 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 7 * t))
    return np.stack([(tone + 0.3 * rng.standard_normal(length)).astype("float32"),
                     (0.7 * rng.standard_normal(length)).astype("float32")])


def _cases():
    expected = {
        "convs": ["same_s2", "causal_d2", "valid_s3", "relu", "same_d3", "same_s2_even"],
        "pools": ["c1", "overlap", "c2", "overlap_same", "c3", "gapped", "pool4_same", "c4", "avg_same", "avg"],
        "affine": ["c1", "bn1", "act", "drop", "sdrop", "c2", "bn2", "relu2", "pad", "c3", "crop", "per_channel"],
        "residual": ["stem", "branch1", "branch2", "add", "post", "pool", "top"],
        "conv2d": ["c1", "p1", "pad", "c2", "p2"],
        "sequential": ["c1", "p1", "c2"],
        "crepe": [f"conv{i}{suffix}" for i in (1, 3, 6) for suffix in ("", "_bn", "_maxpool")] + ["conv4_dropout"],
    }
    return [(model, layer) for model, layers in expected.items() for layer in layers]


@pytest.mark.parametrize("model_name, layer", _cases())
def test_equals_gradient_formulation(models, model_name, layer):
    model = models[model_name]
    sonifier = tfsonify.Sonifier(model)
    clips = _clips(LENGTHS.get(model_name, 613 if model_name != "pools" else 700))
    channels = sonifier.num_features(layer)
    features = sorted({0, channels - 1, int(sonifier.top_features(clips[0], layer, k=1)[0][0])})
    ours = sonifier.sonify(clips, layer=layer, features=features)
    assert ours.shape == (2, len(features), clips.shape[1])
    for slot, feature in enumerate(features):
        oracle = keras_gradient_sonification(model, clips, layer, feature, START.get(model_name))
        np.testing.assert_allclose(ours[:, slot], oracle, atol=1e-5, err_msg=f"{model_name}:{layer} map {feature}")
    assert np.abs(ours).max() > 0
    # the top-k path (full forward, per-row top block) gives the same maps
    top, _, sounds = sonifier.sonify_top(clips[1], layer, k=min(2, channels))
    np.testing.assert_allclose(sounds, sonifier.sonify(clips[1], layer, features=list(top)), atol=1e-5)


@pytest.mark.parametrize("model_name", list(BUILDERS))
def test_activations_equal_keras(models, model_name):
    model = models[model_name]
    sonifier = tfsonify.Sonifier(model)
    clips = _clips(LENGTHS.get(model_name, 700))
    feed = clips if len(model.inputs[0].shape) == 2 else clips[..., None]
    for info in sonifier.layers():
        keras_out = keras.Model(model.inputs[0], model.get_layer(info.name).output)(feed).numpy()
        keras_out = keras_out.reshape(keras_out.shape[0], -1, keras_out.shape[-1])
        np.testing.assert_allclose(sonifier.activations(clips, info.name), keras_out, atol=1e-5, err_msg=info.name)


@pytest.mark.parametrize("model_name", ["convs", "pools", "affine", "conv2d", "crepe"])
def test_lengths_and_min_length_match_keras(models, model_name):
    model = models[model_name]
    deconvnet = DeconvNet(model)
    lengths = (1024,) if model_name == "crepe" else (7, 40, 41, 97, 300)
    for info in deconvnet.layers():
        probe = keras.Model(model.inputs[0], model.get_layer(info.name).output)
        for length in lengths:
            ours = deconvnet.output_length(info.name, length)
            if length < info.min_length:  # some layer on the way is empty: too short
                assert ours == 0, (info.name, length)
                continue
            feed = np.zeros((1, length) + ((1,) if len(model.inputs[0].shape) == 3 else ()), "float32")
            shape = probe(feed).shape
            assert ours == int(np.prod(shape[1:-1])) >= 1, (info.name, length)  # time (times a singleton axis)
        if model_name != "crepe":
            assert deconvnet.output_length(info.name, info.min_length) >= 1
            assert info.min_length == 1 or deconvnet.output_length(info.name, info.min_length - 1) == 0


def test_geometry_of_strided_dilated_stack(models):
    sonifier = tfsonify.Sonifier(models["convs"])
    assert sonifier.geometry("same_s2") == (5, 2)
    assert sonifier.geometry("causal_d2") == (5 + 4 * 2, 2)  # dilated kernel spans 5 samples of stride 2
    assert sonifier.geometry("valid_s3") == (13 + 3 * 2, 6)
    assert sonifier.geometry("same_d3") == (19 + 6 * 6, 6)
    info = {i.name: i for i in sonifier.layers()}
    assert info["same_s2_even"].stride == 12 and info["same_s2_even"].channels == 3


def test_crepe_layout_layers_and_blocks(models):
    model = models["crepe"]
    sonifier = tfsonify.Sonifier(model)
    assert sonifier.sample_rate == 16000
    infos = {info.name: info for info in sonifier.layers()}
    for index, width in enumerate(CREPE_FILTERS, start=1):
        assert infos[f"conv{index}"].channels == width
        assert infos[f"conv{index}_maxpool"].block == index  # block L ends at the pool after conv L
    assert infos["conv1"].receptive_field == 512 and infos["conv1"].stride == 4
    assert infos["conv6_maxpool"].stride == 4 * 2**6
    assert "flatten" not in infos and "standardize" not in infos
    np.testing.assert_allclose(sonifier.sonify(_clips(1024), layer=4, feature=1),
                               sonifier.sonify(_clips(1024), layer="conv4_maxpool", feature=1), atol=1e-7)
    # fully convolutional up to conv6: longer clips than one frame are sonified too
    long = np.tile(_clips(1024)[0], 3)
    assert sonifier.sonify(long, layer="conv6", feature=0).shape == long.shape
    with pytest.raises(ValueError, match="'flatten'.*Flatten.*not supported"):
        sonifier.sonify(_clips(1024)[0], layer="flatten", feature=0)
    with pytest.raises(ValueError, match="not a sonifiable layer"):
        sonifier.sonify(_clips(1024)[0], layer="conv7", feature=0)


@pytest.mark.parametrize("model_name", ["crepe", "pools", "residual", "convs"])
def test_xla_equals_graph_mode(models, model_name):
    model = models[model_name]
    graph, xla = tfsonify.Sonifier(model), tfsonify.Sonifier(model, jit_compile=True)
    clips = _clips(LENGTHS.get(model_name, 700))
    # CREPE: its deepest layer only (its graph holds every op of the shallower ones; each layer is an XLA compile)
    for info in graph.layers()[-1 if model_name == "crepe" else -3:]:
        np.testing.assert_allclose(xla.sonify(clips, info.name, features=[0, 1]), graph.sonify(clips, info.name, features=[0, 1]),
                                   atol=1e-5, err_msg=info.name)
        a, b = xla.sonify_top(clips, info.name, 2), graph.sonify_top(clips, info.name, 2)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_allclose(a[2], b[2], atol=1e-5)


def test_raw_reconstruction_contract(tiny_model, clip):
    sonifier = tfsonify.Sonifier(tiny_model)
    peak = np.abs(clip).max()
    raw = sonifier.raw_reconstruction(clip / peak, 8, [2, 5])
    assert raw.shape == (2, clip.size) and raw.dtype == np.float32
    expected = sonifier.sonify(clip, 8, features=[2, 5])
    np.testing.assert_allclose(raw / np.abs(raw).max(axis=1, keepdims=True) * peak, expected, atol=1e-5)
    # unscaled: a louder input gives a proportionally larger reconstruction up to the ReLU/bias nonlinearity
    np.testing.assert_allclose(sonifier.peak_activations(clip / peak, 8), sonifier.activations(clip, 8).max(axis=0), atol=1e-5)
    assert sonifier.geometry(11) == (tfsonify.min_length(11), 2**8)
    for block in range(1, 12):
        assert sonifier.min_length(block) == tfsonify.min_length(block)
        assert sonifier.layers()[[i.name for i in sonifier.layers()].index(sonifier.deconvnet.blocks[block - 1])].block == block
    assert sonifier.sample_rate == 8000
    assert tfsonify.Sonifier(tiny_model, sample_rate=16000).sample_rate == 16000
    with pytest.raises(ValueError, match="sample_rate"):
        tfsonify.Sonifier(tiny_model, sample_rate=0)


def test_cnn12_layer_names_equal_the_gradient(tiny_model, clip):
    from oracle import gradient_sonification

    sonifier = tfsonify.Sonifier(tiny_model)
    np.testing.assert_allclose(sonifier.sonify(clip, "pool5", feature=3), sonifier.sonify(clip, 5, feature=3), atol=1e-7)
    np.testing.assert_allclose(sonifier.sonify(clip[None], "conv10", feature=1), gradient_sonification(tiny_model, clip[None], 10, 1),
                               atol=1e-5)
    conv5 = sonifier.sonify(clip[None], "conv5", feature=2)  # the conv's own output, before its pool
    oracle = keras_gradient_sonification(tiny_model, clip[None], "conv5", 2, start="peak_normalization")
    np.testing.assert_allclose(conv5, oracle, atol=1e-5)


def _reject(build, *patterns):
    with pytest.raises(ValueError) as error:
        tfsonify.Sonifier(build())
    for pattern in patterns:
        assert pattern in str(error.value), str(error.value)


def test_unsupported_models_are_rejected_naming_the_layer():
    def lstm_between_convs():
        x = keras.Input((None, 1))
        h = L.Conv1D(4, 3, name="c1")(x)
        h = L.LSTM(4, return_sequences=True, name="memory")(h)
        return keras.Model(x, L.Conv1D(2, 3, name="c2")(h))

    def concatenate_branch():
        x = keras.Input((None, 1))
        a, b = L.Conv1D(4, 3, name="a")(x), L.Conv1D(4, 3, name="b")(x)
        return keras.Model(x, L.Conv1D(2, 3, name="c")(L.Concatenate(name="join")([a, b])))

    def tanh_conv():
        x = keras.Input((None, 1))
        return keras.Model(x, L.Conv1D(4, 3, activation="tanh", name="squash")(x))

    def leaky():
        x = keras.Input((None, 1))
        return keras.Model(x, L.Conv1D(2, 3, name="c2")(L.LeakyReLU(name="leaky")(L.Conv1D(4, 3, name="c1")(x))))

    def two_inputs():
        a, b = keras.Input((None, 1)), keras.Input((None, 1))
        return keras.Model([a, b], L.Add()([L.Conv1D(2, 3)(a), L.Conv1D(2, 3)(b)]))

    def stereo():
        x = keras.Input((None, 2))
        return keras.Model(x, L.Conv1D(2, 3)(x))

    def spectrogram_like():
        x = keras.Input((None, 64, 1))
        return keras.Model(x, L.Conv2D(2, 3)(x))

    def conv2d_over_two_axes():
        x = keras.Input((None,))
        return keras.Model(x, L.Conv2D(2, (3, 1), strides=(1, 2), name="square")(L.Reshape((-1, 1, 1))(x)))

    def flatten_first():
        x = keras.Input((64,))
        return keras.Model(x, L.Dense(3, name="dense")(x))

    def depthwise():
        x = keras.Input((None, 1))
        return keras.Model(x, L.DepthwiseConv1D(3, name="dw")(L.Conv1D(4, 3, name="c1")(x)))

    _reject(lstm_between_convs, "'memory'", "(LSTM)", "Supported:")
    _reject(concatenate_branch, "'join'", "(Concatenate)", "only Add")
    _reject(tanh_conv, "'squash'", "(Conv1D)", "tanh")
    _reject(leaky, "'leaky'", "(LeakyReLU)")
    _reject(two_inputs, "2 inputs", "[batch, time]")
    _reject(stereo, "(None, None, 2)", "[batch, time, 1]")
    _reject(spectrogram_like, "[batch, time, 1]")
    _reject(conv2d_over_two_axes, "'square'", "singleton axis")
    _reject(flatten_first, "no sonifiable layer", "'dense'")
    _reject(depthwise, "'dw'", "DepthwiseConv1D")


def test_bad_layers_and_inputs(models):
    sonifier = tfsonify.Sonifier(models["pools"])
    clip = _clips(700)[0]
    with pytest.raises(ValueError, match="not a sonifiable layer.*sonifiable: \\['c1'"):
        sonifier.sonify(clip, layer="nope", feature=0)
    with pytest.raises(ValueError, match="integer block index in 1..4"):
        sonifier.sonify(clip, layer=5, feature=0)
    with pytest.raises(ValueError, match="outside layer 'c2''s 5 maps"):
        sonifier.sonify(clip, layer="c2", feature=5)
    need = sonifier.min_length("avg")
    with pytest.raises(ValueError, match=f"layer 'avg' needs at least {need}"):
        sonifier.sonify(clip[: need - 1], layer="avg", feature=0)
    assert sonifier.sonify(clip[:need], layer="avg", feature=0).shape == (need,)
    silent = sonifier.sonify(np.zeros(700, "float32"), layer="c3", feature=1)
    assert np.all(np.isfinite(silent))


def test_unbuilt_sequential_is_rejected():
    with pytest.raises(ValueError, match="no defined input"):
        tfsonify.Sonifier(keras.Sequential([L.Conv1D(2, 3)]))


def test_sees_updated_weights_and_keras_round_trip(models, tmp_path):
    model = models["affine"]
    sonifier = tfsonify.Sonifier(model)
    clip = _clips(400)[0]
    before = sonifier.sonify(clip, "bn2", feature=1)
    path = tmp_path / "affine.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(tfsonify.Sonifier(loaded).sonify(clip, "bn2", feature=1), before, atol=1e-6)
    bn = model.get_layer("bn2")
    old = bn.gamma.numpy()
    bn.gamma.assign(old * np.array([1.0, -3.0, 1.0, 1.0], "float32"))
    try:
        assert np.abs(sonifier.sonify(clip, "bn2", feature=1) - before).max() > 1e-3
    finally:
        bn.gamma.assign(old)


class Gain(L.Layer):
    """A user's layer: a fixed per-channel gain (no rule is registered for it)."""

    def __init__(self, gain, **kwargs):
        super().__init__(**kwargs)
        self.gain = np.asarray(gain, np.float32)

    def call(self, inputs):
        return inputs * self.gain


def _gain_model(gain_layer):
    x = keras.Input((None,))
    h = L.Conv1D(3, 5, activation="relu", name="c1")(L.Reshape((-1, 1))(x))
    h = gain_layer(h)
    h = L.Conv1D(4, 3, activation="relu", name="c2")(h)
    return keras.Model(x, h)


def test_a_custom_layer_is_one_rule_class_and_one_registration(clip):
    """The README's "bring your own layer" example: refused naming the layer, then one Rule subclass
    registered for it, and the deconvnet through it equals the same model with Keras' Rescaling."""
    from tfsonify.engine import rules

    gain = [0.5, 2.0, 1.5]

    class PrivateGain(Gain):  # a class of this test's own, so the registration reaches no other test
        pass

    model = _gain_model(PrivateGain(gain, name="gain"))
    randomise_weights(model, seed=3)
    with pytest.raises(ValueError, match=r"'gain' \(PrivateGain\).*no deconvnet rule"):
        DeconvNet(model)

    @rules.register_rule(PrivateGain)
    class GainRule(rules.Rule):
        per_channel = True

        def forward(self, inputs, channels=None):
            gain = self.layer.gain if channels is None else tf.gather(self.layer.gain, channels)
            return inputs[0] * gain, None

        def backward(self, upstream, state, take, kernels=None, relu=None):
            gain = tf.constant(self.layer.gain)
            if kernels is not None:  # single-map rows of the top block
                return [upstream * tf.reshape(tf.gather(gain, kernels), [-1, 1, 1])]
            return [upstream * gain]

    reference = _gain_model(L.Rescaling(np.asarray(gain, np.float32), name="gain"))
    reference.set_weights(model.get_weights())
    ours, theirs = tfsonify.Sonifier(model), tfsonify.Sonifier(reference)
    assert [i.name for i in ours.layers()] == [i.name for i in theirs.layers()]
    for layer in ("c2", "gain"):
        np.testing.assert_allclose(ours.sonify(clip[:4000], layer, 1), theirs.sonify(clip[:4000], layer, 1), atol=1e-5)


def test_relu_rules_are_objects(models):
    """The ReLU rule is an object; its name finds the built-in one; a wrong name lists the valid ones."""
    from tfsonify.engine import relu_rules

    deconvnet = DeconvNet(models["convs"])
    x = tf.constant(np.random.default_rng(0).standard_normal((1, 400, 1)).astype("float32"))
    output, states = deconvnet.forward(x, "same_d3")
    upstream = tf.ones_like(output)
    for rule in (relu_rules.DECONVNET, relu_rules.GUIDED, relu_rules.GRADIENT):
        by_object = deconvnet.backward_full("same_d3", upstream, states, rule=rule)
        by_name = deconvnet.backward_full("same_d3", upstream, states, rule=rule.name)
        np.testing.assert_array_equal(by_object.numpy(), by_name.numpy())
    guided = deconvnet.backward_full("same_d3", upstream, states, rule=relu_rules.GUIDED).numpy()
    plain = deconvnet.backward_full("same_d3", upstream, states, rule=relu_rules.GRADIENT).numpy()
    assert not np.allclose(guided, plain)
    with pytest.raises(ValueError, match="'deconvnet', 'guided', 'gradient'; received 'smooth'"):
        relu_rules.relu_rule("smooth")
    with pytest.raises(ValueError, match="lowering must be"):
        DeconvNet(models["convs"], lowering="tflite")
