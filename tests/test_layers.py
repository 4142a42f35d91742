import numpy as np
import pytest
import keras
import tensorflow as tf

import tfsonify
from tfsonify.layers import max_pool_with_switches, max_unpool, peak_normalize


@pytest.mark.parametrize("length", [10, 11])
def test_pool_matches_keras_and_unpool_restores_winners(length):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, length, 3)).astype("float32")
    pooled, switches = tfsonify.MaxPool1DWithSwitches()(x)
    np.testing.assert_array_equal(pooled, keras.layers.MaxPooling1D(2)(x))
    restored = max_unpool(pooled, switches, length).numpy()
    assert restored.shape == x.shape
    # each window keeps exactly its maximum at its position, zero elsewhere; the odd trailing sample is zero
    for t in range(length // 2):
        window = x[:, 2 * t : 2 * t + 2]
        expected = np.where(window == window.max(axis=1, keepdims=True), window, 0.0)
        np.testing.assert_array_equal(restored[:, 2 * t : 2 * t + 2], expected)
    if length % 2:
        np.testing.assert_array_equal(restored[:, -1], 0.0)


def test_ties_go_to_first_sample():
    x = tf.constant([[[1.0], [1.0], [0.0], [2.0], [3.0], [3.0]]])
    pooled, switches = max_pool_with_switches(x)
    np.testing.assert_array_equal(switches.numpy().ravel(), [1.0, 0.0, 1.0])
    np.testing.assert_array_equal(max_unpool(pooled, switches, 6).numpy().ravel(), [1.0, 0.0, 0.0, 2.0, 3.0, 0.0])
    # the same choice as TF's own max-pool gradient
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.nn.max_pool1d(x, 2, 2, "VALID")
    np.testing.assert_array_equal(tape.gradient(y, x).numpy().ravel(), [1.0, 0.0, 0.0, 1.0, 1.0, 0.0])


def test_pool_and_unpool_under_xla_equal_eager():
    x = tf.random.stateless_normal([3, 101, 5], seed=[1, 2])

    def roundtrip(x):
        pooled, switches = max_pool_with_switches(x)
        return pooled, switches, max_unpool(pooled * 2.0 - 1.0, switches, tf.shape(x)[1])

    eager = roundtrip(x)
    compiled = tf.function(roundtrip, jit_compile=True)(x)
    for a, b in zip(eager, compiled):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("length", [9, 10, 101])
def test_dynamic_length_pool_equals_the_reshape_pool(length):
    """A static batch and channels with an unknown length take the depthwise path (XNNPACK-friendly on LiteRT):
    the same pooled values, switches (ties to the first sample) and unpooling as the reshape path, odd lengths too."""
    rng = np.random.default_rng(length)
    x = np.round(rng.standard_normal((1, length, 3)), 1).astype("float32")  # rounded: many ties
    x[0, :4] = 0.0  # and exact ties of silence

    def roundtrip(x):
        pooled, switches = max_pool_with_switches(x)
        return pooled, switches, max_unpool(pooled * 2.0 - 1.0, switches, tf.shape(x)[1])

    reference = roundtrip(tf.constant(x))  # static shape: the reshape path
    dynamic = tf.function(roundtrip, input_signature=[tf.TensorSpec([1, None, 3], tf.float32)])
    assert "DepthwiseConv2dNative" in {op.type for op in dynamic.get_concrete_function().graph.get_operations()}
    for a, b in zip(reference, dynamic(tf.constant(x))):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert float(tf.reduce_sum(reference[1])) > 0 and float(tf.reduce_sum(1.0 - reference[1])) > 0


@pytest.mark.parametrize("batch", [None, 2])
def test_pool_layer_converts_to_builtin_tflite_ops(tmp_path, batch):
    """Dynamic length (dynamic batch: the reshape path; static batch: the depthwise path), builtin ops only
    (no Flex), runs on LiteRT (XNNPACK) with the same numbers as TF."""
    from ai_edge_litert.interpreter import Interpreter

    @tf.function(input_signature=[tf.TensorSpec([batch, None, 4], tf.float32)])
    def roundtrip(x):
        pooled, switches = max_pool_with_switches(x)
        return max_unpool(pooled, switches, tf.shape(x)[1])

    converter = tf.lite.TFLiteConverter.from_concrete_functions([roundtrip.get_concrete_function()], roundtrip)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    interpreter = Interpreter(model_content=converter.convert())
    x = np.random.default_rng(1).standard_normal((2, 9, 4)).astype("float32")
    interpreter.resize_tensor_input(interpreter.get_input_details()[0]["index"], x.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    out = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_array_equal(out, roundtrip(x).numpy())


def test_peak_normalize_guards_silence():
    x = tf.constant([[0.0, 0.0, 0.0], [0.5, -2.0, 1.0]])
    np.testing.assert_array_equal(peak_normalize(x).numpy(), [[0, 0, 0], [0.25, -1.0, 0.5]])
