"""Two non-overlapping random patches per clip, independently augmented: SimCLR views for audio (App. A.2).

Each clip yields a positive pair ``(view_a, view_b)``: two patches of ``patch_seconds`` (2.5 s by default)
at random, *non-overlapping* positions, in random order. Each view then gets its own draw of every
augmentation of the paper: random gain, additive Gaussian noise and random time masking per example
(:class:`tfsonify.data.augment.Augmenter`), and per batch background mixing with *other clips* of the batch
at a random SNR (mix-back, :func:`tfsonify.data.augment.mix_back`). All randomness is stateless, derived
from one integer seed: reproducible, and different every epoch.

Clips shorter than two patches (``2 × patch_samples``) cannot give two non-overlapping patches. The
policy ``short_clips`` decides: ``"skip"`` (default) drops them and reports the count;
``"pad"`` zero-pads them to ``2 × patch_samples`` at a random offset (the patches then contain silence;
the model's peak normalisation keeps silent stretches silent, no NaN).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from tfsonify.models.cnn12 import min_length
from tfsonify.data import augment as aug
from tfsonify.data.pipeline import warn

__all__ = ["patch_starts", "two_patches", "trim_silence", "contrastive_dataset", "SHORT_CLIP_POLICIES"]

SHORT_CLIP_POLICIES = ("skip", "pad")


def _check_patch_samples(patch_samples: int) -> int:
    if isinstance(patch_samples, bool) or not isinstance(patch_samples, (int, np.integer)) or patch_samples < 1:
        raise ValueError(f"patch length must be a positive number of samples; received {patch_samples!r}")
    return int(patch_samples)


def patch_starts(length: tf.Tensor | int, patch_samples: int, seed) -> tf.Tensor:
    """Start samples of two non-overlapping ``patch_samples``-long patches inside ``[0, length)``.

    Uniform over all valid ordered pairs: with slack ``S = length − 2P``, two draws ``u, v ~ U{0..S}``
    give the earlier patch at ``min(u, v)`` and the later at ``max(u, v) + P``; a coin flip decides which
    of the two is returned first. Hence ``|start_a − start_b| ≥ P`` and both patches end at ``≤ length``.

    Args:
        length: int scalar, clip length in samples; must be ``≥ 2 × patch_samples``.
        patch_samples: patch length ``P`` in samples.
        seed: int ``[2]`` stateless seed.

    Returns:
        int32 ``[2]``: ``(start_a, start_b)``.
    """
    patch_samples = _check_patch_samples(patch_samples)
    length = tf.cast(length, tf.int32)
    tf.debugging.assert_greater_equal(
        length, 2 * patch_samples, message=f"clip shorter than two non-overlapping patches of {patch_samples} samples"
    )
    slack = length - 2 * patch_samples
    draws = tf.random.stateless_uniform([3], tf.cast(seed, tf.int64), minval=0, maxval=2**30, dtype=tf.int32)
    first = tf.minimum(draws[0] % (slack + 1), draws[1] % (slack + 1))
    second = tf.maximum(draws[0] % (slack + 1), draws[1] % (slack + 1)) + patch_samples
    swap = tf.equal(draws[2] % 2, 1)
    return tf.where(swap, tf.stack([second, first]), tf.stack([first, second]))


def two_patches(wave: tf.Tensor, patch_samples: int, seed) -> tf.Tensor:
    """Two non-overlapping random patches of one clip.

    Args:
        wave: float32 ``[time]`` at 8 kHz, ``time ≥ 2 × patch_samples``.
        patch_samples: patch length in samples (2.5 s = 20000 at 8 kHz).
        seed: int ``[2]`` stateless seed.

    Returns:
        float32 ``[2, patch_samples]``: ``(patch_a, patch_b)``.
    """
    patch_samples = _check_patch_samples(patch_samples)
    wave = tf.convert_to_tensor(wave, tf.float32)
    starts = patch_starts(tf.shape(wave)[0], patch_samples, seed)
    patches = tf.stack([wave[starts[0] : starts[0] + patch_samples], wave[starts[1] : starts[1] + patch_samples]])
    return tf.ensure_shape(patches, [2, patch_samples])


def trim_silence(decoded, threshold_db: float = 40.0):
    """Cut every clip of a :class:`~tfsonify.data.pipeline.DecodedClips` to its non-silent span.

    The span runs from the first to the last sample whose magnitude is within ``threshold_db`` dB of the
    clip's peak; an all-zero clip is kept as one zero sample (it is then shorter than any patch).

    Returns:
        A new ``DecodedClips`` (same labels, paths and metadata) with shorter clips.
    """
    if not float(threshold_db) > 0:
        raise ValueError(f"trim_silence_db must be a positive number of dB; received {threshold_db!r}")
    pieces = []
    for index in range(len(decoded)):
        wave = decoded.waveform(index)
        peak = float(np.abs(wave).max()) if wave.size else 0.0
        loud = np.flatnonzero(np.abs(wave) >= peak * 10.0 ** (-float(threshold_db) / 20.0)) if peak > 0 else []
        pieces.append(wave[loud[0] : loud[-1] + 1] if len(loud) else np.zeros(1, np.float32))
    offsets = np.concatenate([[0], np.cumsum([p.size for p in pieces])]).astype(np.int64)
    return dataclasses.replace(decoded, samples=np.concatenate(pieces).astype(np.float32), offsets=offsets)


def contrastive_dataset(
    decoded,
    batch_size: int,
    patch_seconds: float = 2.5,
    augment: Callable | None = None,
    mix_back_snr_db: tuple[float, float] | None = (5.0, 20.0),
    short_clips: str = "skip",
    seed: int = 0,
    shuffle_buffer: int | None = None,
    repeat: bool = False,
    trim_silence_db: float | None = None,
    speed_range: tuple[float, float] | None = None,
) -> tuple[tf.data.Dataset, int]:
    """Batches of positive pairs ``(view_a, view_b)`` for :class:`~tfsonify.models.contrastive.ContrastiveModel`.

    Args:
        decoded: :class:`tfsonify.data.pipeline.DecodedClips` (any reader's clips; labels are ignored).
        batch_size: clips per *global* batch (≥ 2: NT-Xent needs negatives). Batches are always full
            (``drop_remainder``), so shapes are static (TPU) and no batch of 1 can occur.
        patch_seconds: patch length in seconds (2.5 in the paper's setting); each patch must be at
            least ``min_length(11)`` = 2370 samples (0.296 s at 8 kHz) for CNN12.
        augment: per-example augmentation ``augment(waves [..., P], seed [2])``, applied to each view with
            its own seed; default ``Augmenter()`` (gain ±6 dB, noise at 20–40 dB SNR, one time mask ≤ 10 %).
            Pass ``False`` for none.
        mix_back_snr_db: SNR range in dB for mix-back within the batch, drawn independently per view;
            None to disable.
        short_clips: ``"skip"`` or ``"pad"`` (see the module docstring).
        seed: integer seed for every random draw.
        shuffle_buffer: default: the whole set.
        repeat: repeat forever (use ``steps_per_epoch``).
        trim_silence_db: if given, first cut each clip to the span between its first and last sample within
            this many dB of its peak (e.g. 40): short clips padded with silence (keyword clips) otherwise give
            all-zero views, which every augmentation leaves at zero, so all silent views project to the same
            point and the NT-Xent optimum becomes a collapsed encoder. Lengths (and the short-clip policy)
            then apply to the trimmed clips.
        speed_range: if given, ``(low, high)``: each view is first resampled at its own random speed factor
            ``~ U[low, high]`` (:func:`tfsonify.data.augment.speed_perturb`: pitch and tempo together, like
            BYOL-A's random resize crop), so the two views of one clip no longer share the exact pitch and rate;
            on speech this keeps the pretext task from being solved by voice identity alone.

    Returns:
        ``(dataset, num_short)``: the dataset yields ``(view_a, view_b)``, each float32
        ``[batch_size, patch_samples]``; ``num_short`` is the number of clips shorter than two patches
        (skipped or padded, per ``short_clips``).

    Raises:
        ValueError: batch size < 2, patch too short for CNN12, unknown policy, or fewer usable clips than
            one batch.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 2:
        raise ValueError(
            f"batch_size must be an integer >= 2: NT-Xent uses the other clips of the batch as negatives; received {batch_size!r}"
        )
    if short_clips not in SHORT_CLIP_POLICIES:
        raise ValueError(f"short_clips must be one of {SHORT_CLIP_POLICIES}; received {short_clips!r}")
    if not float(patch_seconds) > 0:
        raise ValueError(f"patch_seconds must be positive; received {patch_seconds!r}")
    patch_samples = int(round(float(patch_seconds) * decoded.sample_rate))
    if patch_samples < min_length():
        raise ValueError(
            f"patch of {patch_seconds} s is {patch_samples} samples at {decoded.sample_rate} Hz; CNN12 needs at least "
            f"{min_length()} samples ({min_length() / decoded.sample_rate:.3f} s)"
        )
    if augment is None:
        augment = aug.Augmenter()
    if speed_range is not None:
        low, high = (float(v) for v in speed_range)
        if not 0.0 < low <= high:
            raise ValueError(f"speed_range must be (low, high) with 0 < low <= high; received {speed_range!r}")
    pair_samples = 2 * patch_samples
    if trim_silence_db is not None:
        decoded = trim_silence(decoded, trim_silence_db)
    lengths = np.asarray(decoded.lengths)
    short = lengths < pair_samples
    num_short = int(short.sum())
    if num_short:
        action = "skipped" if short_clips == "skip" else "zero-padded"
        warn(f"{num_short} of {lengths.size} clips are shorter than two non-overlapping {patch_seconds} s patches "
             f"({pair_samples} samples) and were {action} (short_clips={short_clips!r})")
    if short_clips == "skip" and num_short:
        decoded = decoded.subset(np.flatnonzero(~short))
    if len(decoded) < batch_size:
        raise ValueError(
            f"{len(decoded)} usable clips (of {lengths.size}; {num_short} shorter than two {patch_seconds} s patches, "
            f"policy {short_clips!r}) is fewer than one batch of {batch_size}"
        )

    dataset = decoded.dataset().map(lambda wave, label: wave, num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.shuffle(shuffle_buffer or len(decoded), seed=seed, reshuffle_each_iteration=True)
    dataset = tf.data.Dataset.zip((dataset, aug.seeds_dataset(seed)))

    def per_example(wave, seed_pair):
        pad_seed, patch_seed, seed_a, seed_b = tf.unstack(tf.random.split(seed_pair, 4))
        if short_clips == "pad":
            length = tf.shape(wave)[0]
            wave = tf.cond(
                length < pair_samples, lambda: aug.random_crop(wave, pair_samples, pad_seed), lambda: wave
            )
        view_a, view_b = tf.unstack(two_patches(wave, patch_samples, patch_seed))
        if speed_range is not None:
            speed_a, speed_b = tf.unstack(tf.random.split(tf.random.experimental.stateless_fold_in(seed_pair, 1), 2))
            view_a = aug.speed_perturb(view_a[None], speed_a, low, high)[0]
            view_b = aug.speed_perturb(view_b[None], speed_b, low, high)[0]
        if augment is not False:
            view_a = augment(view_a, seed_a)
            view_b = augment(view_b, seed_b)
        return view_a, view_b

    dataset = dataset.map(per_example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if repeat:
        dataset = dataset.repeat()
    dataset = dataset.batch(batch_size, drop_remainder=True)
    if mix_back_snr_db is not None:
        dataset = tf.data.Dataset.zip((dataset, aug.seeds_dataset(seed + 1)))

        def per_batch(views, seed_pair):
            seed_a, seed_b = tf.unstack(tf.random.split(seed_pair, 2))
            view_a, view_b = views
            return aug.mix_back(view_a, seed_a, *mix_back_snr_db), aug.mix_back(view_b, seed_b, *mix_back_snr_db)

        dataset = dataset.map(per_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.prefetch(tf.data.AUTOTUNE), num_short
