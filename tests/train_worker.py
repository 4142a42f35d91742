"""Subprocess entry point for the distributed / resumable training tests (run by tests/test_train_*.py).

Separate processes are needed because logical CPU devices must be configured before TensorFlow
initialises, MultiWorkerMirroredStrategy needs one process per worker, and the resume test kills one.

    python tests/train_worker.py fit --replicas 2 --out losses.json
    python tests/train_worker.py worker --out weights.npz              (TF_CONFIG set by the test)
    python tests/train_worker.py resume --out DIR --epochs 5 --epoch-seconds 1.5
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

NUM_CLASSES, LENGTH, EXAMPLES, GLOBAL_BATCH = 3, 2400, 32, 8


def data():
    import numpy as np

    rng = np.random.default_rng(0)
    waveforms = rng.standard_normal((EXAMPLES, LENGTH)).astype("float32")
    targets = np.eye(NUM_CLASSES, dtype="float32")[rng.integers(0, NUM_CLASSES, EXAMPLES)]
    return waveforms, targets


def build():
    import keras

    from tfsonify.models.cnn12 import CNN12

    keras.utils.set_random_seed(0)
    return CNN12(width_multiplier=0.0625, num_classes=NUM_CLASSES, dropout=0.0)


def run_fit(args):
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    if args.replicas > 1:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * args.replicas)
    from tfsonify.train.strategy import describe, strategy
    from tfsonify.train.supervised import compile_classifier

    chosen = strategy("mirrored" if args.replicas > 1 else "default")
    waveforms, targets = data()
    dataset = tf.data.Dataset.from_tensor_slices((waveforms, targets)).batch(GLOBAL_BATCH)
    with chosen.scope():
        model = build()
        compile_classifier(model, multi_label=False, learning_rate=3e-3, steps_per_epoch=EXAMPLES // GLOBAL_BATCH,
                           epochs=3, warmup_epochs=1, jit_compile=False)
    history = model.fit(dataset, epochs=3, verbose=0)
    with open(args.out, "w") as handle:
        json.dump({"strategy": describe(chosen), "loss": history.history["loss"]}, handle)


def run_worker(args):
    import numpy as np
    import tensorflow as tf

    from tfsonify.train.loop import train_loop
    from tfsonify.train.strategy import describe, strategy

    chosen = strategy("auto")
    waveforms, targets = data()

    def dataset_fn(context):
        per_replica = context.get_per_replica_batch_size(GLOBAL_BATCH)
        return (tf.data.Dataset.from_tensor_slices((waveforms, targets))
                .shard(context.num_input_pipelines, context.input_pipeline_id).batch(per_replica).repeat())

    per_replica = GLOBAL_BATCH // chosen.num_replicas_in_sync
    model = train_loop(build, dataset_fn, strategy=chosen, epochs=2, steps_per_epoch=2,
                       per_replica_batch_size=per_replica, multi_label=False, learning_rate=3e-3, warmup_epochs=1,
                       checkpoint_dir=args.checkpoints, log=lambda line: print(line, flush=True))
    np.savez(args.out, strategy=describe(chosen), *[np.asarray(w) for w in model.get_weights()])


def run_resume(args):
    import keras
    import tensorflow as tf

    from tfsonify.train.supervised import compile_classifier, fit

    class SlowEpochs(keras.callbacks.Callback):
        """Log each epoch start/end to a file and make epochs long enough to be killed in."""

        def on_epoch_begin(self, epoch, logs=None):
            with open(os.path.join(args.out, "events.txt"), "a") as handle:
                handle.write(f"begin {epoch + 1}\n")

        def on_epoch_end(self, epoch, logs=None):
            time.sleep(args.epoch_seconds)
            with open(os.path.join(args.out, "events.txt"), "a") as handle:
                handle.write(f"end {epoch + 1}\n")

    waveforms, targets = data()
    dataset = tf.data.Dataset.from_tensor_slices((waveforms, targets)).batch(GLOBAL_BATCH)
    model = build()
    compile_classifier(model, multi_label=False, learning_rate=3e-3, steps_per_epoch=EXAMPLES // GLOBAL_BATCH,
                       epochs=args.epochs, warmup_epochs=1, jit_compile=False)
    fit(model, dataset, epochs=args.epochs, out_dir=args.out, verbose=0, callbacks=[SlowEpochs()])
    with open(os.path.join(args.out, "events.txt"), "a") as handle:
        handle.write(f"finished {int(model.optimizer.iterations.numpy())}\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=["fit", "worker", "resume"])
    parser.add_argument("--out", required=True)
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--checkpoints", default=None)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--epoch-seconds", type=float, default=1.5)
    args = parser.parse_args(argv)
    {"fit": run_fit, "worker": run_worker, "resume": run_resume}[args.mode](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
