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

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

import keras
import numpy as np

from tfsonify.models.checkpoint import cnn12_of, save_model
from tfsonify.train.config import parse_config_args
from tfsonify.data.readers import DATASET_FORMATS, decode_dataset
from tfsonify.data.splits import select_train_meta, split_holdout
from tfsonify.models.cnn12 import CNN12
from tfsonify.models.heads import ENCODER_LAYERS, MODES, check_mode, classifier_from_encoder, encoder_copy
from tfsonify.validation import check_int

__all__ = ["PROBE", "LinearEvalConfig", "LINEAR_EVAL_CONFIG", "classifier_from_checkpoint", "encoder_weights", "fit_head_on_features", "fit_probe",
           "parse_linear_eval_args", "run_linear_eval"]

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
    """:func:`~tfsonify.models.heads.classifier_from_encoder` on the encoder of ``source`` (a ``.keras`` path or a model, opened by :func:`tfsonify.models.checkpoint.cnn12_of`), or on a random encoder.

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
        check_int(name, value, minimum=1)
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


# === The linear-evaluation / fine-tuning run of recipes/linear_eval.py and recipes/finetune.py ===

@dataclasses.dataclass
class LinearEvalConfig:
    """Hyper-parameters of linear evaluation (``fconly``) and fine-tuning (``full``); every field is a flag."""

    width: float = dataclasses.field(default=0.25, metadata={"help": "width of the random encoder (no --checkpoint)"})
    batch_size: int = dataclasses.field(default=32, metadata={"help": "per replica"})
    epochs: int = dataclasses.field(default=30, metadata={"help": "training through the encoder (full, or fconly --augment)"})
    warmup_epochs: int = 5
    learning_rate: float = dataclasses.field(default=1e-3, metadata={"help": "at global batch 128, scaled linearly"})
    weight_decay: float = 1e-3
    probe_epochs: int = dataclasses.field(default=PROBE["epochs"], metadata={
        "help": "fconly on cached embeddings: epochs of the linear probe (trained to convergence; see PROBE)"})
    probe_batch_size: int = PROBE["batch_size"]
    probe_learning_rate: float = dataclasses.field(default=PROBE["learning_rate"], metadata={
        "help": "on standardised features; not scaled with the batch"})
    crop_seconds: float | None = dataclasses.field(default=None, metadata={
        "help": "random training crops (5 AudioSet, 2.5 FSD50K); none for <= 1 s clips"})
    augment: bool = dataclasses.field(default=False, metadata={"help": "fconly: train end to end on augmented crops"})
    test_fraction: float = dataclasses.field(default=0.2, metadata={
        "help": "stratified random test split when --holdout is not given"})
    strategy: str = dataclasses.field(default="auto", metadata={"choices": ("auto", "tpu", "mirrored", "default")})
    seed: int = 0


#: The defaults of every flag of ``recipes/linear_eval.py`` and ``recipes/finetune.py``.
LINEAR_EVAL_CONFIG = LinearEvalConfig()


def parse_linear_eval_args(argv=None, mode: str = "fconly", description: str | None = None) -> argparse.Namespace:
    """The flags of ``recipes/linear_eval.py`` (``mode="fconly"``) and ``recipes/finetune.py`` (``"full"``): the run's
    inputs, then one flag per :class:`LinearEvalConfig` field (``args.config`` holds the configured instance)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="labelled dataset folder")
    parser.add_argument("--format", default="folder", choices=DATASET_FORMATS)
    parser.add_argument("--checkpoint", help="contrastive or supervised .keras file (omit for a random encoder)")
    parser.add_argument("--baseline-random", action="store_true",
                        help="also evaluate a randomly initialised encoder of the same width, same settings")
    parser.add_argument("--mode", default=check_mode(mode), choices=MODES)
    parser.add_argument("--out", default=f"runs/{mode}")
    parser.add_argument("--holdout", metavar="REGEX", help="test set = clips whose path matches REGEX")
    parser.add_argument("--holdout-meta", metavar="COLUMN=V1,V2", help="test set = clips with these metadata values")
    parser.add_argument("--train-meta", metavar="COLUMN=V1,V2",
                        help="train only on clips with these metadata values (e.g. split=train for the demo data)")
    args, args.config = parse_config_args(parser, LINEAR_EVAL_CONFIG, argv)
    return args


def train_head_on_embeddings(model, train, args) -> float:
    """fconly without augmentation: embeddings of the frozen encoder once, then the head alone (standardised
    features, folded back into the classifier layer; see ``fit_probe``). Returns the final training loss."""
    from tfsonify.progress import progress

    with progress(f"linear probe on the frozen encoder's embeddings of {len(train)} training clips "
                  f"({args.probe_epochs} epochs)"):
        return fit_probe(model, "embedding", train, epochs=args.probe_epochs, batch_size=args.probe_batch_size,
                         learning_rate=args.probe_learning_rate, warmup_epochs=args.warmup_epochs,
                         weight_decay=args.weight_decay, seed=args.seed)


def evaluate_source(name: str, source, train, test, args, out: Path, chosen, learning_rate: float) -> dict:
    """Train a new head (fconly) or everything (full) on ``source``'s encoder; whole-clip test figures."""
    import keras

    from tfsonify.data.augment import Augmenter
    from tfsonify.data.pipeline import training_dataset
    from tfsonify.train.supervised import compile_classifier, evaluate_clips, fit

    keras.utils.set_random_seed(args.seed)
    started = time.perf_counter()
    run_dir = out / name
    with chosen.scope():
        model = classifier_from_checkpoint(source, train.num_classes, args.mode, train.multi_label,
                                           width_multiplier=args.width)
    train_loss = None
    if args.mode == "fconly" and not args.augment:
        train_loss = train_head_on_embeddings(model, train, args)
    else:
        global_batch = args.batch_size * chosen.num_replicas_in_sync
        dataset = training_dataset(train, global_batch, crop_seconds=args.crop_seconds, augment=Augmenter(),
                                   seed=args.seed, one_hot=True)
        steps = max(1, len(train) // global_batch)
        with chosen.scope():
            compile_classifier(model, multi_label=train.multi_label, learning_rate=learning_rate, steps_per_epoch=steps,
                               epochs=args.epochs, warmup_epochs=args.warmup_epochs, weight_decay=args.weight_decay)
        fit(model, dataset, epochs=args.epochs, out_dir=run_dir, verbose=2)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_model(model, run_dir / "final.keras")
    result = evaluate_clips(model, test.dataset(), multi_label=test.multi_label, class_names=test.class_names)
    result.pop("per_class_accuracy", None)
    if train_loss is not None:
        result["probe_train_loss"] = train_loss
    result.update(name=name, mode=args.mode, seconds=round(time.perf_counter() - started, 1),
                  source=str(source) if source is not None else f"random init, width {args.width}")
    return result


def run_linear_eval(args: argparse.Namespace) -> int:
    """Linear evaluation or fine-tuning as ``recipes/linear_eval.py`` / ``finetune.py`` run it (see their docs)."""
    import tfsonify.train as train_lib
    from tfsonify.io.render import check_writable_dir

    out = check_writable_dir(args.out)
    decoded = decode_dataset(args.data, args.format, out / "cache")
    train, test = split_holdout(decoded, args.holdout, args.test_fraction, args.seed, args.holdout_meta)
    train = select_train_meta(train, args.train_meta)
    split = (f"clips with {args.holdout_meta}" if args.holdout_meta else f"clips matching {args.holdout!r}" if args.holdout
             else f"a stratified random {args.test_fraction:.0%}")
    print(f"{len(train)} training clips, {len(test)} test clips ({split}); {decoded.num_classes} classes")
    chosen = train_lib.strategy(args.strategy)
    learning_rate = train_lib.scale_learning_rate(args.learning_rate, args.batch_size * chosen.num_replicas_in_sync)

    sources = []
    if args.checkpoint:
        args.width = cnn12_of(args.checkpoint, what="checkpoint").width_multiplier  # the baseline matches the checkpoint's width
        sources.append(("pretrained", args.checkpoint))
    if not args.checkpoint or args.baseline_random:
        sources.append(("random_init", None))
    results = [evaluate_source(name, source, train, test, args, out, chosen, learning_rate) for name, source in sources]

    metric = "mAP" if decoded.multi_label else "accuracy"
    print(f"\n{args.mode} on {len(test)} held-out clips ({split}), CNN12 width {args.width}:")
    for result in results:
        value = result.get(metric, result.get("map"))
        loss = f"; probe training loss {result['probe_train_loss']:.3f}" if "probe_train_loss" in result else ""
        print(f"  {result['name']:<12} {metric} = {value:.4f}   ({result['source']}; {result['seconds']:.0f} s{loss})")
    (out / "results.json").write_text(json.dumps(results, indent=2, default=float))
    print(f"results: {out / 'results.json'}")
    return 0
