"""One supervised experiment, shared by the recipes: config -> strategy -> data -> resumable training -> evaluation.

Recipes (``recipes/*.py``) hold a :class:`Config` at the top and call :func:`run_experiment` with decoded
clips from :mod:`tfsonify.data`. Under ``MultiWorkerMirroredStrategy`` (where Keras ``fit`` fails,
keras-team/keras#20585) training goes through :func:`tfsonify.train.loop.train_loop`; otherwise
through :func:`tfsonify.train.supervised.fit` (Keras ``fit`` with BackupAndRestore, per-epoch
checkpoints, TensorBoard logs and a progress bar).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from tfsonify.train.config import add_config_arguments, config_from_args, parse_config_args

__all__ = ["Config", "add_config_arguments", "config_from_args", "parse_config_args", "run_experiment", "print_results"]


@dataclasses.dataclass
class Config:
    """Hyper-parameters of a supervised run (paper Appendix A.3 defaults).

    Attributes:
        multi_label: BCE + mAP/mAUC/d' (AudioSet, FSD50K) or categorical CE + accuracy.
        width: CNN12 width multiplier (1.0 = the paper's CNN12).
        dropout: dropout before the 512-d embedding (0.4 in the paper).
        per_replica_batch_size: batch per replica; global batch = this x replicas.
        epochs, warmup_epochs: total epochs and linear warm-up epochs (10 in the paper).
        base_learning_rate, base_batch_size: the peak learning rate is
            ``base_learning_rate * global_batch / base_batch_size`` (linear scaling).
        weight_decay: AdamW decoupled decay, not on biases.
        crop_seconds: random training crop (5 s AudioSet, 2.5 s FSD50K, None for <= 1 s clips).
        mixup_alpha: mixup Beta parameter (None: off).
        gain_db, noise_snr_db, mask_fraction: the augmentation chain (None turns a stage off).
        steps_per_epoch: None = one pass over the training clips.
        strategy: ``auto``, ``tpu``, ``multi_worker``, ``mirrored`` or ``default``.
        jit_compile: XLA for the train step (``auto`` lets Keras decide).
        seed: data order, augmentation and initialisation seed.
    """

    multi_label: bool = dataclasses.field(default=False, metadata={"flag": False})  # fixed by the dataset
    width: float = 1.0
    dropout: float = 0.4
    per_replica_batch_size: int = 128
    epochs: int = 100
    warmup_epochs: int = 10
    base_learning_rate: float = 1e-3
    base_batch_size: int = 128
    weight_decay: float = 1e-3
    crop_seconds: float | None = None
    mixup_alpha: float | None = 0.2
    gain_db: tuple[float, float] | None = (-6.0, 6.0)
    noise_snr_db: tuple[float, float] | None = (20.0, 40.0)
    mask_fraction: float | None = 0.1
    steps_per_epoch: int | None = None
    strategy: str = dataclasses.field(default="auto", metadata={"choices": ("auto", "tpu", "multi_worker", "mirrored", "default")})
    jit_compile: str = dataclasses.field(default="auto", metadata={"choices": ("auto", "true", "false")})
    seed: int = 0


def _check(config: Config) -> None:
    for name in ("per_replica_batch_size", "epochs", "base_batch_size"):
        if getattr(config, name) < 1:
            raise ValueError(f"{name} must be >= 1; received {getattr(config, name)}")
    if not 0 <= config.warmup_epochs < config.epochs:
        raise ValueError(f"warmup_epochs must be in [0, epochs={config.epochs}); received {config.warmup_epochs}")
    if config.crop_seconds is not None and config.crop_seconds <= 0:
        raise ValueError(f"crop_seconds must be > 0 or none; received {config.crop_seconds}")


def run_experiment(name: str, config: Config, train, evaluation: dict, out_dir: str | Path, *,
                   backgrounds=None, verbose: int | str = "auto") -> dict:
    """Train CNN12 on ``train`` and evaluate it on whole clips of every set in ``evaluation``.

    Args:
        name: experiment name (printed, stored in results.json).
        config: hyper-parameters.
        train: :class:`tfsonify.data.pipeline.DecodedClips` of training clips (8 kHz).
        evaluation: ``{set name: DecodedClips}`` evaluated on whole clips after training.
        out_dir: ``model.keras``, ``results.json``, ``training/`` (checkpoints, BackupAndRestore, TensorBoard).
        backgrounds: optional float32 waveforms mixed into training clips (e.g. ``_background_noise_``).

    Returns:
        ``{"name", "config", "strategy", "global_batch_size", "learning_rate", "training_seconds",
        "results": {set: metrics}}`` (also written to ``out_dir/results.json``).
    """
    import keras

    from tfsonify.models.checkpoint import save_model
    from tfsonify.models.cnn12 import CNN12
    from tfsonify.data.augment import Augmenter
    from tfsonify.data.pipeline import training_dataset
    from tfsonify.train import loop
    from tfsonify.train.schedule import scale_learning_rate
    from tfsonify.train.strategy import describe, strategy
    from tfsonify.train.supervised import compile_classifier, evaluate_clips, fit

    _check(config)
    if len(train) == 0:
        raise ValueError(f"{name}: no training clips (every clip was skipped or the split is empty)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    chosen = strategy(config.strategy)
    replicas = chosen.num_replicas_in_sync
    global_batch = config.per_replica_batch_size * replicas
    learning_rate = scale_learning_rate(config.base_learning_rate, global_batch, config.base_batch_size)
    steps_per_epoch = config.steps_per_epoch or len(train) // global_batch
    if steps_per_epoch < 1:
        raise ValueError(f"{name}: global batch {global_batch} is larger than the {len(train)} training clips; "
                         "lower --per-replica-batch-size or set --steps-per-epoch")
    augment = Augmenter(gain_db=config.gain_db, noise_snr_db=config.noise_snr_db, mask_fraction=config.mask_fraction)
    pipeline = dict(crop_seconds=config.crop_seconds, augment=augment, mixup_alpha=config.mixup_alpha,
                    backgrounds=backgrounds, seed=config.seed, one_hot=True, repeat=True)
    print(f"{name}: {len(train)} training clips, {train.num_classes} classes; {describe(chosen)}, global batch "
          f"{global_batch}, peak learning rate {learning_rate:.3g}, {config.epochs} epochs x {steps_per_epoch} steps",
          flush=True)

    def build():
        keras.utils.set_random_seed(config.seed)
        return CNN12(width_multiplier=config.width, num_classes=train.num_classes, multi_label=config.multi_label,
                     dropout=config.dropout)

    started = time.perf_counter()
    if isinstance(chosen, __import__("tensorflow").distribute.MultiWorkerMirroredStrategy):
        def dataset_fn(context):
            shard = train.subset(np.arange(context.input_pipeline_id, len(train), context.num_input_pipelines))
            return training_dataset(shard, context.get_per_replica_batch_size(global_batch), **pipeline)

        model = loop.train_loop(build, dataset_fn, strategy=chosen, epochs=config.epochs,
                                steps_per_epoch=steps_per_epoch, per_replica_batch_size=config.per_replica_batch_size,
                                multi_label=config.multi_label, learning_rate=learning_rate,
                                warmup_epochs=config.warmup_epochs, weight_decay=config.weight_decay,
                                checkpoint_dir=out_dir / "training" / "loop")
    else:
        with chosen.scope():
            model = build()
            compile_classifier(model, multi_label=config.multi_label, learning_rate=learning_rate,
                               steps_per_epoch=steps_per_epoch, epochs=config.epochs,
                               warmup_epochs=config.warmup_epochs, weight_decay=config.weight_decay,
                               jit_compile=config.jit_compile if config.jit_compile == "auto"
                               else config.jit_compile.lower() == "true")
        fit(model, training_dataset(train, global_batch, **pipeline), epochs=config.epochs, out_dir=out_dir / "training",
            steps_per_epoch=steps_per_epoch, verbose=verbose)
    training_seconds = time.perf_counter() - started
    if loop.is_chief(chosen):
        save_model(model, out_dir / "model.keras")
    results = {}
    for set_name, clips in evaluation.items():
        if len(clips) == 0:
            print(f"{name}: evaluation set {set_name!r} is empty; skipped")
            continue
        results[set_name] = evaluate_clips(model, clips.dataset(), multi_label=config.multi_label,
                                           class_names=clips.class_names)
    summary = {"name": name, "config": dataclasses.asdict(config), "strategy": describe(chosen),
               "global_batch_size": global_batch, "learning_rate": learning_rate,
               "training_seconds": training_seconds, "results": results}
    if loop.is_chief(chosen):
        (out_dir / "results.json").write_text(json.dumps(summary, indent=2, default=str))
    print_results(summary)
    return summary


def print_results(summary: dict) -> None:
    """The final evaluation printout: one line per evaluation set."""
    print(f"\n{summary['name']}: whole-clip evaluation after {summary['training_seconds'] / 60:.1f} min of training "
          f"({summary['strategy']})")
    for set_name, result in summary["results"].items():
        if "accuracy" in result:
            print(f"  {set_name:20s} accuracy {100 * result['accuracy']:6.2f} %  ({result['clips']} clips)")
        else:
            print(f"  {set_name:20s} mAP {result['mAP']:.4f}  mAUC {result['mAUC']:.4f}  d' {result['d_prime']:.3f}  "
                  f"({result['clips']} clips, {result['evaluated_classes']} classes evaluated, "
                  f"{len(result['skipped_classes'])} without positives skipped)")
