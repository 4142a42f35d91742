#!/usr/bin/env python3
"""Why a dynamic-length TFLite model was slower than a fixed one: the deconvnet's building blocks, each
converted with a fixed ``[1, T]`` and a dynamic ``[1, None]`` input and timed on LiteRT (XNNPACK, all cores).

Each block is 4 repeats of one operation on a ``[1, T, C]`` float32 tensor (C = 64, T = 8001: odd, as the
lengths between CNN12's pools often are; the ``even only`` rows use T = 8000). The first rows are the ways
to take the two samples of each max-pool window; then the unpool's interleave; then the overlap-add of a
transposed convolution's taps. ``tfsonify.layers`` / ``tfsonify.engine.walk`` use the starred variants.

    python3 benchmarks/tflite_ops_bench.py
"""
from __future__ import annotations

import os

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
from _timing import timed  # noqa: E402

C = 64


def _tile(x):
    return tf.tile(tf.reshape(x, [1, -1, 1]), [1, 1, C])


def _pool_chain(pick):
    def chain(x):
        h = _tile(x)
        for _ in range(4):
            a, b = pick(h)
            h = tf.maximum(a, b) * tf.cast(a >= b, tf.float32)
        return h[:, :, 0]
    return chain


def stride2_slices(h):
    return h[:, 0:-1:2], h[:, 1::2]


def computed_crop(h):
    half = tf.shape(h)[1] // 2
    return tf.unstack(tf.reshape(h[:, : 2 * half], [1, -1, 2, C]), num=2, axis=2)


def depthwise(h):
    from tfsonify.layers import _window_samples

    return _window_samples(h)


def reshape_unpack(h):
    return tf.unstack(tf.reshape(h, [1, -1, 2, C]), num=2, axis=2)


def reshape_split(h):
    return tf.split(tf.reshape(h, [1, -1, 2 * C]), 2, axis=-1)


def _unpool_chain(interleave):
    def chain(x):
        h = _tile(x)
        for _ in range(4):
            h = interleave(h)
        return h[:, :, 0]
    return chain


def _overlap_add_chain(total):
    def chain(x):
        h = _tile(x)
        parts = [tf.pad(h * float(j + 1), [[0, 0], [j, 6 - j], [0, 0]]) for j in range(7)]
        return total(parts)[:, :, 0]
    return chain


def _pairwise(parts):
    from tfsonify.engine.ops import pairwise_sum

    return pairwise_sum(parts)


CASES = [
    ("pool: stride-2 slices", _pool_chain(stride2_slices), 8001),
    ("pool: computed crop + reshape", _pool_chain(computed_crop), 8001),
    ("pool: depthwise* (dynamic)", _pool_chain(depthwise), 8001),
    ("pool: reshape + UNPACK (even only)", _pool_chain(reshape_unpack), 8000),
    ("pool: reshape + SPLIT* (even only)", _pool_chain(reshape_split), 8000),
    ("unpool: PACK + reshape", _unpool_chain(lambda h: tf.reshape(tf.stack([h, h], axis=2), [1, -1, C])), 500),
    ("unpool: CONCAT + reshape*", _unpool_chain(lambda h: tf.reshape(tf.concat([h, h], axis=-1), [1, -1, C])), 500),
    ("overlap-add: ADD_N", _overlap_add_chain(tf.add_n), 8000),
    ("overlap-add: pairwise ADD*", _overlap_add_chain(_pairwise), 8000),
]


def run(chain, length: int, dynamic: bool) -> float:
    from ai_edge_litert.interpreter import Interpreter

    function = tf.function(chain).get_concrete_function(tf.TensorSpec([1, None if dynamic else length], tf.float32))
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    interpreter = Interpreter(model_content=converter.convert(), num_threads=os.cpu_count())
    index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(index, [1, length])
    interpreter.allocate_tensors()
    x = np.random.default_rng(0).standard_normal((1, length)).astype(np.float32)

    def call():
        interpreter.set_tensor(index, x)
        interpreter.invoke()

    return 1000 * timed(call, 50)


def main() -> None:
    print(f"LiteRT, {os.cpu_count()} threads, C = {C}, medians of 50 calls")
    print(f"{'block':<38} {'fixed':>8} {'dynamic':>8} {'dyn/fixed':>10}")
    for name, chain, length in CASES:
        fixed, dynamic = run(chain, length, False), run(chain, length, True)
        print(f"{name:<38} {fixed:>6.2f}ms {dynamic:>6.2f}ms {dynamic / fixed:>9.2f}x")


if __name__ == "__main__":
    main()
