"""Choosing a ``tf.distribute`` strategy: TPU, multi-worker, several GPUs, or one device.

Keras 3 ``fit`` works under ``MirroredStrategy`` and ``TPUStrategy``; under
``MultiWorkerMirroredStrategy`` it does not (keras-team/keras#20585), so use
:func:`tfsonify.train.loop.train_loop` there.
"""
from __future__ import annotations

import json
import os

import tensorflow as tf
from tfsonify.validation import check_int

__all__ = ["strategy", "describe", "global_batch_size", "KINDS"]

KINDS = ("auto", "tpu", "multi_worker", "mirrored", "default")


def _tpu_strategy(tpu: str | None):
    """A TPUStrategy, or None when no TPU answers (the resolver raises ValueError at once)."""
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
    except ValueError:
        return None
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def _cluster_from_tf_config() -> dict | None:
    raw = os.environ.get("TF_CONFIG", "").strip()
    if not raw:
        return None
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ValueError(f"TF_CONFIG is not valid JSON ({error}); received {raw[:200]!r}") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    if not cluster:
        return None
    if not isinstance(cluster, dict) or "task" not in config:
        raise ValueError(f"TF_CONFIG must be {{'cluster': {{'worker': [...]}}, 'task': {{'type', 'index'}}}}; received {raw[:200]!r}")
    return config


def strategy(kind: str = "auto", *, tpu: str | None = None, devices: list[str] | None = None) -> tf.distribute.Strategy:
    """Return the distribution strategy for this machine.

    ``"auto"`` tries, in order: a TPU (``TPUClusterResolver``; its ``ValueError`` when none answers
    is caught), ``MultiWorkerMirroredStrategy`` when ``TF_CONFIG`` names a cluster,
    ``MirroredStrategy`` when more than one GPU is visible, else the default (one-device) strategy.

    Args:
        kind: one of ``"auto"``, ``"tpu"``, ``"multi_worker"``, ``"mirrored"``, ``"default"``.
            Asking for ``"tpu"`` or ``"multi_worker"`` explicitly raises ``ValueError`` when
            unavailable instead of falling back.
        tpu: TPU name or ``grpc://`` address for the resolver (None: the local TPU VM).
        devices: devices for ``"mirrored"`` (default: all GPUs, else all logical CPU devices).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}; received {kind!r}")
    if kind in ("auto", "tpu"):
        found = _tpu_strategy(tpu)
        if found is not None:
            return found
        if kind == "tpu":
            raise ValueError("no TPU answered (TPUClusterResolver raised ValueError); use kind='auto' to fall back")
    if kind in ("auto", "multi_worker"):
        if _cluster_from_tf_config() is not None:
            return tf.distribute.MultiWorkerMirroredStrategy()
        if kind == "multi_worker":
            raise ValueError("kind='multi_worker' needs TF_CONFIG naming a cluster, e.g. "
                             '{"cluster": {"worker": ["host1:2222", "host2:2222"]}, "task": {"type": "worker", "index": 0}}')
    if kind == "mirrored" or (kind == "auto" and len(tf.config.list_logical_devices("GPU")) > 1):
        if devices is None:
            gpus = tf.config.list_logical_devices("GPU")
            devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices=devices)
    return tf.distribute.get_strategy()


def describe(chosen: tf.distribute.Strategy) -> str:
    """One line naming the strategy and its replica count, e.g. ``MirroredStrategy (2 replicas)``."""
    return f"{type(chosen).__name__} ({chosen.num_replicas_in_sync} replica{'s' if chosen.num_replicas_in_sync != 1 else ''})"


def global_batch_size(per_replica_batch_size: int, chosen: tf.distribute.Strategy) -> int:
    """``per_replica_batch_size * num_replicas_in_sync`` (what ``tf.data`` batches by)."""
    check_int("per_replica_batch_size", per_replica_batch_size, minimum=1)
    return per_replica_batch_size * chosen.num_replicas_in_sync
