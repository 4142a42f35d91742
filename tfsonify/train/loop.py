"""A custom distributed training loop for when Keras ``fit`` cannot be used.

Keras 3 ``fit`` fails under ``MultiWorkerMirroredStrategy`` (keras-team/keras#20585), so multi-worker
training runs this loop: ``strategy.run`` of :func:`tfsonify.train.supervised.train_step` (the per-replica
loss averaged over the *global* batch with ``tf.nn.compute_average_loss``), ``strategy.reduce`` of the
loss, and a ``tf.train.CheckpointManager`` checkpoint (model, optimiser, epoch) after every epoch, so a
restarted job resumes after the last completed epoch. Works under any strategy (default, Mirrored, TPU).
Tested: on one device the loop and Keras ``fit`` of a :func:`~tfsonify.train.supervised.compile_classifier`
model end with the same weights (rtol 1e-4) after the same steps, so the recipe does not change with the strategy.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Callable

import keras
import tensorflow as tf

from tfsonify.train.schedule import adamw, warmup_cosine
from tfsonify.train.supervised import train_step
from tfsonify.validation import check_int

__all__ = ["train_loop", "is_chief", "tf_config_for"]


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True on the worker that owns shared outputs (worker 0, or the only process)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return True
    return resolver.task_type == "chief" or (resolver.task_type == "worker" and resolver.task_id == 0
                                            and "chief" not in resolver.cluster_spec().as_dict())


def _checkpoint_dir(checkpoint_dir: Path, strategy: tf.distribute.Strategy) -> Path:
    # Every worker must take part in saving (variables are read collectively); only the chief's copy is kept.
    if is_chief(strategy):
        return checkpoint_dir
    resolver = strategy.cluster_resolver
    return Path(tempfile.gettempdir()) / f"tfsonify-worker-{resolver.task_type}-{resolver.task_id}-{os.getpid()}"


def train_loop(build_model: Callable[[], keras.Model],
               dataset_fn: Callable[[tf.distribute.InputContext], tf.data.Dataset], *,
               strategy: tf.distribute.Strategy, epochs: int, steps_per_epoch: int, per_replica_batch_size: int,
               multi_label: bool, learning_rate: float, warmup_epochs: int = 10, weight_decay: float = 1e-3,
               checkpoint_dir: str | os.PathLike, jit_compile: bool = False,
               log: Callable[[str], None] | None = print) -> keras.Model:
    """Train with ``strategy.run`` for ``epochs`` x ``steps_per_epoch`` global steps, resuming if checkpointed.

    Args:
        build_model: returns a fresh model (called inside ``strategy.scope()``) producing
            probabilities ``[batch, classes]`` from float32 waveforms ``[batch, time]`` at 8 kHz.
        dataset_fn: ``input_context -> tf.data.Dataset`` of *per-replica* batches
            ``(waveforms [per_replica_batch, time], targets [per_replica_batch, classes] float32)``,
            repeated; shard it with ``input_context.num_input_pipelines`` / ``input_pipeline_id``.
        strategy: from :func:`tfsonify.train.strategy`.
        epochs, steps_per_epoch: total run length in global steps (a restart completes the same total).
        per_replica_batch_size: batch per replica; the global batch is this x replicas.
        multi_label, learning_rate, warmup_epochs, weight_decay: as :func:`compile_classifier`.
        checkpoint_dir: where the chief keeps ``ckpt-N`` files (the last 2).
        jit_compile: XLA-compile the per-replica step (as on TPU).
        log: receives one line per epoch (None: silent).

    Returns:
        The trained model (its variables are mirrored across replicas and workers).
    """
    for name, value in (("epochs", epochs), ("steps_per_epoch", steps_per_epoch),
                        ("per_replica_batch_size", per_replica_batch_size)):
        check_int(name, value, minimum=1)
    global_batch = per_replica_batch_size * strategy.num_replicas_in_sync
    with strategy.scope():
        model = build_model()
        optimizer = adamw(warmup_cosine(learning_rate, steps_per_epoch, epochs, warmup_epochs), weight_decay)
        optimizer.build(model.trainable_variables)
        epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, epoch=epoch)
    directory = _checkpoint_dir(Path(checkpoint_dir), strategy)
    manager = tf.train.CheckpointManager(checkpoint, str(directory), max_to_keep=2)
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        if log:
            log(f"resumed from {manager.latest_checkpoint} after epoch {int(epoch.numpy())}")

    def replica_step(waveforms, targets):
        return train_step(model, optimizer, waveforms, targets, multi_label=multi_label, global_batch_size=global_batch)

    replica_fn = tf.function(replica_step, jit_compile=True) if jit_compile else replica_step

    @tf.function
    def distributed_step(iterator):
        waveforms, targets = next(iterator)
        per_replica_loss = strategy.run(replica_fn, args=(waveforms, targets))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica_loss, axis=None)

    dataset = strategy.distribute_datasets_from_function(dataset_fn)
    iterator = iter(dataset)
    while int(epoch.numpy()) < epochs:
        start, total = time.perf_counter(), 0.0
        for _ in range(steps_per_epoch):
            loss = distributed_step(iterator)
            if not bool(tf.math.is_finite(loss)):
                raise FloatingPointError(f"loss became {float(loss)} in epoch {int(epoch.numpy()) + 1}; not saving")
            total += float(loss)
        epoch.assign_add(1)
        manager.save(checkpoint_number=int(epoch.numpy()))
        if log:
            log(f"epoch {int(epoch.numpy())}/{epochs}: loss {total / steps_per_epoch:.4f} "
                f"({time.perf_counter() - start:.1f} s, {steps_per_epoch * global_batch} examples)")
    if not is_chief(strategy):
        tf.io.gfile.rmtree(str(directory)) if tf.io.gfile.exists(str(directory)) else None
    return model


def tf_config_for(workers: list[str], index: int) -> str:
    """``TF_CONFIG`` JSON for worker ``index`` of a ``worker`` cluster (e.g. ``["127.0.0.1:12345", ...]``)."""
    return json.dumps({"cluster": {"worker": list(workers)}, "task": {"type": "worker", "index": int(index)}})
