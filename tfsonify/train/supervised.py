"""Supervised training of a CNN12 classifier (paper Appendix A.3): compile, the train step, resumable ``fit``.

The same pieces serve Keras ``fit`` (one device, ``MirroredStrategy``, ``TPUStrategy``) and the custom
distributed loop of :mod:`tfsonify.train.loop` (``MultiWorkerMirroredStrategy``): the loss object of
:func:`tfsonify.train.losses.classification_loss`, the optimiser and schedule of
:mod:`tfsonify.train.schedule`, and :func:`train_step`, the one gradient step the loop runs per replica.
"""
from __future__ import annotations

import os
import sys
from collections import defaultdict
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tfsonify.train import metrics as clip_metrics_module
from tfsonify.train.losses import classification_loss, per_example_loss
from tfsonify.train.schedule import adamw, warmup_cosine
from tfsonify.validation import check_int

__all__ = ["compile_classifier", "train_step", "make_train_step", "fit", "resume_epoch", "predict_clips",
           "evaluate_clips", "one_hot"]


def one_hot(label: tf.Tensor, num_classes: int) -> tf.Tensor:
    """int label (scalar or ``[batch]``) -> float32 one-hot; float targets (multi-hot, mixup) pass through."""
    if label.dtype.is_integer:
        return tf.one_hot(label, num_classes, dtype=tf.float32)
    return tf.cast(label, tf.float32)


def compile_classifier(model: keras.Model, *, multi_label: bool, learning_rate: float, steps_per_epoch: int,
                       epochs: int, warmup_epochs: int = 10, weight_decay: float = 1e-3,
                       jit_compile: bool | str = "auto") -> keras.Model:
    """Compile ``model`` (a CNN12 with a head) with the paper's loss, AdamW and warm-up + cosine schedule.

    Call inside ``strategy.scope()`` when distributing. Metrics: accuracy for multi-class; AUC
    (multi-label, interpolated per batch, for monitoring only — report :func:`evaluate_clips`).

    Args:
        model: outputs probabilities ``[batch, classes]`` (softmax or sigmoid head).
        multi_label: BCE (True) or categorical CE (False); targets are float32 ``[batch, classes]``.
        learning_rate: peak learning rate after warm-up (already scaled for the global batch).
        steps_per_epoch, epochs, warmup_epochs: the schedule (see :func:`warmup_cosine`).
        weight_decay: AdamW decoupled weight decay, not applied to biases.
        jit_compile: passed to ``Model.compile`` (XLA).
    """
    schedule = warmup_cosine(learning_rate, steps_per_epoch, epochs, warmup_epochs)
    metrics = [keras.metrics.AUC(multi_label=True, name="auc")] if multi_label else [
        keras.metrics.CategoricalAccuracy(name="accuracy")]
    model.compile(optimizer=adamw(schedule, weight_decay), loss=classification_loss(multi_label), metrics=metrics,
                  jit_compile=jit_compile)
    return model


def train_step(model: keras.Model, optimizer: keras.optimizers.Optimizer, waveforms: tf.Tensor, targets: tf.Tensor,
               *, multi_label: bool, global_batch_size: int) -> tf.Tensor:
    """One optimiser step on one replica's batch; returns this replica's share of the mean loss.

    The per-example loss is summed and divided by the *global* batch size
    (``tf.nn.compute_average_loss``), so summing the replicas' gradients — which the optimiser
    does in a replica context — gives the gradient of the mean loss over the global batch.

    Args:
        waveforms: float32 ``[per_replica_batch, time]`` at 8 kHz.
        targets: float32 ``[per_replica_batch, classes]`` (one-hot, multi-hot or mixup-soft).
        multi_label: BCE if True else categorical CE.
        global_batch_size: examples per step over all replicas.

    Returns:
        Scalar float32; ``strategy.reduce(SUM, ...)`` of it is the global mean loss.
    """
    with tf.GradientTape() as tape:
        predictions = model(waveforms, training=True)
        loss = tf.nn.compute_average_loss(per_example_loss(targets, predictions, multi_label),
                                          global_batch_size=global_batch_size)
        if model.losses:
            loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
    gradients = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(gradients, model.trainable_variables))
    return loss


def make_train_step(model: keras.Model, optimizer: keras.optimizers.Optimizer, *, multi_label: bool,
                    global_batch_size: int, jit_compile: bool = False):
    """``tf.function`` of :func:`train_step` for ``(waveforms, targets)`` (``jit_compile`` for XLA/TPU)."""

    def step(waveforms, targets):
        return train_step(model, optimizer, waveforms, targets, multi_label=multi_label,
                          global_batch_size=global_batch_size)

    return tf.function(step, jit_compile=jit_compile)


def resume_epoch(out_dir: str | os.PathLike) -> int:
    """Epochs already completed by a previous :func:`fit` into ``out_dir`` (0 if none), from its history.csv."""
    history = Path(out_dir) / "history.csv"
    if not history.exists():
        return 0
    lines = [line for line in history.read_text().splitlines()[1:] if line.strip()]
    return len(lines)


def fit(model: keras.Model, train: tf.data.Dataset, *, epochs: int, out_dir: str | os.PathLike,
        validation: tf.data.Dataset | None = None, steps_per_epoch: int | None = None, verbose: int | str = "auto",
        callbacks: list[keras.callbacks.Callback] | None = None) -> keras.callbacks.History:
    """``model.fit`` that survives preemption: rerunning the same call resumes after the last finished epoch.

    Writes into ``out_dir``: ``backup/`` (``keras.callbacks.BackupAndRestore``, saved every epoch:
    weights, optimiser state and epoch counter), ``checkpoints/epoch-NNN.keras`` (a full model every
    epoch), ``logs/`` (TensorBoard) and ``history.csv`` (appended across restarts).

    Args:
        model: a compiled model.
        train: batches ``(waveforms [batch, time], targets [batch, classes])``.
        epochs: total epochs of the run (not "more epochs"): a restart finishes the same count.
        validation: optional batches like ``train``.
        verbose: Keras verbosity; ``"auto"``: progress bar on a terminal, one line per epoch otherwise
            (:func:`progress_verbosity`).
    """
    check_int("epochs", epochs, minimum=1)
    out_dir = Path(out_dir)
    (out_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    all_callbacks = [
        keras.callbacks.BackupAndRestore(str(out_dir / "backup"), save_freq="epoch", delete_checkpoint=False),
        keras.callbacks.ModelCheckpoint(str(out_dir / "checkpoints" / "epoch-{epoch:03d}.keras")),
        keras.callbacks.CSVLogger(str(out_dir / "history.csv"), append=True),
        keras.callbacks.TensorBoard(str(out_dir / "logs"), update_freq="epoch"),
        keras.callbacks.TerminateOnNaN(),
        *(callbacks or []),
    ]
    return model.fit(train, epochs=epochs, validation_data=validation, steps_per_epoch=steps_per_epoch,
                     callbacks=all_callbacks, verbose=progress_verbosity(verbose))


def progress_verbosity(verbose: int | str = "auto", stream=None) -> int:
    """Keras ``verbose`` for ``fit``: ``"auto"`` means a progress bar (1) on a terminal, one line per epoch (2) otherwise.

    Keras 3 resolves ``"auto"`` to 1 everywhere, so logs redirected to a file filled with the bar's
    carriage returns and ANSI codes at every step.
    """
    if verbose != "auto":
        return verbose
    stream = sys.stdout if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return 1 if isatty is not None and isatty() else 2


def predict_clips(model: keras.Model, clips, batch_size: int = 32) -> np.ndarray:
    """Scores ``[clips, classes]`` for whole clips of any lengths (grouped by length, never cropped or padded).

    Args:
        clips: a sequence of float32 ``[time]`` waveforms at the model's rate (8 kHz).
    """
    clips = [np.asarray(clip, np.float32) for clip in clips]
    if not clips:
        raise ValueError("no clips to predict")
    by_length: dict[int, list[int]] = defaultdict(list)
    for index, clip in enumerate(clips):
        if clip.ndim != 1:
            raise ValueError(f"clip {index} must be a mono waveform [time]; received shape {clip.shape}")
        by_length[clip.size].append(index)
    scores: list[np.ndarray | None] = [None] * len(clips)
    for indices in by_length.values():
        for start in range(0, len(indices), batch_size):
            chunk = indices[start : start + batch_size]
            batch = np.stack([clips[i] for i in chunk])
            for i, row in zip(chunk, np.asarray(model(batch, training=False))):
                scores[i] = row
    return np.stack(scores)


def evaluate_clips(model: keras.Model, dataset, *, multi_label: bool, class_names: list[str] | None = None,
                   batch_size: int = 32) -> dict:
    """Whole-clip evaluation: accuracy (multi-class) or mAP / mAUC / d' (multi-label).

    Args:
        dataset: an *unbatched* ``tf.data.Dataset`` (or iterable) of ``(waveform [time], label)``,
            label an int class index or a multi-hot ``[classes]`` vector.

    Returns:
        multi-class: ``{"accuracy", "clips", "per_class_accuracy"}``;
        multi-label: :func:`tfsonify.train.metrics.clip_metrics` plus ``"clips"``.
    """
    clips, labels = [], []
    for waveform, label in dataset:
        clips.append(np.asarray(waveform))
        labels.append(np.asarray(label))
    scores = predict_clips(model, clips, batch_size)
    labels = np.stack(labels)
    if multi_label:
        result = clip_metrics_module.clip_metrics(labels, scores, class_names)
    else:
        if labels.ndim == 2:
            labels = labels.argmax(axis=1)
        predicted = scores.argmax(axis=1)
        names = class_names or [str(i) for i in range(scores.shape[1])]
        result = {"accuracy": clip_metrics_module.accuracy(labels, scores),
                  "per_class_accuracy": {names[c]: float(np.mean(predicted[labels == c] == c))
                                         for c in np.unique(labels)}}
    result["clips"] = len(clips)
    return result
