"""Global negatives: 2 replicas (MirroredStrategy over 2 logical CPUs) = 1 device, same loss and gradients.

Logical devices must be configured before TensorFlow initialises, so the check runs in a subprocess.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import json
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    import numpy as np
    from tfsonify.models.contrastive import ContrastiveModel

    def make(strategy):
        with strategy.scope():
            keras.utils.set_random_seed(3)
            return ContrastiveModel(width_multiplier=0.0625, dropout=0.0, projection_hidden=32, projection_dim=16)

    rng = np.random.default_rng(0)
    n = 6
    a = rng.normal(size=(n, 3000)).astype("float32")
    b = (a + 0.3 * rng.normal(size=(n, 3000))).astype("float32")
    out = {}

    # 1 device: loss and gradients on the global batch
    one = make(tf.distribute.get_strategy())
    loss1, _, _, grads1 = one.compute_gradients(tf.constant(a), tf.constant(b))

    # 2 replicas, 3 clips each: per-replica gradients summed (what the optimiser applies)
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    two = make(mirrored)
    two.set_weights(one.get_weights())
    views = mirrored.experimental_distribute_values_from_function(
        lambda ctx: (tf.constant(a[3 * ctx.replica_id_in_sync_group:][:3]),
                     tf.constant(b[3 * ctx.replica_id_in_sync_group:][:3])))

    @tf.function
    def step(views):
        def replica_fn(view_a, view_b):
            loss, _, _, grads = two.compute_gradients(view_a, view_b)
            return loss, grads
        loss, grads = mirrored.run(replica_fn, args=views)
        return mirrored.reduce("MEAN", loss, None), [mirrored.reduce("SUM", g, None) for g in grads]

    loss2, grads2 = step(views)
    out["loss_one"], out["loss_two"] = float(loss1), float(loss2)
    out["grad_max_abs"] = max(float(tf.reduce_max(tf.abs(g))) for g in grads1)
    out["grad_max_diff"] = max(float(tf.reduce_max(tf.abs(g1 - g2))) for g1, g2 in zip(grads1, grads2))

    # the same through Keras fit (custom train_step, optimiser sums the replicas' gradients)
    dataset = tf.data.Dataset.from_tensor_slices((a, b)).batch(n, drop_remainder=True)
    weights = {}
    for name, strategy in (("one", tf.distribute.get_strategy()), ("two", mirrored)):
        model = make(strategy)
        model.set_weights(one.get_weights())
        with strategy.scope():
            model.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=False)
        history = model.fit(dataset, epochs=2, verbose=0)
        out["fit_loss_" + name] = history.history["loss"]
        weights[name] = model.get_weights()
    out["fit_weight_max_diff"] = max(float(np.abs(x - y).max()) for x, y in zip(weights["one"], weights["two"]))
    out["fit_weight_max_change"] = max(float(np.abs(x - y).max()) for x, y in zip(weights["one"], one.get_weights()))
    print("RESULT " + json.dumps(out))
    """
)


def test_two_replicas_equal_one_device_loss_and_gradients():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    completed = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=600)
    lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
    assert completed.returncode == 0 and lines, completed.stderr[-3000:]
    out = json.loads(lines[-1][len("RESULT "):])
    assert abs(out["loss_one"] - out["loss_two"]) <= 1e-5 * abs(out["loss_one"])
    assert out["grad_max_abs"] > 1e-3  # the gradients are not trivially zero
    assert out["grad_max_diff"] <= 1e-5 * out["grad_max_abs"] + 1e-6
    for loss_one, loss_two in zip(out["fit_loss_one"], out["fit_loss_two"]):
        assert abs(loss_one - loss_two) <= 1e-5 * abs(loss_one)
    assert out["fit_loss_one"][1] != out["fit_loss_one"][0]  # training moved
    assert out["fit_weight_max_change"] > 1e-4
    assert out["fit_weight_max_diff"] <= 1e-5
