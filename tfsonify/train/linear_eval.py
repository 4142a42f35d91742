"""Linear evaluation (``fconly``) and fine-tuning (``full``) of a pretrained CNN12 encoder (App. A.2, A.3).

The encoder ``f_enc`` (``conv1`` … ``conv11`` and the 512-d ``embedding`` layer) loads from either kind of
checkpoint without hand-editing:

* a :class:`~tfsonify.models.contrastive.ContrastiveModel` ``.keras`` file (SimCLR pretraining): its
  ``encoder``; the projection head is dropped;
* a :class:`~tfsonify.CNN12` ``.keras`` file, with or without a classifier head (supervised
  pretraining): every layer but ``classifier``.

A *new* classifier head (``Dense(num_classes)``, softmax or sigmoid) goes on top of the embedding. In
``fconly`` mode every encoder layer is frozen (``trainable=False``; the optimiser never sees its weights,
so they stay bit-identical) and the encoder's dropout is set to 0 (the classifier sees the deterministic
features); in ``full`` mode everything trains. The result is an ordinary ``CNN12`` with a head, so the
supervised recipes, losses and metrics of :mod:`tfsonify.train.supervised` apply unchanged.
"""
from __future__ import annotations

import os
from pathlib import Path

import keras
import numpy as np

from tfsonify.checkpoint import cnn12_of
from tfsonify.models.cnn12 import CNN12
from tfsonify.models.heads import ENCODER_LAYERS, classifier_from_encoder, encoder_copy

__all__ = ["PROBE", "classifier_from_checkpoint", "encoder_weights", "fit_head_on_features", "fit_probe"]

#: Settings of the linear probe on cached, standardised features (:func:`fit_head_on_features`). The probe is
#: a convex problem and must be trained to convergence, or it measures the optimiser instead of the
#: representation: with the classifier-training settings (Adam 2.5e-4, batch 32, 60 epochs) the demo
#: keyword probe stopped at training loss ~1.0 and 68-69 % held-out accuracy for *both* a random and a
#: contrastive encoder; with these settings the training loss reaches 0.05-0.09 and the same embeddings
#: give 81 % (random) and 92 % (contrastive), as a full-batch L-BFGS logistic regression does (83 / 92 %).
PROBE = {"epochs": 300, "batch_size": 128, "learning_rate": 1e-2, "warmup_epochs": 5, "weight_decay": 1e-3}


def classifier_from_checkpoint(
    source: str | os.PathLike | keras.Model | None,
    num_classes: int,
    mode: str = "fconly",
    multi_label: bool = False,
    width_multiplier: float = 1.0,
    dropout: float | None = None,
) -> CNN12:
    """:func:`~tfsonify.models.heads.classifier_from_encoder` on the encoder of ``source`` (a ``.keras`` path or a model, opened by :func:`tfsonify.checkpoint.cnn12_of`), or on a random encoder.

    ``source=None`` gives the randomly initialised baseline of the same ``width_multiplier`` (the
    reference linear evaluation is compared against).
    """
    encoder = CNN12(width_multiplier=width_multiplier, name="encoder") if source is None else encoder_copy(cnn12_of(source))
    return classifier_from_encoder(encoder, num_classes, mode, multi_label, dropout)


def encoder_weights(model: keras.Model) -> dict[str, list]:
    """``{layer name: [numpy weights]}`` of the encoder layers present in ``model`` (for comparisons)."""
    names = {layer.name for layer in model.layers}
    return {name: [w.copy() for w in model.get_layer(name).get_weights()] for name in ENCODER_LAYERS if name in names}


def fit_head_on_features(
    head: keras.layers.Dense,
    features: np.ndarray,
    targets: np.ndarray,
    *,
    multi_label: bool,
    epochs: int = PROBE["epochs"],
    batch_size: int = PROBE["batch_size"],
    learning_rate: float = PROBE["learning_rate"],
    warmup_epochs: int = PROBE["warmup_epochs"],
    weight_decay: float = PROBE["weight_decay"],
    seed: int = 0,
) -> float:
    """Train the ``Dense`` layer ``head`` on fixed features (fconly linear evaluation on cached embeddings).

    CNN12's embeddings are not normalised and their scale depends on the encoder (a randomly initialised
    encoder's are ~1e-3), so the head is trained on *standardised* features ``(x − μ) / σ`` (training-set
    statistics) with the paper's optimiser and schedule, and the standardisation is then folded into the
    head: ``kernel = W / σ``, ``bias = b − (μ / σ) · W``. The head applied to the raw features gives exactly
    the trained classifier, so ``head`` can be the ``classifier`` layer of a fconly CNN12 and no extra
    layer is needed at inference.

    Args:
        head: a built ``Dense(num_classes)`` whose input size is ``features.shape[1]``; its weights are set.
        features: float32 ``[clips, dim]``.
        targets: float32 ``[clips, classes]`` one-hot or multi-hot.
        multi_label, epochs, batch_size, learning_rate, warmup_epochs, weight_decay: training settings
            (see :func:`tfsonify.train.supervised.compile_classifier`); the defaults (:data:`PROBE`) train the
            probe to convergence. ``learning_rate`` is used as given (the features are standardised, so it does
            not depend on the encoder or scale with the batch).
        seed: seed for the head's initialisation and the shuffling.

    Returns:
        The final training loss (mean over all ``features``, after training): near 0 for separable
        features, and the figure to check that the probe converged.
    """
    import tensorflow as tf

    from tfsonify.train.supervised import compile_classifier

    features = np.asarray(features, np.float32)
    targets = np.asarray(targets, np.float32)
    if features.ndim != 2 or targets.ndim != 2 or len(features) != len(targets) or len(features) == 0:
        raise ValueError(f"features must be [clips, dim] and targets [clips, classes] with the same number of clips; "
                         f"received {features.shape} and {targets.shape}")
    if not np.all(np.isfinite(features)):
        raise ValueError("features contain NaN or infinite values")
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer; received {value!r}")
    if not (np.isfinite(learning_rate) and learning_rate > 0):
        raise ValueError(f"learning_rate must be a positive number; received {learning_rate!r}")
    if not (np.isfinite(weight_decay) and weight_decay >= 0):
        raise ValueError(f"weight_decay must be a non-negative number; received {weight_decay!r}")
    mean = features.mean(axis=0)
    scale = features.std(axis=0)
    scale = np.where(scale > 1e-12, scale, 1.0).astype(np.float32)
    standardised = (features - mean) / scale
    keras.utils.set_random_seed(seed)
    standard_head = keras.Sequential([keras.Input((features.shape[1],)),
                                      keras.layers.Dense(head.units, activation=head.activation, name="classifier")])
    steps = max(1, int(np.ceil(len(features) / batch_size)))
    compile_classifier(standard_head, multi_label=multi_label, learning_rate=learning_rate, steps_per_epoch=steps,
                       epochs=epochs, warmup_epochs=warmup_epochs, weight_decay=weight_decay)
    # All epochs as one stream (reshuffled every epoch): the same optimisation as ``fit(epochs=epochs)``
    # without Keras' per-epoch overhead, which dominates for a single Dense layer.
    stream = (tf.data.Dataset.from_tensor_slices((standardised, targets))
              .shuffle(len(features), seed=seed, reshuffle_each_iteration=True)
              .batch(batch_size).repeat(epochs).prefetch(tf.data.AUTOTUNE))
    standard_head.fit(stream, epochs=1, shuffle=False, verbose=0)  # the stream shuffles itself
    final_loss = standard_head.evaluate(standardised, targets, batch_size=1024, verbose=0, return_dict=True)["loss"]
    kernel, bias = standard_head.get_layer("classifier").get_weights()
    folded_kernel = kernel / scale[:, None]
    folded_bias = bias - (mean / scale) @ kernel
    head.set_weights([folded_kernel.astype(np.float32), folded_bias.astype(np.float32)])
    return float(final_loss)


def fit_probe(model: keras.Model, feature_layer: str, train, *, seed: int = 0, **settings) -> float:
    """fconly on cached features: ``feature_layer``'s output for every whole clip of ``train``, computed once with
    the frozen encoder, then :func:`fit_head_on_features` on ``model``'s ``classifier`` layer.

    Exactly the fconly model trained without augmentation or dropout, but each clip is encoded once instead of
    once per epoch (seconds instead of minutes on a CPU).

    Args:
        model: a classifier whose ``classifier`` layer is a ``Dense`` on top of ``feature_layer`` (a fconly
            :func:`classifier_from_encoder` model with ``"embedding"``, or a
            :func:`~tfsonify.train.layer_importance.truncated_classifier` with ``"temporal_pool"``).
        feature_layer: name of the layer whose output ``[batch, dim]`` feeds the classifier.
        train: :class:`tfsonify.data.pipeline.DecodedClips` (whole clips at 8 kHz, with labels).
        seed: seed of the head's initialisation and the shuffling.
        **settings: ``epochs``, ``batch_size``, ``learning_rate``, ``warmup_epochs``, ``weight_decay`` of
            :func:`fit_head_on_features` (default :data:`PROBE`).

    Returns:
        The probe's final training loss.
    """
    from tfsonify.train.supervised import predict_clips

    encoder = keras.Model(model.input, model.get_layer(feature_layer).output)
    features = predict_clips(encoder, [train.waveform(i) for i in range(len(train))], batch_size=64)
    return fit_head_on_features(model.get_layer("classifier"), features, train.one_hot(), multi_label=train.multi_label,
                                seed=seed, **settings)
